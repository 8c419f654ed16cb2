"""Peer and ceiling measurements for the purejaxpg benchmarks.

Two reference points for purejaxpg's PPO throughput, measured in the same
process and on the same gymnax environments:

* :func:`raw_env_steps_per_second` -- the ceiling: how fast the bare gymnax
  environment steps under ``jit(vmap(scan(vmap(env.step))))`` with uniformly
  random actions (no policy, no learning).
* :func:`rejax_ppo` -- rejax's PPO (the fastest installable peer) trained at a
  given config, timed the same way purejaxpg is timed: compile time, steady
  state env steps/s, and the final return per seed.

Any rejax algorithm is timed through the same three helpers:
:func:`make_rejax_algo` (rejax's ``create`` on the adapted env, with its
evaluation kept out of ``train``), :func:`compile_rejax` (a fresh
``jit(vmap(train)).lower().compile()``, timed) and :func:`prepare_rejax` (a
`_common.Timed` of the compiled call).  ``offpolicy_peers.py`` uses them for
rejax's SAC and TD3.

rejax 0.1.3 was written against gymnax 0.0.x, whose ``Environment.step``
returned ``(obs, state, reward, done, info)``.  gymnax 1.x returns
``(obs, state, reward, terminated, truncated, info)`` instead, so rejax is
run on a thin adapter, :class:`GymnaxV0StepAdapter`, that merges the two flags
(``done = terminated | truncated``) and otherwise delegates to the gymnax
environment.  Dynamics, auto-reset and the observation after a reset are
exactly gymnax 1.x's.

Importing this module has no side effects (rejax is imported lazily, inside
:func:`rejax_ppo`).  Run it as a script for a small CartPole-v1 table::

    cd benchmarks && python peers.py
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _common import Timed, interleave, timing_fields

__all__ = [
    "GymnaxV0StepAdapter",
    "compile_rejax",
    "make_adapted_env",
    "make_rejax_algo",
    "prepare_rejax",
    "prepare_rejax_ppo",
    "rejax_seed_keys",
    "raw_env_steps_per_second",
    "rejax_ppo",
]


# ---------------------------------------------------------------------------
# gymnax 1.x -> gymnax 0.0.x step API adapter
# ---------------------------------------------------------------------------


class GymnaxV0StepAdapter:
    """Present a gymnax 1.x environment with the gymnax 0.0.x ``step`` API.

    ``step`` returns ``(obs, state, reward, done, info)`` where
    ``done = terminated | truncated``.  The wrapped environment still
    auto-resets, so ``obs`` is the first observation of the next episode when
    ``done`` is true; the pre-reset observation stays available as
    ``info["final_observation"]`` and the individual flags as
    ``info["terminated"]`` / ``info["truncated"]`` (gymnax 1.x puts them
    there).  Everything else is delegated unchanged.

    Instances hash by identity (like gymnax environments), which is what JAX
    needs when rejax passes the environment as a static argument.
    """

    def __init__(self, env: Any):
        self._env = env

    # The wrapped gymnax environment.
    @property
    def env(self) -> Any:
        return self._env

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        return obs, state, reward, done, info

    def reset(self, key, params=None):
        return self._env.reset(key, params)

    def action_space(self, params=None):
        return self._env.action_space(params)

    def observation_space(self, params=None):
        return self._env.observation_space(params)

    def state_space(self, params=None):
        return self._env.state_space(params)

    @property
    def default_params(self):
        return self._env.default_params

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    @property
    def name(self) -> str:
        return self._env.name

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not defined above.  Private and dunder
        # names are not forwarded: copy.deepcopy (rejax deep-copies its config,
        # env included) builds the copy without calling __init__ and probes
        # e.g. __setstate__ before ``_env`` exists, which must not recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._env.name})"


def split_seeds_over_devices(keys: jax.Array) -> jax.Array:
    """``keys [S]`` placed with their seed axis split over ``jax.devices()`` when purejaxpg would
    split S runs (`purejaxpg.devices.runs_shard`; jit then runs each device's seeds on it,
    concurrently); unchanged otherwise."""
    from purejaxpg import devices

    if devices.runs_shard(keys.shape[0]) != "runs":
        return keys
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("seeds",))
    return jax.device_put(keys, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))


def make_adapted_env(env_id: str, **env_kwargs):
    """``gymnax.make(env_id)`` wrapped in :class:`GymnaxV0StepAdapter`."""
    import gymnax

    env, env_params = gymnax.make(env_id, **env_kwargs)
    return GymnaxV0StepAdapter(env), env_params


# ---------------------------------------------------------------------------
# Ceiling: raw gymnax stepping rate
# ---------------------------------------------------------------------------


def _random_action_sampler(space):
    """Return ``sample(key, n) -> n`` uniformly random valid actions."""
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):

        def sample(key, n):
            return jax.random.randint(key, (n,), 0, space.n, dtype=space.dtype)

    elif isinstance(space, spaces.Box):
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)

        def sample(key, n):
            u = jax.random.uniform(
                key, (n, *space.shape), minval=low, maxval=high
            )
            return u.astype(space.dtype)

    else:  # Dict / Tuple spaces: fall back to the space's own sampler.

        def sample(key, n):
            return jax.vmap(space.sample)(jax.random.split(key, n))

    return sample


def raw_env_steps_per_second(
    env_id: str,
    num_envs: int,
    num_steps: int,
    num_seeds: int = 1,
    repeats: int = 3,
    split_seeds: bool = False,
) -> dict:
    """Raw gymnax stepping rate of ``env_id``: the ceiling for any PPO.

    Runs ``jit(vmap_seeds(reset; scan_{num_steps}(vmap_envs(env.step))))``
    with uniformly random valid actions (discrete: ``randint(0, n)``;
    continuous: uniform in the Box bounds), drawn fresh every step.  The
    gymnax 1.x ``step`` includes its auto-reset (a ``reset_env`` and a select
    every step), as in training.  The carry keeps the latest observations and
    the summed rewards, so nothing the env computes can be dead-code
    eliminated.

    Choose ``num_steps`` so that ``num_envs * num_steps * num_seeds`` is ~1e6
    or more, or a run takes at least ~1 s; otherwise dispatch overhead shows.

    Returns a dict with keys ``env_id, num_envs, num_steps, num_seeds,
    total_steps, first_call_s, compile_s, lower_compile_s, best_s, times_s,
    steps_per_second``.  ``compile_s`` is the first call's wall time
    (``lower().compile()`` + first execution) minus the best steady wall time;
    ``lower_compile_s`` is the directly measured compile part;
    ``steps_per_second = total_steps / best_s`` (best of ``repeats``
    timed calls after the warm-up call).
    """
    import gymnax

    env, env_params = gymnax.make(env_id)
    sample_actions = _random_action_sampler(env.action_space(env_params))
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(key):
        key, reset_key = jax.random.split(key)
        obs, state = vreset(jax.random.split(reset_key, num_envs), env_params)

        def body(carry, _):
            key, state, obs, ret = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = sample_actions(act_key, num_envs)
            obs, state, reward, _, _, _ = vstep(
                jax.random.split(step_key, num_envs), state, action, env_params
            )
            return (key, state, obs, ret + reward), None

        init = (key, state, obs, jnp.zeros((num_envs,), jnp.float32))
        (_, state, obs, ret), _ = jax.lax.scan(body, init, None, num_steps)
        return obs, ret

    fn = jax.jit(jax.vmap(rollout))
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    if split_seeds:  # seeds over the devices (split_seeds_over_devices)
        keys = split_seeds_over_devices(keys)

    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    lower_compile = time.perf_counter() - t0
    jax.block_until_ready(compiled(keys))  # warm-up execution
    first = time.perf_counter() - t0

    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        times.append(time.perf_counter() - t0)
    best = min(times)

    total = num_envs * num_steps * num_seeds
    return {
        "env_id": env_id,
        "num_envs": num_envs,
        "num_steps": num_steps,
        "num_seeds": num_seeds,
        "devices_used": len(keys.sharding.device_set),
        "total_steps": total,
        "first_call_s": first,
        "compile_s": first - best,
        "lower_compile_s": lower_compile,
        "best_s": best,
        "times_s": times,
        "steps_per_second": total / best,
    }


# ---------------------------------------------------------------------------
# Any rejax algorithm: build, compile, time
# ---------------------------------------------------------------------------


def make_rejax_algo(algo_cls, env_id: str, total_timesteps: int, config: dict):
    """rejax's ``algo_cls.create(**config)`` on ``env_id`` seen through :class:`GymnaxV0StepAdapter`,
    with its evaluation kept out of ``train``.

    rejax's ``train`` normally evaluates the policy every ``eval_freq`` steps (128 full episodes
    each time, plus one before training).  Here ``skip_initial_evaluation=True``, ``eval_freq =
    total_timesteps`` (so ``train`` is one outer iteration whose ``fori_loop`` runs every training
    iteration) and ``eval_callback`` is a no-op, so ``train`` is training only.

    ``config`` holds the algorithm's settings (everything but ``env``, ``env_params``,
    ``total_timesteps``, ``eval_freq`` and ``skip_initial_evaluation``).
    """
    env, env_params = make_adapted_env(env_id)
    algo = algo_cls.create(env=env, env_params=env_params, total_timesteps=total_timesteps,
                           eval_freq=total_timesteps, skip_initial_evaluation=True, **config)
    return algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros((), jnp.float32))


def rejax_seed_keys(seed: int, num_seeds: int, split_seeds: bool = False) -> jax.Array:
    """``[num_seeds]`` keys ``split(PRNGKey(seed))``; with ``split_seeds`` placed over the devices
    (:func:`split_seeds_over_devices`)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    return split_seeds_over_devices(keys) if split_seeds else keys


