"""On-policy MDPO: the t_k = 1 - k/K schedule, the growing KL weight, the loss against a NumPy
formula (KL(pi_theta || pi_k) with pi_k constant), and learning on CartPole and Pendulum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _learning
from purejaxpg import envs, presets, results, train
from purejaxpg.algorithms.mdpo import MDPO, MDPOHParams, mirror_descent_step_size
from purejaxpg.config import ConfigError, TrainConfig
from purejaxpg.rollout import Transition

CARTPOLE = envs.make("CartPole-v1")[2]
PENDULUM = envs.make("Pendulum-v1")[2]


def fake_batch(state, spec, key, T=16, N=4):
    """A [T, N] batch of random observations, actions drawn from the state's policy, random rewards."""
    k_obs, k_act, k_rew, k_done = jax.random.split(key, 4)
    obs = jax.random.normal(k_obs, (T, N) + spec.obs_shape)
    dist = state.dist(obs)
    action = dist.sample(k_act)
    terminated = jax.random.bernoulli(k_done, 0.1, (T, N))
    zeros = jnp.zeros((T, N))
    return Transition(obs, action, jax.random.normal(k_rew, (T, N)), terminated, jnp.zeros((T, N), bool),
                      jnp.roll(obs, -1, axis=0), {"log_prob": dist.log_prob(action)}, terminated, zeros, zeros)


def test_step_size_schedule_and_floor():
    K = 10
    progress = np.arange(K) / K
    t = np.asarray(jax.vmap(lambda p: mirror_descent_step_size(p, 0.05))(jnp.asarray(progress, jnp.float32)))
    np.testing.assert_allclose(t, 1.0 - np.arange(K) / K, rtol=1e-6)  # t_k = 1 - k/K, all above the floor
    assert np.all(np.diff(1.0 / t) > 0)  # the KL weight 1/t_k grows
    # the floor: at and beyond the end of the run t_k never reaches 0
    np.testing.assert_allclose(mirror_descent_step_size(jnp.float32(0.99), 0.05), 0.05)
    np.testing.assert_allclose(mirror_descent_step_size(jnp.float32(1.0), 0.05), 0.05)
    np.testing.assert_allclose(mirror_descent_step_size(jnp.float32(1.5), 0.05), 0.05)


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
def test_schedule_inside_the_training_loop():
    K = 8
    config = TrainConfig("CartPole-v1", num_envs=4, num_steps=16, total_timesteps=4 * 16 * K)
    algo = MDPO(num_sgd_steps=2, hidden=(8,))
    hp = MDPOHParams(min_step_size=0.01)
    out = train.run_chunked(train.make_train(algo, config, hp), train.seed_keys(0, 1), hp)
    np.testing.assert_allclose(out.metrics["step_size"][0], 1.0 - np.arange(K) / K, rtol=1e-6)
    np.testing.assert_allclose(out.metrics["kl_weight"][0], K / (K - np.arange(K)), rtol=1e-5)
    # without annealing t_k = 1 throughout
    flat = train.run_chunked(train.make_train(MDPO(num_sgd_steps=2, hidden=(8,), anneal_step_size=False), config, hp),
                             train.seed_keys(0, 1), hp)
    np.testing.assert_array_equal(flat.metrics["step_size"][0], 1.0)
    np.testing.assert_allclose(flat.metrics["lr"][0], float(hp.lr), rtol=1e-6)  # constant by default
    # anneal_lr: lr_k = lr (1 - k/K), the same linear schedule as PPO's
    annealed = train.run_chunked(train.make_train(MDPO(num_sgd_steps=2, hidden=(8,), anneal_lr=True), config, hp),
                                 train.seed_keys(0, 1), hp)
    np.testing.assert_allclose(annealed.metrics["lr"][0], float(hp.lr) * (1.0 - np.arange(K) / K), rtol=1e-5)


def test_growing_kl_weight_shrinks_the_update():
    """Same state, batch and key: late in the run (weight 1/t_k = 10) the step moves the policy less."""
    algo = MDPO(num_sgd_steps=10, hidden=(16,))
    hp = MDPOHParams(lr=1e-2, min_step_size=0.01)
    state = algo.init(jax.random.PRNGKey(0), CARTPOLE, hp)
    batch = fake_batch(state, CARTPOLE, jax.random.PRNGKey(1))
    update = jax.jit(algo.update)
    kls = [float(update(state, batch, jax.random.PRNGKey(2), hp, jnp.float32(p))[1]["kl"]) for p in (0.0, 0.5, 0.9)]
    assert kls[0] > kls[1] > kls[2] > 0, kls


