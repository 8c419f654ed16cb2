"""The training skeleton: rollout + update as one compiled ``lax.scan`` over iterations.

Every algorithm is the same small protocol (see :class:`Algorithm`), so this file holds the
library's only training loop:

    for each iteration (lax.scan):
        batch  = rollout.collect(algo.act, ...)            # [T, N] transitions
        state  = algo.update(state, batch, key, hparams, progress)

``make_train(algo, config)`` returns a :class:`Trainer` whose pure functions compose with
``jax.jit`` and ``jax.vmap``:

    trainer = make_train(PPO(), TrainConfig(env_id="CartPole-v1"))
    runner, metrics = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hparams)

Long runs call ``trainer.run`` on chunks of iterations (see :func:`run_chunked`); a chunk is the
same compiled step, so a run split into chunks gives bit-identical numbers to one call.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxpg import envs, rollout
from purejaxpg.config import ConfigError, TrainConfig, hparams_to_arrays, validate_hparams


class Algorithm(Protocol):
    """What an algorithm provides. Its dataclass fields are its static settings.

    * ``HParams``: its dynamic hyperparameters (a :func:`purejaxpg.config.hparams` dataclass).
    * ``rollout_options``: a `purejaxpg.rollout.RolloutOptions`, what it asks of the rollout.
    * ``validate(spec, config)``: raise ``ConfigError`` for settings it cannot run (before compiling).
    * ``init(key, spec, hparams) -> learner_state``.
    * ``init_actor(learner_state, config, key) -> actor_state``: the actors' exploration state
      (``()`` for none), carried by the rollout from step to step and across iterations.
    * ``act(learner_state, obs [N, ...], key, actor_state) -> (action [N, ...], extras, actor_state)``.
    * ``update(learner_state, batch, key, hparams, progress) -> (learner_state, metrics)``, where
      ``batch`` is a :class:`purejaxpg.rollout.Transition` ``[T, N, ...]``, ``progress`` the
      fraction of iterations done before this one (for annealing), metrics a dict of scalars.

    `purejaxpg.algorithms.common.PolicyAlgorithm` provides ``rollout_options``, ``init_actor``
    and ``act`` for algorithms that sample from a `purejaxpg.networks` policy.
    """

    name: str
    HParams: type
    rollout_options: rollout.RolloutOptions

    def validate(self, spec: envs.EnvSpec, config: TrainConfig) -> None: ...
    def init(self, key: jax.Array, spec: envs.EnvSpec, hparams: Any) -> Any: ...
    def init_actor(self, learner_state: Any, config: TrainConfig, key: jax.Array) -> Any: ...
    def act(self, learner_state: Any, obs: jax.Array, key: jax.Array,
            actor_state: Any) -> tuple[jax.Array, Any, Any]: ...
    def update(self, learner_state: Any, batch: rollout.Transition, key: jax.Array, hparams: Any,
               progress: jax.Array) -> tuple[Any, dict]: ...


@struct.dataclass
class RunnerState:
    """The whole state of one training run (one seed, one hyperparameter setting)."""

    learner: Any
    env: envs.EnvLoopState
    key: jax.Array
    iteration: jax.Array


#: Metrics that are NaN by design when no episode finished in an iteration.
EPISODE_METRICS = ("episode_return", "episode_length")


def episode_metrics(batch: rollout.Transition) -> dict[str, jax.Array]:
    """Mean return and length of the episodes that ended in this batch.

    ``episodes`` counts them; when it is 0 the means are NaN (no episode finished yet), which is
    how a missing value is told apart from a return of 0.
    """
    count = jnp.sum(batch.done)
    safe = jnp.maximum(count, 1)
    missing = jnp.where(count > 0, 0.0, jnp.nan)
    return {
        "episodes": count.astype(jnp.int32),
        "episode_return": jnp.sum(batch.finished_return) / safe + missing,
        "episode_length": jnp.sum(batch.finished_length) / safe + missing,
    }


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Pure functions of one training run; jit and vmap them as you like.

    Attributes:
      algo, config, spec: what the trainer was built from.
      init: ``init(key, hparams) -> RunnerState``.
      step: ``step(runner, hparams) -> (runner, metrics)``, one iteration.
      run: ``run(runner, hparams, num_iterations) -> (runner, metrics [num_iterations])``.
      train: ``train(key, hparams) -> (runner, metrics [config.num_iterations])``.
    """

    algo: Any
    config: TrainConfig
    spec: envs.EnvSpec
    env: Any
    env_params: Any
    _compiled: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def num_iterations(self) -> int:
        return self.config.num_iterations

    @property
    def learner_config(self) -> TrainConfig:
        """The config as the algorithm sees it: with a multi-agent env's agents as shared streams,
        ``num_envs`` is N * A (and ``total_timesteps`` A times the env steps, so the iterations are
        the same); otherwise ``config``."""
        return learner_config(self.config, self.spec)

    def init(self, key: jax.Array, hparams: Any) -> RunnerState:
        env_key, learner_key, run_key = jax.random.split(key, 3)
        loop = envs.reset(self.env, self.env_params, self.spec, env_key, self.config.num_envs)
        learner = self.algo.init(learner_key, self.spec, hparams)
        loop = loop.replace(actor=self.algo.init_actor(learner, self.learner_config,
                                                       jax.random.fold_in(learner_key, 1)))
        return RunnerState(learner, loop, run_key, jnp.asarray(0, jnp.int32))

    def step(self, runner: RunnerState, hparams: Any) -> tuple[RunnerState, dict]:
        cfg = self.config
        key, rollout_key, update_key, reset_key = jax.random.split(runner.key, 4)
        loop = runner.env
        groups = self.algo.rollout_options.episodic_groups
        if groups:  # every iteration starts from group-shared start states
            loop = envs.reset(self.env, self.env_params, self.spec, reset_key, cfg.num_envs, groups, loop)
        act = functools.partial(self.algo.act, runner.learner)
        loop, batch = rollout.collect(act, self.env, self.env_params, self.spec, loop, rollout_key,
                                      cfg.num_steps, cfg.normalize_obs,
                                      reward_scale_gamma=cfg.reward_norm_gamma if cfg.normalize_rewards else None)
        progress = runner.iteration.astype(jnp.float32) / cfg.num_iterations
        learner, algo_metrics = self.algo.update(runner.learner, batch, update_key, hparams, progress)
        metrics = {
            "env_steps": (runner.iteration + 1) * cfg.batch_size,
            **episode_metrics(batch),
            **algo_metrics,
        }
        return RunnerState(learner, loop, key, runner.iteration + 1), metrics

    def run(self, runner: RunnerState, hparams: Any, num_iterations: int) -> tuple[RunnerState, dict]:
        return jax.lax.scan(lambda r, _: self.step(r, hparams), runner, None, length=num_iterations)

    def train(self, key: jax.Array, hparams: Any) -> tuple[RunnerState, dict]:
        return self.run(self.init(key, hparams), hparams, self.num_iterations)


