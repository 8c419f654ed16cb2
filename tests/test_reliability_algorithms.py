"""Reliability checks applied to every registered algorithm (issue #6).

Parametrised over ``purejaxpg.algorithms.ALGORITHMS``, so an algorithm that is registered later is
covered without editing this file:

1. extreme reward scales (x1e6, x1e-8) give a finite learner state and finite metrics after one update;
2. training is deterministic: the same key gives bit-identical metrics in two runs and whatever the
   chunk size, and different seeds give different runs;
3. every hyperparameter declared with bounds (``purejaxpg.config.hp``) rejects an out-of-range value
   with a ``ConfigError`` naming the field and the value, before anything is compiled.

Compilation dominates the cost (each algorithm is compiled a few times), so runs are tiny and are
compiled with XLA's backend (LLVM) optimisation turned down, which about halves compile time; these
are checks of the algorithms' arithmetic and key handling, not of XLA's optimisations.
"""

import dataclasses
import functools
import math
import re

import jax
import jax.monitoring
import numpy as np
import pytest

from purejaxpg import algorithms, envs, experiment, rollout, train
from purejaxpg.config import ConfigError, hparams_to_arrays

ALGO_NAMES = sorted(algorithms.ALGORITHMS)
#: A multi-agent algorithm (MADDPG) runs on the multi-agent env only, every other one on the first two.
MULTI_AGENT_ENV = "jaxmarl/MPE_simple_spread_v3"
ENV_IDS = ("CartPole-v1", "Pendulum-v1", MULTI_AGENT_ENV)

#: Static settings that make any algorithm cheap to compile and run; each is applied only when the
#: algorithm has a setting of that name.
SMALL_SETTINGS = dict(hidden=(16,), critic_hidden=(16,), num_epochs=2, num_minibatches=2, critic_epochs=2,
                      critic_minibatches=2, num_sgd_steps=2, cg_iters=5, episode_group_size=2,
                      buffer_size=256, batch_size=16, learning_starts=0, gradient_steps=4)
NUM_ENVS, NUM_STEPS = 4, 32
#: Metrics the training skeleton adds to every algorithm's own (equal across seeds or absent by design).
SKELETON_METRICS = {"env_steps", "episodes", *train.EPISODE_METRICS}


def _env_is_discrete(env_id: str) -> bool:
    """Whether ``env_id`` has a discrete action space."""
    return envs.make(env_id)[2].discrete


def _skip_unsupported(algo_cls: type, env_id: str) -> None:
    """pytest.skip when the algorithm's ``discrete`` ClassVar excludes the env's action space, or
    when a multi-agent algorithm meets a single-agent env or the other way round."""
    joint = getattr(algo_cls.rollout_options, "joint_agents", False)  # GRPO's is a property
    if joint != (env_id == MULTI_AGENT_ENV):
        pytest.skip(f"{algo_cls.name} is {'' if joint else 'not '}multi-agent")
    supported = getattr(algo_cls, "discrete", None)
    if supported is not None and supported != _env_is_discrete(env_id):
        kind = "discrete" if supported else "continuous"
        pytest.skip(f"{algo_cls.name} supports only {kind} actions; {env_id} does not have them")


def _first_supported_env(algo_cls: type) -> str:
    """The first env of ENV_IDS whose action space the algorithm supports (the multi-agent env for a
    multi-agent algorithm)."""
    if getattr(algo_cls.rollout_options, "joint_agents", False):
        return MULTI_AGENT_ENV
    supported = getattr(algo_cls, "discrete", None)
    return next(e for e in ENV_IDS if supported is None or supported == _env_is_discrete(e))


def _small_overrides(algo_name: str, env_id: str, num_iterations: int = 1) -> dict:
    """Flat settings for a tiny run of ``algo_name`` on ``env_id`` (see :func:`experiment.build`).

    An algorithm on episodic groups (``episode_group_size``, GRPO) scores whole episodes, so its
    rollout covers the env's full time limit.
    """
    fields = experiment.settings_fields(algorithms.get(algo_name))
    overrides = {k: v for k, v in SMALL_SETTINGS.items() if k in fields}
    num_steps = envs.make(env_id)[2].max_episode_steps if "episode_group_size" in fields else NUM_STEPS
    return {**overrides, "num_envs": NUM_ENVS, "num_steps": num_steps,
            "total_timesteps": NUM_ENVS * num_steps * num_iterations}


# ------------------------------------------------------------------------------------------------
# 1. Extreme reward scales
# ------------------------------------------------------------------------------------------------


