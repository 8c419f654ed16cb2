"""A3C in its serialised form: one worker without staleness is A2C; the staleness schedule against a
plain Python simulation; workers act with their own copies; each worker's gradient is A2C's on its
own envs (truncation-correct, against a NumPy n-step return); configuration errors; learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import _learning
from purejaxpg import experiment, results, rollout, train
from purejaxpg.algorithms.a2c import A2C, A2CHParams
from purejaxpg.algorithms.a3c import A3C
from purejaxpg.config import ConfigError, TrainConfig

# XLA's backend optimisations off while these tests compile (tests/conftest.py): they check
# arithmetic and bookkeeping, not XLA's optimisations (the learning tests are unaffected: they
# do not request the fixture)
fast = pytest.mark.usefixtures("fast_compiles")


def _flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


# ----------------------------------------------------------------------------------------------
# K = 1, S = 0 is A2C
# ----------------------------------------------------------------------------------------------


def _run(algo, config, hparams, key, iterations):
    trainer = train.make_train(algo, config, hparams)
    runner = trainer.init(key, hparams)
    return jax.jit(trainer.run, static_argnums=2)(runner, hparams, iterations)


@fast
@pytest.mark.parametrize("settings", [dict(), pytest.param(dict(critic="q", advantage="td"), marks=pytest.mark.slow)],
                         ids=["v-gae", "q-td"])
def test_one_worker_without_staleness_is_a2c(settings):
    """Same key, same settings: parameters, optimiser state, the envs' states (so every action) and
    metrics agree after several iterations of the training loop."""
    config = TrainConfig("CartPole-v1", num_envs=4, num_steps=8, total_timesteps=4 * 8 * 6)
    hparams = A2CHParams(lr=3e-3)
    key = jax.random.PRNGKey(3)
    a2c, a2c_metrics = _run(A2C(hidden=(8,), **settings), config, hparams, key, 6)
    a3c, a3c_metrics = _run(A3C(hidden=(8,), num_workers=1, max_staleness=0, **settings), config, hparams, key, 6)
    np.testing.assert_allclose(_flat(a3c.learner.shared.params), _flat(a2c.learner.params), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_flat(a3c.learner.shared.opt_state), _flat(a2c.learner.opt_state), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(a3c.env.obs, a2c.env.obs)  # the same actions were taken throughout
    for name, values in a2c_metrics.items():
        np.testing.assert_allclose(a3c_metrics[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.all(a3c_metrics["staleness"] == 0)


# ----------------------------------------------------------------------------------------------
# The staleness schedule against a plain simulation (toy quadratic loss through the real update)
# ----------------------------------------------------------------------------------------------


class _ToyA3C(A3C):
    """A3C whose worker gradient is that of 0.5 ||theta - c||^2 at the worker's copy, c = the mean
    reward of its slice of the batch: the update's bookkeeping with a loss the test can redo."""

    def gradient(self, state, batch, key, hparams):
        target = jnp.mean(batch.reward)
        return jax.tree.map(lambda p: p - target, state.params), {}


def _toy_batch(T, N, iteration):
    """A [T, N] batch whose rewards make every worker's target different (only rewards are read)."""
    reward = np.broadcast_to(np.arange(N, dtype=np.float32) + 0.5 * iteration, (T, N))
    zeros = jnp.zeros((T, N))
    return rollout.Transition(jnp.zeros((T, N, 4)), jnp.zeros((T, N), jnp.int32), jnp.asarray(reward), zeros > 1,
                              zeros > 1, jnp.zeros((T, N, 4)), {"log_prob": zeros}, zeros > 1, zeros, zeros)