def compile_rejax(algo, keys: jax.Array):
    """``(compiled, seconds)``: a fresh ``jax.jit(jax.vmap(algo.train)).lower(keys).compile()`` and
    its wall time (tracing, lowering and XLA compilation of the whole run, initialisation included).
    Every call traces and compiles anew, so it can be timed repeatedly."""
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(algo.train)).lower(keys).compile()
    return compiled, time.perf_counter() - t0


def prepare_rejax(algo, keys: jax.Array, *, steps: int, name: str = "rejax", report_fields: dict | None = None,
                  num_eval_episodes: int = 16, eval_seed: int = 1) -> Timed:
    """Compile ``jit(vmap(algo.train))`` for ``keys`` (:func:`compile_rejax`), run it once: a `_common.Timed`.

    Each ``call()`` runs the compiled call once more on the same keys (a whole training run from
    its initialisation). ``steps`` is the env steps of one call, all seeds together.

    ``report()`` evaluates the last call's final policies with rejax's own
    ``rejax.evaluate.evaluate`` (``algo.make_act``, as rejax's evaluation does: PPO and SAC sample,
    TD3 acts deterministically): mean undiscounted return over ``num_eval_episodes`` episodes per
    seed, each run until done or ``max_steps_in_episode``; not timed. It returns ``report_fields``
    plus ``library, version, gymnax_version, num_seeds, devices_used, first_call_s,
    lower_compile_s, final_return (list, per seed), final_return_mean, final_return_std,
    evaluation``.
    """
    import importlib.metadata

    from rejax.evaluate import evaluate

    num_seeds = keys.shape[0]
    devices_used = len(keys.sharding.device_set)
    # First call = explicit lower + compile, then the first execution; the split is reported too,
    # because on a loaded machine "first minus steady" can come out near zero or negative.
    t0 = time.perf_counter()
    compiled, lower_compile = compile_rejax(algo, keys)
    last = [jax.block_until_ready(compiled(keys))]
    first = time.perf_counter() - t0

    def call() -> float:
        t0 = time.perf_counter()
        last[0] = jax.block_until_ready(compiled(keys))
        return time.perf_counter() - t0

    # ``algo.env`` is the env rejax actually trained on (it may wrap ours in FloatObsWrapper when
    # normalize_observations=True); make_act applies the learned obs normalization itself.
    env_params = algo.env_params
    max_steps = int(env_params.max_steps_in_episode)

    def eval_one(ts_i, key):
        _, returns = evaluate(algo.make_act(ts_i), key, algo.env, env_params, num_eval_episodes, max_steps)
        return returns.mean()

    def report() -> dict:
        eval_keys = jax.random.split(jax.random.PRNGKey(eval_seed), num_seeds)
        final = np.asarray(jax.jit(jax.vmap(eval_one))(last[0][0], eval_keys))
        return {
            "library": "rejax",
            "version": importlib.metadata.version("rejax"),
            "gymnax_version": importlib.metadata.version("gymnax"),
            "num_seeds": num_seeds,
            "devices_used": devices_used,
            **(report_fields or {}),
            "first_call_s": first,
            "lower_compile_s": lower_compile,
            "final_return": final.tolist(),
            "final_return_mean": float(final.mean()),
            "final_return_std": float(final.std()),
            "evaluation": (
                f"rejax.evaluate.evaluate on the final policy (algo.make_act, as rejax evaluates): mean "
                f"undiscounted return over {num_eval_episodes} episodes per seed, capped at {max_steps} "
                f"steps; not timed"
            ),
        }

    return Timed(name, call, steps, lower_compile, report, first - lower_compile, devices_used)


