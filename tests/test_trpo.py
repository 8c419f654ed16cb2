"""NPG and TRPO on real rollouts.

References: KL(old || new) recomputed in NumPy float64 from the policies' outputs, the dense
natural step sqrt(2 delta / x^T (F + damping I) x) x with F = jax.hessian of the mean KL and x a
dense solve, the surrogate's gradient by jax.grad of an independently written surrogate.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import _learning
from purejaxpg import envs, experiment, results, rollout, train
from purejaxpg.algorithms import trpo as trpo_module
from purejaxpg.algorithms.trpo import NPG, TRPO, NPGHParams, TRPOHParams
from purejaxpg.config import TrainConfig, hparams_to_arrays


def iterate(algo, env_id, hparams, num_iterations, num_envs=4, num_steps=64, seed=0, prepare=None):
    """Yield ``(state, batch, new_state, metrics)`` for consecutive updates on fresh rollouts.

    ``prepare(state, batch) -> (state, batch)`` may alter each batch before the update.
    """
    env, env_params, spec = envs.make(env_id)
    hparams = hparams_to_arrays(hparams)
    key, init_key, reset_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    state = algo.init(init_key, spec, hparams)
    loop = envs.reset(env, env_params, spec, reset_key, num_envs)

    @jax.jit
    def collect(state, loop, key):
        return rollout.collect(lambda obs, k, a: algo.act(state, obs, k, a), env, env_params, spec, loop, key, num_steps)

    update = jax.jit(algo.update)
    for _ in range(num_iterations):
        key, rollout_key, update_key = jax.random.split(key, 3)
        loop, batch = collect(state, loop, rollout_key)
        if prepare is not None:
            state, batch = prepare(state, batch)
        new_state, metrics = update(state, batch, update_key, hparams, jnp.float32(0.0))
        yield state, batch, new_state, jax.device_get(metrics)
        state = new_state


def numpy_kl(state, old_params, new_params, obs):
    """Mean KL(old || new) over ``obs`` from the closed forms, in float64."""
    old = state.policy.apply(old_params, obs)
    new = state.policy.apply(new_params, obs)
    if hasattr(old, "logits"):
        log_p = np.asarray(jax.nn.log_softmax(old.logits), np.float64)
        log_q = np.asarray(jax.nn.log_softmax(new.logits), np.float64)
        return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))
    mu_p, mu_q = np.asarray(old.mean, np.float64), np.asarray(new.mean, np.float64)
    ls_p, ls_q = np.asarray(old.log_std, np.float64), np.asarray(new.log_std, np.float64)
    kl = ls_q - ls_p + (np.exp(2 * ls_p) + (mu_p - mu_q) ** 2) / (2 * np.exp(2 * ls_q)) - 0.5
    return float(np.mean(np.sum(kl, axis=-1)))


def policy_arrays_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --------------------------------------------------------------------------------------------
# The trust region holds
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, max_kl", [("CartPole-v1", 0.01), ("Pendulum-v1", 2.0)])
def test_kl_after_every_trpo_update_is_within_delta(env_id, max_kl):
    """Recompute KL(old || new) from the policies after every update: <= delta, and equal to the
    metric. With delta = 0.01 the constraint is active (some KL > delta / 2); the huge delta on
    Pendulum makes the quadratic KL model wrong (the log-std enters the KL exponentially), so the
    line search has to backtrack there."""
    algo = TRPO(hidden=(16, 16), critic_epochs=2, critic_minibatches=2)
    hparams = TRPOHParams(max_kl=max_kl)
    kls, backtracks = [], []
    for state, batch, new_state, metrics in iterate(algo, env_id, hparams, 4):
        obs = batch.obs.reshape((-1,) + batch.obs.shape[2:])
        kl = numpy_kl(state, state.params["policy"], new_state.params["policy"], obs)
        assert kl <= max_kl * (1 + 1e-4), (kl, metrics)
        np.testing.assert_allclose(metrics["kl"], kl, rtol=1e-3, atol=1e-7)
        assert metrics["line_search_failed"] == 0.0
        kls.append(kl)
        backtracks.append(int(metrics["backtrack_index"]))
    if max_kl > 1:
        assert max(backtracks) > 0, backtracks  # the line search really had to shrink the step
    else:
        assert max(kls) > 0.5 * max_kl, kls  # the trust region is what limits the step


def test_trpo_run_kl_metric_never_exceeds_delta():
    """The metric array of a short compiled run of two seeds and two deltas (vmapped)."""
    config = TrainConfig("Pendulum-v1", num_envs=4, num_steps=64, total_timesteps=4 * 64 * 6)
    algo = TRPO(hidden=(16, 16), critic_epochs=1, critic_minibatches=2)
    deltas = np.array([0.01, 0.01, 0.1, 0.1], np.float32)
    hparams = TRPOHParams(max_kl=deltas)
    out = train.run_chunked(train.make_train(algo, config, hparams), train.seed_keys(0, 4), hparams)
    kl = out.metrics["kl"]
    assert kl.shape == (4, config.num_iterations)
    assert np.all(kl <= deltas[:, None] * (1 + 1e-4)), kl
    assert np.all(np.isfinite(kl)) and kl.max() > 0.01  # the larger delta was used


# --------------------------------------------------------------------------------------------
# Exact steps against dense references
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_npg_and_trpo_steps_equal_the_dense_natural_step(env_id):
    """theta_new - theta_old = coef^k sqrt(2 delta / x^T (F + d I) x) x, x = (F + d I)^{-1} g, with F
    the dense Hessian of the mean KL over every 3rd sample (``fisher_subsample=3``) and
    g = grad mean(ratio * normalised GAE advantage) over the whole batch."""
    damping, delta, every = 0.1, 0.01, 3
    num_params = 4 * 8 + 8 + 8 * 2 + 2 if env_id == "CartPole-v1" else 3 * 8 + 8 + 8 + 1 + 1
    settings = dict(hidden=(8,), cg_iters=2 * num_params, critic_epochs=1, critic_minibatches=2,
                    fisher_subsample=every)
    variants = [(NPG(**settings), NPGHParams(max_kl=delta, damping=damping)),
                (TRPO(**settings), TRPOHParams(max_kl=delta, damping=damping))]
    if env_id == "CartPole-v1":  # Kakade's fixed step eta x
        variants.append((NPG(normalize_step=False, **settings), NPGHParams(damping=damping, step_size=0.3)))
    for algo, hparams in variants:
        for state, batch, new_state, metrics in iterate(algo, env_id, hparams, 1, seed=3):
            pass
        theta = state.params["policy"]
        flat, unravel = ravel_pytree(theta)
        assert flat.shape[0] == num_params
        obs = batch.obs.reshape((-1,) + batch.obs.shape[2:])
        action = batch.action.reshape((-1,) + batch.action.shape[2:])
        # GAE advantages, recomputed with a NumPy loop from the critic's values
        values = np.asarray(state.value(batch.obs), np.float64)
        next_values = np.asarray(state.value(batch.next_obs), np.float64)
        reward, term = np.asarray(batch.reward, np.float64), np.asarray(batch.terminated)
        done = term | np.asarray(batch.truncated)
        adv = np.zeros_like(reward)
        running = np.zeros(reward.shape[1])
        for t in reversed(range(reward.shape[0])):
            delta_t = reward[t] + 0.99 * np.where(term[t], 0.0, next_values[t]) - values[t]
            running = delta_t + 0.99 * 0.97 * np.where(done[t], 0.0, running)
            adv[t] = running
        adv = ((adv - adv.mean()) / (adv.std() + 1e-8)).reshape(-1)

        old = state.policy.apply(theta, obs)
        old_log_prob = old.log_prob(action)

        def surrogate(f):
            ratio = jnp.exp(state.policy.apply(unravel(f), obs).log_prob(action) - old_log_prob)
            return jnp.mean(ratio * jnp.asarray(adv, jnp.float32))

        def mean_kl(f):
            new = state.policy.apply(unravel(f), obs[::every])
            return jnp.mean(jax.lax.stop_gradient(new).kl(new))

        g = np.asarray(jax.grad(surrogate)(flat), np.float64)
        fisher = np.asarray(jax.jit(jax.hessian(mean_kl))(flat), np.float64) + damping * np.eye(num_params)
        x = np.linalg.solve(fisher, g)
        step = np.sqrt(2 * delta / (x @ fisher @ x)) * x
        moved = np.asarray(ravel_pytree(new_state.params["policy"])[0], np.float64) - np.asarray(flat, np.float64)
        if isinstance(algo, TRPO):
            k = int(metrics["backtrack_index"])
            assert k >= 0
            step = 0.8**k * step
        elif not algo.normalize_step:
            step = 0.3 * x
        np.testing.assert_allclose(moved, step, rtol=2e-3, atol=2e-3 * np.abs(step).max())
        full_step = step if not isinstance(algo, TRPO) else step / 0.8**k
        np.testing.assert_allclose(metrics["step_norm"], np.linalg.norm(full_step), rtol=2e-3)


# --------------------------------------------------------------------------------------------
# Failure modes
# --------------------------------------------------------------------------------------------
def test_failed_line_search_keeps_policy_bit_identical(monkeypatch):
    """Make every candidate break the KL bound: the proposed step is non-zero, yet the policy
    parameters after the update are bit-identical (the step is NOT applied), the failure is
    reported, and the critic is still trained."""
    real_search = trpo_module.natural.backtracking_line_search

    def search_where_every_candidate_breaks_the_kl_bound(evaluate, *args, **kwargs):
        return real_search(lambda c: (evaluate(c)[0], jnp.float32(jnp.inf)), *args, **kwargs)

    monkeypatch.setattr(trpo_module.natural, "backtracking_line_search",
                        search_where_every_candidate_breaks_the_kl_bound)
    algo = TRPO(hidden=(16,), critic_epochs=1, critic_minibatches=2)
    for state, _, new_state, metrics in iterate(algo, "CartPole-v1", TRPOHParams(), 2):
        assert metrics["step_norm"] > 1e-3  # a real step was proposed
        assert metrics["line_search_failed"] == 1.0 and metrics["backtrack_index"] == -1
        assert metrics["kl"] == 0.0 and metrics["surrogate_improvement"] == 0.0
        assert policy_arrays_equal(state.params["policy"], new_state.params["policy"])
        assert not policy_arrays_equal(state.params["critic"], new_state.params["critic"])


@pytest.mark.parametrize("algo_cls, normalize_advantages", [(NPG, False), (TRPO, True)])
def test_zero_advantage_batch_gives_zero_step_and_no_nan(algo_cls, normalize_advantages):
    """Rewards all 0 and a zero critic: A = 0, g = 0, x^T F x = 0; the step is exactly zero, the
    policy is bit-identical and every metric is finite (no 0/0 in the step size or normalisation)."""

    def zero_rewards_and_critic(state, batch):
        critic = jax.tree.map(jnp.zeros_like, state.params["critic"])
        return (state.replace(params={**state.params, "critic": critic}),
                batch.replace(reward=jnp.zeros_like(batch.reward)))

    algo = algo_cls(hidden=(16,), critic_epochs=1, critic_minibatches=2, normalize_advantages=normalize_advantages)
    hparams = algo_cls.HParams()
    for state, _, new_state, metrics in iterate(algo, "CartPole-v1", hparams, 1, prepare=zero_rewards_and_critic):
        for name, value in metrics.items():
            assert np.isfinite(value), name
        assert metrics["step_norm"] == 0.0 and metrics["xFx"] == 0.0 and metrics["kl"] == 0.0
        assert policy_arrays_equal(state.params["policy"], new_state.params["policy"])
        if algo_cls is TRPO:
            assert metrics["line_search_failed"] == 1.0  # zero improvement is not an improvement


def test_invalid_settings_fail_before_compiling():
    from purejaxpg.config import ConfigError

    with pytest.raises(ConfigError, match="critic_minibatches=3"):
        train.make_train(TRPO(critic_minibatches=3), TrainConfig("CartPole-v1", 4, 64, 1024))
    with pytest.raises(ConfigError, match="backtrack_coef=1"):
        train.make_train(TRPO(), TrainConfig("CartPole-v1"), TRPOHParams(backtrack_coef=1.0))
    with pytest.raises(ConfigError, match="max_kl=0"):
        train.make_train(NPG(), TrainConfig("CartPole-v1"), NPGHParams(max_kl=0.0))
    with pytest.raises(ConfigError, match="fisher_subsample=0"):
        train.make_train(TRPO(fisher_subsample=0), TrainConfig("CartPole-v1", 4, 64, 1024))
    with pytest.raises(ConfigError, match="fisher_subsample=257"):
        train.make_train(NPG(fisher_subsample=257), TrainConfig("CartPole-v1", 4, 64, 1024))


# --------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------
def learn(algo, config, hparams, seeds=2, seed=0):
    t0 = time.perf_counter()
    out = train.run_chunked(train.make_train(algo, config, hparams), _learning.seed_keys(seeds, seed), hparams)
    final = results.final_returns(out.metrics)
    print(f"{algo.name} {config.env_id} {config.total_timesteps} steps: final {np.round(final, 1)}, "
          f"compile {out.compile_seconds:.1f}s run {out.run_seconds:.1f}s ({out.steps_per_second:.0f} steps/s), "
          f"wall {time.perf_counter() - t0:.1f}s")
    return final, out


@pytest.mark.learning
def test_trpo_learns_cartpole_quickly():
    final, _ = learn(TRPO(), TrainConfig("CartPole-v1", 8, 256, 50_000), TRPOHParams())
    _learning.check(final, every_seed_above=250, mean_above=350)


@pytest.mark.learning
def test_npg_improves_on_cartpole():
    final, out = learn(NPG(), TrainConfig("CartPole-v1", 8, 256, 50_000), NPGHParams())
    first = results.smoothed_returns(out.metrics, 3)[:, 2]
    assert np.all(final > 3 * first), (first, final)
    _learning.check(final, every_seed_above=250, mean_above=350)


def pendulum_preset(total_timesteps, **overrides):
    """presets.PRESETS["trpo"]["Pendulum-v1"] (algorithm, config, hyperparameters) at a given budget."""
    return experiment.build("trpo", "Pendulum-v1", {"total_timesteps": total_timesteps, **overrides})


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_trpo_learns_pendulum_quickly():
    # independent noise: the preset's gSDE (log_std_init -2) starts slower and pays off by 1e6 steps
    final, _ = learn(*pendulum_preset(200_000, use_sde=False, log_std_init=0.0))  # random policy: about -1200
    _learning.check(final, every_seed_above=-400, mean_above=-300)


@pytest.mark.slow
def test_trpo_solves_cartpole_within_3e5_steps():
    final, _ = learn(TRPO(), TrainConfig("CartPole-v1", 8, 256, 300_000), TRPOHParams(), seeds=4)
    assert np.all(final >= 475), final


@pytest.mark.slow
def test_trpo_pendulum_within_1e6_steps():
    final, _ = learn(*pendulum_preset(1_000_000), seeds=4)
    assert np.all(final >= -300), final