def make_train(algo: Any, config: TrainConfig, hparams: Any | None = None, *, env: Any = None,
               env_params: Any = None) -> Trainer:
    """Validate the settings and build the :class:`Trainer` (nothing is compiled here).

    Args:
      algo: an algorithm (`purejaxpg.algorithms`).
      config: the run's `TrainConfig`; ``config.env_id`` names the environment (a gymnax id,
        ``brax/<name>`` or ``jaxmarl/<name>``), or is only a label when ``env`` is given.
      hparams: when given, checked against the algorithm's ``HParams`` ranges.
      env, env_params: an environment object with the gymnax interface (e.g. your own subclass of
        ``gymnax.environments.environment.Environment``) and its params (default
        ``env.default_params``), trained on instead of making ``config.env_id``.

    A multi-agent env (``jaxmarl/...``) is seen jointly by a multi-agent algorithm
    (``algo.rollout_options.joint_agents``, MADDPG) and as N * A environments of one shared policy by any other.

    Raises:
      ConfigError: unknown env id, a batch that the algorithm cannot split, total steps below one
        batch, an action space the algorithm does not support, or (when ``hparams`` is given) a
        hyperparameter outside its range.
    """
    config.validate()
    if env is None:
        envs.check_env_id(config.env_id)
        trainer = _trainer(algo, config)
    else:
        env, env_params, spec = envs.from_env(env, env_params, config.env_id)
        trainer = _build_trainer(algo, config, env, env_params, spec)
    if hparams is not None:
        if not isinstance(hparams, algo.HParams):
            raise ConfigError(f"hparams is a {type(hparams).__name__}; {algo.name} takes "
                              f"{algo.HParams.__module__}.{algo.HParams.__name__}.")
        validate_hparams(hparams)
    return trainer