# ---------------------------------------------------------------------------
# Peer: rejax PPO
# ---------------------------------------------------------------------------

# Ways in which rejax 0.1.3's PPO differs from the classic (CleanRL /
# purejaxrl) PPO and cannot be changed through its config.  Reported under
# ``notes`` in every result.
_REJAX_PPO_FIXED_DIFFERENCES = (
    "max_grad_norm: rejax applies optax.clip(max_grad_norm), i.e. clips each "
    "gradient ELEMENT to [-max_grad_norm, max_grad_norm]; it has no global-norm "
    "clipping (classic PPO uses clip_by_global_norm).",
    "separate actor and critic MLPs (no shared torso), each with its own Adam "
    "(same lr / schedule / clipping); vf_coef only scales the critic's own loss, "
    "so under Adam it has almost no effect.",
    "Adam eps is optax's default 1e-8 (CleanRL / purejaxrl use 1e-5).",
    "network init is flax's default Dense init (lecun normal), not orthogonal "
    "with gains sqrt(2) / 0.01 / 1.",
    "value loss is always clipped with clip_eps (like CleanRL clip_vloss=True); "
    "advantages are normalized per minibatch.",
    "done = terminated | truncated (via the adapter), so GAE treats a time-limit "
    "truncation as a termination (no bootstrap), as purejaxrl does.",
)