@pytest.mark.parametrize("spec", [CARTPOLE, PENDULUM], ids=["categorical", "gaussian"])
def test_loss_matches_numpy_formula(spec):
    """-mean(r A) + KL(pi_theta || pi_k) / t + vf_coef L_V - ent_coef H, with pi_k held constant."""
    algo = MDPO(hidden=(8,))
    hp = MDPOHParams(vf_coef=0.7, ent_coef=0.05)
    state = algo.init(jax.random.PRNGKey(0), spec, hp)
    batch = fake_batch(state, spec, jax.random.PRNGKey(1), T=8, N=3)
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), state.params)
    old_dist, new_dist = state.dist(batch.obs), state.dist(batch.obs, params)
    adv = np.random.default_rng(0).normal(size=(8, 3))
    target = np.random.default_rng(1).normal(size=(8, 3))
    data = {"obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"], "old_dist": old_dist,
            "advantage": jnp.asarray(adv, jnp.float32), "target": jnp.asarray(target, jnp.float32)}
    t = 0.4
    loss, _ = algo.loss(params, state, data, jnp.float32(t), hp)
    # NumPy reference, float64
    lp_new = np.asarray(new_dist.log_prob(batch.action), np.float64)
    lp_old = np.asarray(batch.extras["log_prob"], np.float64)
    if spec.discrete:
        log_p = np.asarray(new_dist.log_probs_all, np.float64)   # pi_theta
        log_q = np.asarray(old_dist.log_probs_all, np.float64)   # pi_k
        kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)
        entropy = -np.sum(np.exp(log_p) * log_p, axis=-1)
    else:
        mu_p, s_p = np.asarray(new_dist.mean, np.float64), np.exp(np.asarray(new_dist.log_std, np.float64))
        mu_q, s_q = np.asarray(old_dist.mean, np.float64), np.exp(np.asarray(old_dist.log_std, np.float64))
        kl = np.sum(np.log(s_q / s_p) + (s_p**2 + (mu_p - mu_q) ** 2) / (2 * s_q**2) - 0.5, axis=-1)
        entropy = np.sum(np.log(s_p) + 0.5 * (1 + np.log(2 * np.pi)), axis=-1)
    values = np.asarray(state.value(batch.obs, params), np.float64)
    expected = (-np.mean(np.exp(lp_new - lp_old) * adv) + kl.mean() / t
                + 0.7 * 0.5 * np.mean((values - target) ** 2) - 0.05 * entropy.mean())
    assert kl.mean() > 1e-3
    np.testing.assert_allclose(loss, expected, rtol=2e-4)


def test_kl_gradient_is_zero_at_the_old_policy_and_not_identically_zero():
    """pi_k is a constant: grad KL(pi_theta || pi_k) vanishes at theta_k but not elsewhere."""
    algo = MDPO(hidden=(8,))
    state = algo.init(jax.random.PRNGKey(0), CARTPOLE, MDPOHParams())
    batch = fake_batch(state, CARTPOLE, jax.random.PRNGKey(1))
    old_dist = jax.lax.stop_gradient(state.dist(batch.obs))
    mean_kl = lambda p: jnp.mean(state.dist(batch.obs, p).kl(old_dist))  # noqa: E731
    at_old = jax.grad(mean_kl)(state.params)
    moved = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), state.params)
    away = jax.grad(mean_kl)(moved)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(at_old)) < 1e-6
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(away)) > 1e-3


def test_num_sgd_steps_is_validated():
    with pytest.raises(ConfigError, match="num_sgd_steps=0"):
        train.make_train(MDPO(num_sgd_steps=0), TrainConfig("CartPole-v1"), MDPOHParams())


# ----------------------------------------------------------------------------------------------
# Learning
# ----------------------------------------------------------------------------------------------


def _learn(env_id, num_seeds=2, **overrides):
    preset = dict(presets.preset("mdpo", env_id), **overrides)
    train_fields = ("num_envs", "num_steps", "total_timesteps", "normalize_obs")
    config = TrainConfig(env_id, **{k: preset.pop(k) for k in train_fields if k in preset})
    hp_fields = set(MDPOHParams.__dataclass_fields__)
    hp = MDPOHParams(**{k: preset.pop(k) for k in list(preset) if k in hp_fields})
    trainer = train.make_train(MDPO(**preset), config, hp)
    return train.run_chunked(trainer, _learning.seed_keys(num_seeds), hp)


@pytest.mark.learning
@pytest.mark.slow  # default-run budget; the 8-seed row of docs/results.md covers it
def test_improves_and_reaches_475_on_cartpole():
    # preset: 3e5 steps, lr 2e-3 annealed. About one MDPO run in 16 stays between 150 and 200 on
    # CartPole at this budget (the rest end at 430-500), and which one depends on float-level
    # differences, so the check is on 8 seeds: most of them learn, the mean is high.
    out = _learn("CartPole-v1", num_seeds=8)
    first = np.nanmean(out.metrics["episode_return"][:, :2], axis=1)
    assert np.all(first < 40), first
    _learning.check(results.final_returns(out.metrics), most_above=(6, 350), mean_above=350)


@pytest.mark.slow
@pytest.mark.learning
def test_improves_on_pendulum():
    # 2e5 steps (t_k annealed over them), ~40 s with compilation; 5 seeds end at -690 to -997
    out = _learn("Pendulum-v1", total_timesteps=200_000)
    first = np.nanmean(out.metrics["episode_return"][:, :2], axis=1)
    final = results.final_returns(out.metrics)
    assert np.all(first < -1000), first
    assert np.all(final >= first + 150), (first, final)


@pytest.mark.learning
@pytest.mark.slow
def test_reaches_minus_300_on_pendulum():
    out = _learn("Pendulum-v1", num_seeds=3)  # preset: 5e5 steps, ~100 s (5 seeds: -155 to -229)
    final = results.final_returns(out.metrics)
    assert np.all(final >= -300), final