@functools.lru_cache(maxsize=64)
def _trainer(algo: Any, config: TrainConfig) -> Trainer:
    """One Trainer per (algorithm, config), so its compiled chunks are reused within a process."""
    return _build_trainer(algo, config, *envs.make(config.env_id))


def _build_trainer(algo: Any, config: TrainConfig, env: Any, env_params: Any, spec: envs.EnvSpec) -> Trainer:
    joint = algo.rollout_options.joint_agents
    if spec.num_agents > 1 and not joint:
        spec = envs.shared_agents_view(spec)
    elif joint and spec.num_agents <= 1:
        raise ConfigError(f"{algo.name} is a multi-agent algorithm, but env_id={spec.env_id!r} has one agent; "
                          "train it on a multi-agent env such as 'jaxmarl/MPE_simple_spread_v3'.")
    algo.validate(spec, learner_config(config, spec))
    return Trainer(algo, config, spec, env, env_params)


def learner_config(config: TrainConfig, spec: envs.EnvSpec) -> TrainConfig:
    """``config`` as the algorithm sees it (see `Trainer.learner_config`)."""
    if not spec.share_agents:
        return config
    return dataclasses.replace(config, num_envs=spec.streams(config.num_envs),
                               total_timesteps=config.total_timesteps * spec.num_agents)


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``[num_seeds]`` keys; run i's key is fold_in(PRNGKey(seed), i), whatever num_seeds is."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


@dataclasses.dataclass
class RunResult:
    """Host-side result of :func:`run_chunked`.

    Attributes:
      metrics: ``{name: np.ndarray [R, I]}`` for R vmapped runs and I iterations.
      runner: the final (batched) ``RunnerState``.
      compile_seconds: time spent compiling in this call (a trainer compiles each chunk length once).
      run_seconds: wall time of all chunk calls after compilation.
      steps_per_second: env steps of all runs per second of ``run_seconds``.
    """

    metrics: dict[str, np.ndarray]
    runner: Any
    compile_seconds: float
    run_seconds: float
    steps_per_second: float


def _check_finite(metrics: dict[str, np.ndarray], first_iteration: int) -> None:
    for name, values in metrics.items():
        if name in EPISODE_METRICS or not np.issubdtype(values.dtype, np.floating):
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            run, it = np.argwhere(bad)[0]
            raise FloatingPointError(
                f"metric {name!r} became non-finite ({values[run, it]}) at iteration "
                f"{first_iteration + it} of run {run}; lower the learning rate or check the inputs."
            )