def _simulate(theta0, num_workers, num_envs, iterations, max_staleness, reads, lr, max_grad_norm, eps=1e-5):
    """A plain NumPy A3C schedule: every version of the shared parameters is kept in a list;
    worker k of iteration i reads version ``reads(i, v, k)`` (v: versions applied before the
    iteration) and its gradient is applied in turn by clipped RMSProp with shared statistics.
    Returns (final parameters, read versions [I, K], staleness [I, K])."""
    versions = [np.asarray(theta0, np.float64)]
    square = np.zeros_like(versions[0])
    per_worker = num_envs // num_workers
    read_log, stale_log = [], []
    for i in range(iterations):
        v0 = len(versions) - 1
        read = [reads(i, v0, k) for k in range(num_workers)]
        copies = [versions[r] for r in read]  # every worker reads before the iteration's updates
        reward = np.arange(num_envs) + 0.5 * i
        stale = []
        for k in range(num_workers):
            target = reward[k * per_worker:(k + 1) * per_worker].mean()
            g = copies[k] - target
            g = g * min(1.0, max_grad_norm / np.linalg.norm(g))
            square = 0.99 * square + 0.01 * g**2
            stale.append(len(versions) - 1 - read[k])
            versions.append(versions[-1] - lr * g / (np.sqrt(square) + eps))
        read_log.append(read)
        stale_log.append(stale)
    return versions[-1], np.asarray(read_log), np.asarray(stale_log)


@fast
@pytest.mark.parametrize("delays, max_staleness", [("fixed", 2), ("fixed", 5), ("uniform", 6)])
def test_staleness_schedule_matches_plain_simulation(delays, max_staleness):
    K, N, T, iterations = 3, 6, 2, 7
    algo = _ToyA3C(hidden=(3,), num_workers=K, max_staleness=max_staleness, delays=delays, optimizer="rmsprop")
    hparams = A2CHParams(lr=0.05, max_grad_norm=2.0)
    config = TrainConfig("CartPole-v1", num_envs=N, num_steps=T, total_timesteps=N * T)
    trainer = train.make_train(algo, config, hparams)
    state = algo.init(jax.random.PRNGKey(0), trainer.spec, hparams)
    update = jax.jit(algo.update)
    reads, stale = [], []
    for i in range(iterations):
        reads.append(np.asarray(state.read_version))
        state, metrics = update(state, _toy_batch(T, N, i), jax.random.PRNGKey(100 + i), hparams, 0.0)
        stale.append(float(metrics["staleness"]))
        # the copies are the versions they claim to be: the current shared parameters when read now
        for k in range(K):
            if int(state.read_version[k]) == int(state.version):
                np.testing.assert_array_equal(_flat(jax.tree.map(lambda w: w[k], state.workers)),
                                              _flat(state.shared.params))
    reads = np.asarray(reads)
    if delays == "fixed":  # each worker reads so that its next gradient is S updates stale
        schedule = lambda i, v0, k: max(v0 + k - max_staleness, 0)  # noqa: E731
    else:  # the drawn reads must lie in the allowed window; the simulation then follows them
        for i in range(1, iterations):
            v0 = i * K
            for k in range(K):
                assert max(v0 + k - max_staleness, 0) <= reads[i, k] <= v0, (i, k, reads[i])
                staleness = v0 + k - reads[i, k]
                assert k <= staleness <= max_staleness, (i, k, reads[i])
        assert len({tuple(r) for r in reads[2:]}) > 1, "uniform delays should not repeat one schedule"
        schedule = lambda i, v0, k: int(reads[i, k])  # noqa: E731
    theta0 = _flat(algo.init(jax.random.PRNGKey(0), trainer.spec, hparams).shared.params)
    expected, expected_reads, expected_stale = _simulate(theta0, K, N, iterations, max_staleness, schedule,
                                                         lr=0.05, max_grad_norm=2.0)
    np.testing.assert_array_equal(reads, expected_reads)
    np.testing.assert_allclose(stale, expected_stale.mean(axis=1), rtol=1e-6)
    if delays == "fixed" and iterations * K > max_staleness + K:  # steady state: exactly S stale
        assert np.all(expected_stale[-1] == max_staleness)
    np.testing.assert_allclose(_flat(state.shared.params), expected, rtol=1e-4, atol=1e-5)
    assert int(state.version) == iterations * K