#: Per-jit XLA options that about halve compile time (the backend/LLVM optimisation is turned down).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=None)
def _scaled_update(algo_name: str, env_id: str):
    """A jitted ``scale -> (learner, metrics, raw rewards)``: one update on a reward-scaled batch.

    Inside one compiled function: the learner is initialised, one batch is collected with the
    algorithm's own ``act`` (episodic-group algorithms first get the group-shared reset of
    :meth:`purejaxpg.train.Trainer.step`), its rewards are multiplied by ``scale`` and
    ``algo.update`` runs once. ``scale`` is traced, so every scale reuses one compilation.
    """
    algo, config, hparams = experiment.build(algo_name, env_id, _small_overrides(algo_name, env_id),
                                             use_presets=False)
    trainer = train.make_train(algo, config, hparams)
    hparams = hparams_to_arrays(hparams)
    group_size = getattr(algo, "episode_group_size", None)

    def scaled_update(scale):
        """Initialise, collect one batch, scale its rewards by ``scale`` and update once."""
        init_key, reset_key, rollout_key, update_key = jax.random.split(jax.random.PRNGKey(0), 4)
        runner = trainer.init(init_key, hparams)
        loop = runner.env
        if group_size:
            loop = envs.reset(trainer.env, trainer.env_params, trainer.spec, reset_key, config.num_envs,
                              group_size, loop)
        act = lambda obs, k, a: algo.act(runner.learner, obs, k, a)  # noqa: E731
        _, batch = rollout.collect(act, trainer.env, trainer.env_params, trainer.spec, loop, rollout_key,
                                   config.num_steps)
        learner, metrics = algo.update(runner.learner, batch.replace(reward=batch.reward * scale), update_key,
                                       hparams, 0.0)
        return learner, metrics, batch.reward

    return jax.jit(scaled_update, compiler_options=FAST_COMPILE)


def _non_finite_leaves(tree) -> list[str]:
    """Paths of the floating-point leaves of ``tree`` that hold a NaN or an infinity."""
    return [jax.tree_util.keystr(path) for path, x in jax.tree_util.tree_leaves_with_path(tree)
            if np.issubdtype(np.asarray(x).dtype, np.inexact) and not np.all(np.isfinite(x))]


@pytest.mark.parametrize("scale", [1e6, 1e-8])
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("algo_name", ALGO_NAMES)
def test_extreme_reward_scales_give_finite_updates(algo_name, env_id, scale):
    """Rewards x1e6 or x1e-8 leave every learner leaf and every metric of one update finite."""
    _skip_unsupported(algorithms.get(algo_name), env_id)
    learner, metrics, rewards = _scaled_update(algo_name, env_id)(scale)
    assert np.any(np.asarray(rewards) != 0.0), "the batch must carry rewards for the scale to matter"
    assert metrics, "update returned no metrics"
    bad_leaves = _non_finite_leaves(learner)
    assert not bad_leaves, f"non-finite learner state after rewards x{scale:g}: {bad_leaves}"
    bad_metrics = {k: v for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v)))}
    assert not bad_metrics, f"non-finite metrics after rewards x{scale:g}: {bad_metrics}"


# ------------------------------------------------------------------------------------------------
# 2. Determinism
# ------------------------------------------------------------------------------------------------

DETERMINISM_ITERATIONS, DETERMINISM_CHUNK = 4, 2


#: In the default run: three algorithms whose loops differ most from PPO's (tests/test_train.py covers
#: PPO): trpo (line search, critic fit), grpo (episodic group resets) and sac (replay sampling). The
#: rest run with -m slow.
DETERMINISM_DEFAULT = ("trpo", "grpo", "sac")


@pytest.mark.usefixtures("fast_compiles")
@pytest.mark.parametrize("algo_name", [name if name in DETERMINISM_DEFAULT else pytest.param(name, marks=pytest.mark.slow)
                                       for name in ALGO_NAMES])
def test_same_key_bit_identical_across_runs_and_chunks_and_seeds_differ(algo_name):
    """Same key: bit-identical metrics and state in two runs and in chunks; two seeds: different runs."""
    algo_cls = algorithms.get(algo_name)
    env_id = _first_supported_env(algo_cls)
    algo, config, hparams = experiment.build(
        algo_name, env_id, _small_overrides(algo_name, env_id, DETERMINISM_ITERATIONS), use_presets=False)
    # a private compile cache: the executables compiled here without optimisations are not reused
    # by other tests through make_train's cache of trainers
    trainer = dataclasses.replace(train.make_train(algo, config, hparams), _compiled={})
    keys = train.seed_keys(0, 2)
    whole = train.run_chunked(trainer, keys, hparams)
    again = train.run_chunked(trainer, keys, hparams)
    chunked = train.run_chunked(trainer, keys, hparams, chunk_iterations=DETERMINISM_CHUNK)
    assert set(whole.metrics) == set(again.metrics) == set(chunked.metrics)
    for name, values in whole.metrics.items():
        assert values.shape == (2, DETERMINISM_ITERATIONS), name
        np.testing.assert_array_equal(values, again.metrics[name], err_msg=f"{algo_name}: {name}, second run")
        np.testing.assert_array_equal(values, chunked.metrics[name], err_msg=f"{algo_name}: {name}, chunked")
    for other in (again, chunked):
        same = jax.tree.map(lambda a, b: np.array_equal(a, b, equal_nan=True), whole.runner, other.runner)
        assert all(jax.tree.leaves(same)), f"{algo_name}: final runner state differs"
    # the two vmapped seeds are different runs: their learners and the algorithm's own metrics differ
    learner_differs = [not np.array_equal(x[0], x[1]) for x in jax.tree.leaves(whole.runner.learner)
                       if np.issubdtype(np.asarray(x).dtype, np.inexact)]
    assert any(learner_differs), f"{algo_name}: seeds 0 and 1 ended with identical learner states"
    differing = [name for name, v in whole.metrics.items()
                 if name not in SKELETON_METRICS and not np.array_equal(v[0], v[1], equal_nan=True)]
    assert differing, f"{algo_name}: seeds 0 and 1 gave identical metrics {sorted(whole.metrics)}"