def _lr_schedule(learning_rate: float, num_iterations: int, updates_per_iter: int):
    """Linear annealing to 0, stepped once per training iteration.

    optax calls it with the optimizer's update count; rejax updates each of
    its actor and critic optimizers once per minibatch, i.e.
    ``num_epochs * num_minibatches`` times per iteration.  Same schedule as
    purejaxrl's ``linear_schedule`` and CleanRL's ``anneal_lr``.
    """

    def schedule(count):
        iteration = count // updates_per_iter
        frac = 1.0 - iteration / num_iterations
        return learning_rate * frac

    return schedule


def prepare_rejax_ppo(
    env_id: str,
    *,
    num_seeds: int,
    total_timesteps: int,
    num_envs: int,
    num_steps: int,
    num_epochs: int,
    num_minibatches: int,
    learning_rate: float,
    anneal_lr: bool,
    gamma: float,
    gae_lambda: float,
    clip_eps: float,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float,
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "tanh",
    normalize_observations: bool = False,
    seed: int = 0,
    num_eval_episodes: int = 16,
    split_seeds: bool = False,
    name: str = "rejax",
) -> Timed:
    """Compile rejax's PPO on ``env_id`` for ``num_seeds`` seeds and run it once: a `_common.Timed`.

    With ``split_seeds`` the seed axis is split over ``jax.devices()`` (rejax has no option for
    it; `split_seeds_over_devices` places the keys and jit follows), as purejaxpg does with
    several CPU devices.

    rejax's PPO is used unchanged, on the gymnax 1.x environment seen through
    :class:`GymnaxV0StepAdapter`.  ``jax.jit(jax.vmap(algo.train))`` runs all
    seeds at once, always on the same keys.  The first call is
    ``lower().compile()`` (``compile_s`` of the `Timed`, ``lower_compile_s``
    of the report) and one execution (``first_call_s`` includes both); each
    ``call()`` of the `Timed` runs the compiled call once more.

    Evaluation: rejax's ``train`` normally evaluates the policy every
    ``eval_freq`` steps (128 full episodes each time, plus one before
    training).  Here ``skip_initial_evaluation=True``,
    ``eval_freq = total timesteps`` (so ``train`` is one outer iteration whose
    ``fori_loop`` runs every training iteration) and its ``eval_callback`` is
    replaced by a no-op, so the timed call is training only.  The final
    return is measured afterwards, outside the timed region, by rejax's own
    ``rejax.evaluate.evaluate`` on each seed's final policy
    (``algo.make_act``, which *samples* from the policy, as rejax's
    evaluation does): mean undiscounted return over ``num_eval_episodes``
    episodes, each run until done or ``max_steps_in_episode``.

    ``total_timesteps`` is rounded down to a multiple of
    ``num_envs * num_steps`` (what purejaxrl-style PPO does); rejax itself
    would round up.  ``steps_per_second`` uses the steps actually taken.

    Its ``report()`` evaluates the last call's policies and returns a dict
    with keys ``library, version, gymnax_version, env_id, num_seeds,
    devices_used, total_timesteps, timesteps_per_seed, num_iterations,
    first_call_s, lower_compile_s, final_return (list, per seed),
    final_return_mean, final_return_std, evaluation, config, notes``.
    """
    from rejax import PPO

    batch_size = num_envs * num_steps
    if batch_size % num_minibatches:
        raise ValueError("num_envs * num_steps must be divisible by num_minibatches")
    num_iterations = total_timesteps // batch_size
    if num_iterations < 1:
        raise ValueError("total_timesteps < num_envs * num_steps")
    timesteps_per_seed = num_iterations * batch_size

    notes = list(_REJAX_PPO_FIXED_DIFFERENCES)
    if anneal_lr:
        # rejax has no anneal flag.  ``learning_rate`` goes straight into
        # optax.adam, which accepts a schedule.  This works because the algo
        # object is closed over by jit (it is not a traced argument).
        lr = _lr_schedule(learning_rate, num_iterations, num_epochs * num_minibatches)
        notes.append(
            "anneal_lr: rejax has no flag for it; expressed by passing an optax "
            "schedule (linear to 0, stepped per iteration) as learning_rate."
        )
    else:
        lr = learning_rate
    if timesteps_per_seed != total_timesteps:
        notes.append(
            f"total_timesteps {total_timesteps} rounded down to "
            f"{timesteps_per_seed} = {num_iterations} iterations x {batch_size}."
        )

    settings = dict(
        num_envs=num_envs,
        num_steps=num_steps,
        num_epochs=num_epochs,
        num_minibatches=num_minibatches,
        learning_rate=lr,
        gamma=gamma,
        gae_lambda=gae_lambda,
        clip_eps=clip_eps,
        ent_coef=ent_coef,
        vf_coef=vf_coef,
        max_grad_norm=max_grad_norm,
        normalize_observations=normalize_observations,
        normalize_rewards=False,
        agent_kwargs={"hidden_layer_sizes": tuple(hidden), "activation": activation},
    )
    # evaluation kept out of training (make_rejax_algo): nothing of it remains in train()
    algo = make_rejax_algo(PPO, env_id, timesteps_per_seed, settings)
    keys = rejax_seed_keys(seed, num_seeds, split_seeds)
    config = dict(total_timesteps=timesteps_per_seed, eval_freq=timesteps_per_seed, skip_initial_evaluation=True,
                  **settings)
    config["learning_rate"] = f"linear schedule {learning_rate} -> 0" if anneal_lr else learning_rate
    config["eval_callback"] = "no-op"
    report_fields = {
        "env_id": env_id,
        "total_timesteps": total_timesteps,
        "timesteps_per_seed": timesteps_per_seed,
        "num_iterations": num_iterations,
        "config": config,
        "notes": notes,
    }
    return prepare_rejax(algo, keys, steps=num_seeds * timesteps_per_seed, name=name, report_fields=report_fields,
                         num_eval_episodes=num_eval_episodes, eval_seed=seed + 1)