def _mesh_shardings(num_runs: int, num_envs: int, shard: str):
    """(sharding of the run axis, of the env axis) over all devices, per the ``shard`` mode.

    ``jax.devices()`` lists the devices of every process after ``jax.distributed.initialize``
    (`purejaxpg.distributed`), so the same shardings span several processes."""
    devices = jax.devices()
    if shard == "none" or len(devices) == 1:
        return None, None
    if shard not in ("auto", "runs", "envs"):
        raise ConfigError(f"shard={shard!r}; use 'auto', 'runs', 'envs' or 'none'.")
    mesh = Mesh(np.asarray(devices), ("devices",))
    by_runs = num_runs % len(devices) == 0
    by_envs = num_envs % len(devices) == 0
    processes = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
    if shard == "runs" and not by_runs:
        raise ConfigError(f"shard='runs' needs the number of runs ({num_runs}) to be a multiple of the "
                          f"{len(devices)} devices{processes}; change seeds/grid size or use shard='envs'.")
    if shard == "envs" and not by_envs:
        raise ConfigError(f"shard='envs' needs num_envs={num_envs} to be a multiple of the {len(devices)} "
                          f"devices{processes}.")
    if shard == "runs" or (shard == "auto" and by_runs):
        return NamedSharding(mesh, PartitionSpec("devices")), None
    if shard == "envs" or (shard == "auto" and by_envs):
        return None, NamedSharding(mesh, PartitionSpec(None, "devices"))
    return None, None


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` as an array laid out by ``sharding``. In one process, ``jax.device_put``. When the
    sharding spans several processes, a host value (the same in every process) is cut into the
    shards of this process's devices (``jax.make_array_from_callback``), and an array already
    spread over the processes is resharded by the compiler; no process reads another's shards."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x if x.sharding.is_equivalent_to(sharding, x.ndim) else _reshard(sharding)(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


@functools.lru_cache(maxsize=None)
def _reshard(sharding: NamedSharding) -> Callable:
    """A compiled identity whose outputs (any pytree) are laid out by ``sharding``."""
    return jax.jit(lambda tree: tree, out_shardings=sharding)


def _to_host(tree: Any) -> Any:
    """``tree`` as NumPy arrays holding every run, in every process. One process:
    ``jax.device_get``. Several: the leaves spread over processes are first replicated onto every
    device by one compiled all-gather (every process must call this at the same point), then read
    from a local device."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    leaves, treedef = jax.tree.flatten(tree)
    spread = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array) and not x.is_fully_addressable]
    if spread:
        mesh = leaves[spread[0]].sharding.mesh
        gathered = _reshard(NamedSharding(mesh, PartitionSpec()))([leaves[i] for i in spread])
        for i, x in zip(spread, gathered):
            leaves[i] = x.addressable_data(0)
    return jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])


def _shard_runner(runner: RunnerState, runs_sharding, envs_sharding, num_envs: int) -> RunnerState:
    """Place a batched runner: every leaf split over its run axis, or the env loop's ``[R, N, ...]``
    leaves split over N (parameters and statistics replicated); across processes too (`_place`)."""
    if runs_sharding is not None:
        if jax.process_count() == 1:
            return jax.device_put(runner, runs_sharding)
        return jax.tree.map(lambda x: _place(x, runs_sharding), runner)
    if envs_sharding is None:
        return runner
    replicated = NamedSharding(envs_sharding.mesh, PartitionSpec())

    def place(x):
        per_env = np.ndim(x) >= 2 and np.shape(x)[1] == num_envs
        return _place(x, envs_sharding if per_env else replicated)

    def place_all(tree):
        return jax.tree.map(lambda x: _place(x, replicated), tree)

    return runner.replace(env=jax.tree.map(place, runner.env), learner=place_all(runner.learner),
                          key=place_all(runner.key), iteration=place_all(runner.iteration))


def _first_iteration(runner: RunnerState) -> int:
    """The iteration counter of the batched ``runner`` (the same for all runs), read from a
    shard this process holds."""
    iteration = runner.iteration
    if isinstance(iteration, jax.Array) and not iteration.is_fully_addressable:
        iteration = iteration.addressable_data(0)
    return int(np.asarray(iteration).reshape(-1)[0])


def run_chunked(trainer: Trainer, keys: jax.Array, hparams: Any, *, chunk_iterations: int | None = None,
                runner: Any = None, callback: Callable[[dict[str, np.ndarray], RunnerState, float], None] | None = None,
                shard: str = "auto") -> RunResult:
    """Run R = ``len(keys)`` training runs vmapped, in host-visible chunks of iterations.

    Args:
      trainer: from :func:`make_train`.
      keys: ``[R]`` PRNG keys, one per run.
      hparams: an ``HParams`` whose leaves are scalars (shared by all runs) or ``[R]`` arrays.
      chunk_iterations: iterations per compiled call (default: all at once). The host prints,
        checkpoints and checks finiteness between chunks; results do not depend on it.
      runner: a batched ``RunnerState`` to continue from (e.g. restored from a checkpoint).
      callback: ``callback(chunk_metrics, runner, elapsed_seconds)`` after every chunk.
      shard: with several devices (``jax.devices()``): "runs" splits the run axis (seeds x grid)
        over them; "envs" splits each run's N environments over them (synchronous data-parallel:
        parameters replicated, the compiler all-reduces the gradients, same numbers as one
        device up to summation order); "auto" picks "runs" when R divides evenly, else "envs"
        when N does, else nothing; "none" keeps everything on the default device. On one
        device this does nothing.
    Several processes (`purejaxpg.distributed.initialize`, one or several hosts): every process
    makes the same call with the same arguments; ``jax.devices()`` then spans all processes, each
    computes the runs (or environments) of its own devices, and every process receives all the
    metrics. The runner given to ``callback`` and the returned ``RunResult.runner`` are then NumPy
    arrays holding every run (gathered, so a process can checkpoint them), and with ``shard``
    "none" (or nothing dividing evenly) every process computes all runs by itself.
    Returns:
      a :class:`RunResult`.
    """
    num_runs = keys.shape[0]
    hparams = hparams_to_arrays(hparams)
    hp_axes = jax.tree.map(lambda x: 0 if np.ndim(x) == 1 else None, hparams)
    for leaf in jax.tree.leaves(hparams):
        if np.ndim(leaf) not in (0, 1) or (np.ndim(leaf) == 1 and leaf.shape[0] != num_runs):
            raise ConfigError(f"each hyperparameter must be a scalar or have one value per run ({num_runs}); "
                              f"got shape {np.shape(leaf)}.")
    total = trainer.num_iterations
    chunk = min(chunk_iterations or total, total)
    # compiled executables are cached on the trainer, keyed by what changes their signature
    layout = (num_runs, tuple(np.ndim(x) for x in jax.tree.leaves(hparams)))
    compile_seconds, run_seconds, iterations_run = 0.0, 0.0, 0
    runs_sharding, envs_sharding = _mesh_shardings(num_runs, trainer.config.num_envs, shard)
    multiprocess = jax.process_count() > 1
    init_keys, init_hparams = keys, hparams
    if runs_sharding is not None:
        keys = _place(keys, runs_sharding)
        replicated = NamedSharding(runs_sharding.mesh, PartitionSpec())
        hparams = jax.tree.map(lambda x: _place(x, runs_sharding) if np.ndim(x) == 1 else
                               (_place(x, replicated) if multiprocess else x), hparams)
    elif envs_sharding is not None and multiprocess:  # every input of a multi-process program is global
        replicated = NamedSharding(envs_sharding.mesh, PartitionSpec())
        hparams = jax.tree.map(lambda x: _place(x, replicated), hparams)
    if runs_sharding is not None:  # the init runs sharded too; else in each process on its own device
        init_keys, init_hparams = keys, hparams
    if runner is None:
        if ("init",) + layout not in trainer._compiled:
            trainer._compiled[("init",) + layout] = jax.jit(jax.vmap(trainer.init, in_axes=(0, hp_axes)))
        runner = trainer._compiled[("init",) + layout](init_keys, init_hparams)
    runner = _shard_runner(runner, runs_sharding, envs_sharding, trainer.config.num_envs)
    layout = layout + (shard if (runs_sharding or envs_sharding) else "none",)
    start = _first_iteration(runner)
    collected: list[dict[str, np.ndarray]] = []
    while start < total:
        n = min(chunk, total - start)
        if (n,) + layout not in trainer._compiled:  # compile outside the timed region
            t0 = time.perf_counter()
            run = jax.jit(jax.vmap(trainer.run, in_axes=(0, hp_axes, None)), static_argnums=2)
            trainer._compiled[(n,) + layout] = run.lower(runner, hparams, n).compile()
            compile_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        runner, metrics = trainer._compiled[(n,) + layout](runner, hparams)
        metrics = _to_host(metrics)
        elapsed = time.perf_counter() - t0
        run_seconds += elapsed
        if trainer.config.check_finite:
            _check_finite(metrics, start)
        collected.append(metrics)
        if callback is not None:
            callback(metrics, _to_host(runner) if multiprocess else runner, elapsed)
        start += n
        iterations_run += n
    merged = {k: np.concatenate([m[k] for m in collected], axis=1) for k in collected[0]} if collected else {}
    steps = num_runs * iterations_run * trainer.config.batch_size
    sps = steps / run_seconds if run_seconds > 0 else float("nan")
    return RunResult(merged, _to_host(runner) if multiprocess else runner, compile_seconds, run_seconds, sps)