# ----------------------------------------------------------------------------------------------
# Acting with the workers' copies; each worker's gradient on its own envs
# ----------------------------------------------------------------------------------------------

SMALL = TrainConfig("CartPole-v1", num_envs=4, num_steps=24, total_timesteps=4 * 24)


@pytest.fixture(scope="module")
def truncated_batch():
    """A3C(K = 2, S = 1) at initialisation and a [24, 4] CartPole batch under its initial policy, with
    time-limit truncations marked by hand (the functions under test read only the flags) in both
    workers' slices."""
    algo, hparams = A3C(hidden=(8,), num_workers=2, max_staleness=1), A2CHParams()
    trainer = train.make_train(algo, SMALL, hparams)

    @jax.jit
    def init_and_collect(key):
        runner = trainer.init(key, hparams)
        act = lambda obs, k, a: algo.act(runner.learner, obs, k, a)  # noqa: E731
        return runner.learner, rollout.collect(act, trainer.env, trainer.env_params, trainer.spec, runner.env,
                                               jax.random.fold_in(key, 1), SMALL.num_steps)[1]

    learner, batch = init_and_collect(jax.random.PRNGKey(0))
    truncated = np.asarray(batch.truncated).copy()
    for t, n in ((4, 0), (11, 1), (7, 2), (15, 3)):
        if not batch.terminated[t, n]:
            truncated[t, n] = True
    batch = batch.replace(truncated=jnp.asarray(truncated), done=batch.terminated | jnp.asarray(truncated))
    assert int(batch.terminated.sum()) > 0 and int(batch.truncated.sum()) > 0
    return learner, batch


def _np_segment_returns(reward, terminated, truncated, next_values, gamma):
    """A3C's n-step return, written plainly: R_t = r_t + gamma R_{t+1} inside an episode, bootstrapped
    from V(next_obs_t) at a truncation and at the segment's last step, 0 after a termination."""
    T, N = reward.shape
    out = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            if terminated[t, n]:
                bootstrap = 0.0
            elif truncated[t, n] or t == T - 1:
                bootstrap = next_values[t, n]
            else:
                bootstrap = running
            running = reward[t, n] + gamma * bootstrap
            out[t, n] = running
    return out


@fast
def test_workers_gradients_are_a2c_on_their_envs_and_truncation_correct(truncated_batch):
    """K = 2, S = 1, two updates on a batch with terminations and truncations. Iteration 1: both
    copies are version 0; worker 0's gradient is applied to version 0, worker 1's (at version 0)
    to version 1. The mean advantage is that of a NumPy n-step return (truncations bootstrapped)."""
    algo = A3C(hidden=(8,), num_workers=2, max_staleness=1)
    hparams = A2CHParams(gamma=0.9, lr=1e-2, ent_coef=0.01)
    state, batch = truncated_batch
    new, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(5), hparams, 0.0)

    a2c = A2C(hidden=(8,))

    @jax.jit
    def a2c_in_turn(shared):  # both gradients at version 0, applied one after the other
        theta0 = shared.params
        for k in range(2):
            part = jax.tree.map(lambda x: x[:, 2 * k:2 * k + 2], batch)
            grads, _ = a2c.gradient(shared.replace(params=theta0), part, None, hparams)
            shared, _ = a2c.apply_gradient(shared, grads, hparams, 0.0)
        return shared

    shared = a2c_in_turn(state.shared)
    np.testing.assert_allclose(_flat(new.shared.params), _flat(shared.params), rtol=1e-5, atol=1e-6)
    assert float(metrics["staleness"]) == 0.5  # worker 0: 0, worker 1: 1
    # the next copies: worker k reads version 2 + k - 1 (fixed delays, S = 1)
    np.testing.assert_array_equal(new.read_version, [1, 2])
    np.testing.assert_array_equal(_flat(jax.tree.map(lambda w: w[1], new.workers)), _flat(new.shared.params))

    values = np.asarray(state.shared.value(batch.obs))
    next_values = np.asarray(state.shared.value(batch.next_obs))
    returns = _np_segment_returns(np.asarray(batch.reward), np.asarray(batch.terminated), np.asarray(batch.truncated),
                                  next_values, 0.9)
    np.testing.assert_allclose(metrics["mean_advantage"], np.mean(returns - values), rtol=1e-4, atol=1e-5)
    # the same return that treats truncations as terminations is measurably different
    wrong = _np_segment_returns(np.asarray(batch.reward), np.asarray(batch.done), np.zeros_like(batch.truncated),
                                next_values, 0.9)
    assert abs(np.mean(wrong - values) - float(metrics["mean_advantage"])) > 1e-3