# ------------------------------------------------------------------------------------------------
# 3. Hyperparameter validation generated from the declared bounds
# ------------------------------------------------------------------------------------------------


def _bound_cases(field: dataclasses.Field) -> list[tuple[float, bool]]:
    """``(value, valid)`` pairs probing the declared interval of one ``hp`` field at its edges.

    An open end rejects the bound itself, a closed end accepts it and rejects a value just
    beyond it; a NaN is always rejected.
    """
    meta = field.metadata
    cases = [(math.nan, False)]
    for end, sign in (("low", -1.0), ("high", 1.0)):
        bound = meta.get(end)
        if bound is None:
            continue
        if meta.get(f"{end}_open"):
            cases.append((float(bound), False))
        else:
            cases += [(float(bound), True), (float(bound) + sign * max(0.5, abs(bound)), False)]
    return cases


def _validation_cases() -> list:
    """One pytest.param per (algorithm, bounded hyperparameter, probe value), from the metadata."""
    cases = []
    for name in ALGO_NAMES:
        for field in dataclasses.fields(algorithms.get(name).HParams):
            if field.metadata.get("low") is None and field.metadata.get("high") is None:
                continue
            for value, valid in _bound_cases(field):
                label = f"{name}-{field.name}={value:g}-{'ok' if valid else 'bad'}"
                cases.append(pytest.param(name, field.name, value, valid, id=label))
    return cases


VALIDATION_CASES = _validation_cases()


def test_every_algorithm_declares_bounds_on_every_hyperparameter():
    """config.py: "Every field declares its valid range"; the generated cases then cover every algorithm."""
    unbounded = [f"{name}.{f.name}" for name in ALGO_NAMES for f in dataclasses.fields(algorithms.get(name).HParams)
                 if f.metadata.get("low") is None and f.metadata.get("high") is None]
    assert not unbounded, f"hyperparameters without a declared range: {unbounded}"
    assert {c.values[0] for c in VALIDATION_CASES} == set(ALGO_NAMES)


class _CompileCounter:
    """Context manager counting the JAX traces/compilations that start inside it."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        """Start with no recorded events."""
        self.events: list[str] = []

    def _listener(self, event: str, *args, **kwargs) -> None:
        """Record a compilation event."""
        if event in self.EVENTS:
            self.events.append(event)

    def __enter__(self):
        """Start listening to JAX's compilation events."""
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        """Stop listening; exceptions propagate."""
        jax.monitoring.unregister_event_duration_listener(self._listener)
        return False


@pytest.mark.parametrize("algo_name, field, value, valid", VALIDATION_CASES)
def test_hyperparameter_bounds_are_enforced_before_compiling(algo_name, field, value, valid):
    """A value outside the declared interval is a ConfigError naming field and value, from build and
    make_train, with nothing compiled; a closed end's bound itself is accepted."""
    env_id = _first_supported_env(algorithms.get(algo_name))
    overrides = _small_overrides(algo_name, env_id)
    algo, config, hparams = experiment.build(algo_name, env_id, overrides, use_presets=False)
    train.make_train(algo, config, hparams)  # the valid defaults pass (and the env is built once, outside)
    bad = dataclasses.replace(hparams, **{field: value})
    if valid:
        experiment.build(algo_name, env_id, {**overrides, field: value}, use_presets=False)
        train.make_train(algo, config, bad)
        return
    shown = "nan" if math.isnan(value) else f"{value:g}"
    pattern = rf"\b{re.escape(field)}={re.escape(shown)}\b"
    with _CompileCounter() as compiles:
        with pytest.raises(ConfigError, match=pattern):
            experiment.build(algo_name, env_id, {**overrides, field: value}, use_presets=False)
        with pytest.raises(ConfigError, match=pattern):
            train.make_train(algo, config, bad)
    assert not compiles.events, f"compiled before rejecting {field}={shown}: {compiles.events}"