def rejax_ppo(env_id: str, *, repeats: int = 1, **kwargs) -> dict:
    """Train rejax's PPO on ``env_id`` (`prepare_rejax_ppo`'s arguments) and time ``repeats``
    steady calls after the first; the best counts.

    Returns `prepare_rejax_ppo`'s report plus ``train_s`` (best), ``train_times_s``,
    ``compile_s = first_call_s - train_s`` (not clamped: a negative value means the machine was
    busier during the steady runs), ``steps_per_second`` (best), ``steps_per_second_median`` and
    ``cpu_per_wall`` (CPU seconds of the process per wall second over the timed calls: 1.0 is
    one busy core).
    """
    timed = prepare_rejax_ppo(env_id, **kwargs)
    measured = interleave([timed], max(1, repeats))[timed.name]
    row = {**timed.report(), **timing_fields(timed, measured)}
    row["compile_s"] = row["first_call_s"] - row["train_s"]
    return row


# ---------------------------------------------------------------------------
# Script
# ---------------------------------------------------------------------------

CLASSIC_CARTPOLE_PPO = dict(
    total_timesteps=500_000,
    num_envs=4,
    num_steps=128,
    num_epochs=4,
    num_minibatches=4,
    learning_rate=2.5e-4,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    hidden=(64, 64),
    activation="tanh",
    normalize_observations=False,
)