@fast
def test_each_worker_acts_with_its_own_copy(truncated_batch):
    algo = A3C(hidden=(8,), num_workers=2, max_staleness=1)
    state, batch = truncated_batch
    # give the two workers very different copies
    workers = jax.tree.map(lambda w: w * jnp.asarray([1.0, -3.0]).reshape((2,) + (1,) * (w.ndim - 1)), state.workers)
    state = state.replace(workers=workers)
    obs = batch.obs[0]
    action, extras, _ = jax.jit(algo.act)(state, obs, jax.random.PRNGKey(0), ())
    for k in range(2):
        copy = jax.tree.map(lambda w: w[k], workers)
        other = jax.tree.map(lambda w: w[1 - k], workers)
        envs = slice(2 * k, 2 * k + 2)
        own = state.shared.dist(obs[envs], copy).log_prob(action[envs])
        np.testing.assert_allclose(extras["log_prob"][envs], own, rtol=1e-6)
        assert not np.allclose(extras["log_prob"][envs], state.shared.dist(obs[envs], other).log_prob(action[envs]))


# ----------------------------------------------------------------------------------------------
# Configuration errors (before compiling)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (dict(num_workers=0), r"num_workers=0 must be a positive integer"),
    (dict(num_workers=4, max_staleness=2), r"max_staleness=2 is below num_workers - 1 = 3.*max_staleness >= 3"),
    (dict(max_staleness=-2), r"max_staleness=-2 must be a non-negative integer, or -1"),
    (dict(max_staleness="3"), r"max_staleness='3' must be a non-negative integer"),
    (dict(delays="poisson"), r"delays='poisson' is not an option of a3c; choose one of 'fixed', 'uniform'"),
    (dict(advantage="foo"), r"advantage='foo' is not an option of a2c"),
])
def test_bad_static_settings_fail_at_construction(settings, message):
    with pytest.raises(ConfigError, match=message):
        A3C(**settings)


def test_envs_must_split_evenly_into_workers_and_presets_apply():
    with pytest.raises(ConfigError, match=r"num_envs=6 does not split into num_workers=4"):
        train.make_train(*experiment.build("a3c", "CartPole-v1", {"num_envs": 6}, use_presets=False))
    algo, config, hparams = experiment.build("a3c", "CartPole-v1")
    assert (config.num_envs, config.num_steps, config.total_timesteps) == (8, 5, 500_000)
    assert algo.num_workers == 8 and algo.staleness == 7
    with pytest.raises(ConfigError, match="max_staleness=3 is below"):
        experiment.build("a3c", "CartPole-v1", {"max_staleness": 3})


# ----------------------------------------------------------------------------------------------
# Learning on CartPole-v1 (random policy: ~22)
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_a3c_preset_learns_cartpole():
    """The preset (8 workers of 1 env x 5 steps, gradients 7 updates stale) at 1.5e5 of its 5e5 steps
    (lr annealed over the 1.5e5). On 16 seeds (bases 777 and 31337, not this test's) the final
    returns ranged 62-500, median about 270: A3C's one-env workers are noisy, so the bar is "learns":
    every seed above 40, about twice the random policy's ~22."""
    out = _learning.run_named("a3c", "CartPole-v1", {"total_timesteps": 150_000}, num_seeds=2)
    _learning.check(results.final_returns(out.metrics), every_seed_above=40)