def _main() -> None:
    env_id = "CartPole-v1"
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, env {env_id}")
    print()
    print("Raw gymnax ceiling (random actions), 4 envs")
    print(f"{'seeds':>5} {'steps/seed':>10} {'compile s':>9} {'best s':>7} {'env steps/s':>12}")
    for n in (1, 8):
        r = raw_env_steps_per_second(env_id, num_envs=4, num_steps=250_000, num_seeds=n)
        print(
            f"{n:>5} {4 * 250_000:>10} {r['compile_s']:>9.2f} {r['best_s']:>7.2f} "
            f"{r['steps_per_second']:>12,.0f}"
        )
    print()
    print("rejax PPO, classic config (4 envs x 128 steps, 5e5 steps, 4x4, lr 2.5e-4 annealed)")
    print(
        f"{'seeds':>5} {'compile s':>9} {'(lower+compile s)':>17} {'train s':>8} "
        f"{'env steps/s':>12} {'final return mean':>17}  per seed"
    )
    result = None
    for n in (1, 8):
        result = rejax_ppo(env_id, num_seeds=n, **CLASSIC_CARTPOLE_PPO)
        per_seed = " ".join(f"{x:.0f}" for x in result["final_return"])
        print(
            f"{n:>5} {result['compile_s']:>9.2f} {result['lower_compile_s']:>17.2f} "
            f"{result['train_s']:>8.2f} "
            f"{result['steps_per_second']:>12,.0f} {result['final_return_mean']:>17.1f}  "
            f"{per_seed}"
        )
    print()
    print("compile s = first call - steady call; lower+compile s measured directly.")
    print(f"Final return: {result['evaluation']}.")
    print("rejax vs classic PPO:")
    for note in result["notes"]:
        print(f"  - {note}")


if __name__ == "__main__":
    _main()
