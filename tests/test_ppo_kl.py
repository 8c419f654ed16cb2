"""PPO with an adaptive KL penalty: the beta rule inside the algorithm, the loss against a NumPy
formula, validation, and learning on CartPole and Pendulum."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _learning
from purejaxpg import envs, presets, results, train
from purejaxpg.algorithms.ppo_kl import PPOKL, PPOKLHParams
from purejaxpg.config import ConfigError, TrainConfig
from purejaxpg.rollout import Transition

CARTPOLE = envs.make("CartPole-v1")[2]
PENDULUM = envs.make("Pendulum-v1")[2]


def fake_batch(state, spec, key, T=16, N=4):
    """A [T, N] batch of random observations, actions drawn from the state's policy, random rewards."""
    k_obs, k_act, k_rew, k_done = jax.random.split(key, 4)
    obs = jax.random.normal(k_obs, (T, N) + spec.obs_shape)
    dist = state.actor_critic.dist(obs)
    action = dist.sample(k_act)
    terminated = jax.random.bernoulli(k_done, 0.1, (T, N))
    zeros = jnp.zeros((T, N))
    return Transition(obs, action, jax.random.normal(k_rew, (T, N)), terminated, jnp.zeros((T, N), bool),
                      jnp.roll(obs, -1, axis=0), {"log_prob": dist.log_prob(action)}, terminated, zeros, zeros)


def np_rule(beta, kl, target, low=1e-4, high=1e4):
    """Schulman et al. 2017, sec. 4, written out."""
    if kl < target / 1.5:
        beta = beta / 2
    elif kl > target * 1.5:
        beta = beta * 2
    return min(max(beta, low), high)


def np_categorical_kl(p_logits, q_logits):
    p_logits, q_logits = (np.asarray(x, np.float64) for x in (p_logits, q_logits))
    log_p = p_logits - np.log(np.exp(p_logits).sum(-1, keepdims=True))
    log_q = q_logits - np.log(np.exp(q_logits).sum(-1, keepdims=True))
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


@pytest.fixture(scope="module")
def setup():
    algo = PPOKL(num_epochs=2, num_minibatches=2, hidden=(16, 16), anneal_lr=False)
    hp = PPOKLHParams(lr=3e-3, beta_init=1.0)
    state = algo.init(jax.random.PRNGKey(0), CARTPOLE, hp)
    batch = fake_batch(state, CARTPOLE, jax.random.PRNGKey(1))
    return algo, jax.jit(algo.update), state, batch, hp


def test_measured_kl_is_the_analytic_kl_of_the_whole_update(setup):
    algo, update, state, batch, hp = setup
    new_state, metrics = update(state, batch, jax.random.PRNGKey(2), hp, jnp.float32(0.0))
    old_logits = np.asarray(state.actor_critic.dist(batch.obs).logits)
    new_logits = np.asarray(new_state.actor_critic.dist(batch.obs).logits)
    expected = np_categorical_kl(old_logits, new_logits).mean()  # KL(pi_old || pi_new)
    assert expected > 1e-4  # the update moved the policy
    np.testing.assert_allclose(metrics["kl"], expected, rtol=1e-3)
    assert float(metrics["beta"]) == 1.0  # the beta used in this update


def test_beta_thresholds(setup):
    """beta halves below kl_target / 1.5, doubles above 1.5 kl_target, and is kept in between."""
    _, update, state, batch, hp = setup
    key = jax.random.PRNGKey(3)
    _, metrics = update(state, batch, key, hp, jnp.float32(0.0))
    kl = float(metrics["kl"])  # kl_target enters only the beta rule, so every run below measures this kl
    cases = {1.5 * kl * 1.01: 0.5,    # kl just below target / 1.5 -> halve
             1.5 * kl * 0.99: 1.0,    # inside the band -> keep
             kl: 1.0,
             kl / 1.5 * 1.01: 1.0,
             kl / 1.5 * 0.99: 2.0}    # kl just above 1.5 target -> double
    for target, expected in cases.items():
        new_state, m = update(state, batch, key, dataclasses.replace(hp, kl_target=target),
                              jnp.float32(0.0))
        np.testing.assert_allclose(m["kl"], kl, rtol=1e-6)
        assert float(new_state.beta) == expected, (target / kl, float(new_state.beta))


@pytest.mark.parametrize("regime", ["small_kl", "large_kl"])
def test_beta_halves_or_doubles_over_updates(setup, regime):
    algo, update, state, batch, _ = setup
    # tiny steps -> KL far below the target; big steps and a tiny target -> KL far above it
    hp = (PPOKLHParams(lr=1e-7, kl_target=0.01, beta_init=1.0, beta_min=0.2) if regime == "small_kl"
          else PPOKLHParams(lr=1e-2, kl_target=1e-9, beta_init=1.0, beta_max=10.0))
    state = algo.init(jax.random.PRNGKey(0), CARTPOLE, hp)
    betas, expected = [], [1.0]
    for i in range(5):
        state, metrics = update(state, batch, jax.random.PRNGKey(10 + i), hp, jnp.float32(0.0))
        betas.append(float(metrics["beta"]))
        expected.append(np_rule(expected[-1], float(metrics["kl"]), float(hp.kl_target), float(hp.beta_min),
                                float(hp.beta_max)))
    betas.append(float(state.beta))
    np.testing.assert_allclose(betas, expected, rtol=1e-6)
    if regime == "small_kl":
        np.testing.assert_allclose(betas, [1.0, 0.5, 0.25, 0.2, 0.2, 0.2])  # halving, floored at beta_min
    else:
        np.testing.assert_allclose(betas, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0])  # doubling, capped at beta_max


def test_beta_is_carried_through_the_training_loop_per_run():
    """A vmapped grid over (beta_init, kl_target): each run's beta follows the rule on its own measured KL."""
    config = TrainConfig("CartPole-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 6)
    algo = PPOKL(num_epochs=2, num_minibatches=2, hidden=(8,), anneal_lr=False)
    hp = PPOKLHParams(lr=3e-3, beta_init=np.array([1.0, 0.3], np.float32), kl_target=np.array([1e-6, 1.0], np.float32),
                      beta_min=1e-4)  # the rule itself, away from the floor
    out = train.run_chunked(train.make_train(algo, config, hp), train.seed_keys(0, 2), hp)
    betas, kls = out.metrics["beta"], out.metrics["kl"]
    for run in range(2):
        expected = [float(hp.beta_init[run])]
        for kl in kls[run][:-1]:
            expected.append(np_rule(expected[-1], float(kl), float(hp.kl_target[run])))
        np.testing.assert_allclose(betas[run], expected, rtol=1e-6)
    np.testing.assert_allclose(betas[0][:3], [1.0, 2.0, 4.0])   # KL >> 1e-6: doubling
    np.testing.assert_allclose(betas[1][:3], [0.3, 0.15, 0.075])  # KL << 1.0: halving


def test_fixed_objective_keeps_beta(setup):
    _, _, state, batch, hp = setup
    algo = PPOKL(objective="fixed", num_epochs=2, num_minibatches=2, hidden=(16, 16), anneal_lr=False)
    hp = PPOKLHParams(lr=1e-2, kl_target=1e-9, beta_init=0.7)
    state = algo.init(jax.random.PRNGKey(0), CARTPOLE, hp)
    update = jax.jit(algo.update)
    for i in range(3):
        state, metrics = update(state, batch, jax.random.PRNGKey(i), hp, jnp.float32(0.0))
        assert metrics["kl"] > 1.5e-9
        np.testing.assert_allclose(float(state.beta), 0.7, rtol=1e-7)


@pytest.mark.parametrize("spec", [CARTPOLE, PENDULUM], ids=["categorical", "gaussian"])
def test_loss_matches_numpy_formula(spec):
    """-mean(r A_std) + beta KL(pi_old || pi_theta) + vf_coef L_V - ent_coef H, with pi_old held constant."""
    algo = PPOKL(hidden=(8,))
    hp = PPOKLHParams(vf_coef=0.7, ent_coef=0.05)
    state = algo.init(jax.random.PRNGKey(0), spec, hp)
    batch = fake_batch(state, spec, jax.random.PRNGKey(1), T=8, N=3)
    ac = state.actor_critic
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(5), p.shape), ac.params)
    flat = lambda x: np.asarray(x).reshape((-1,) + np.asarray(x).shape[2:])  # noqa: E731
    old_dist = ac.dist(batch.obs)
    new_dist = ac.dist(batch.obs, params)
    adv = np.random.default_rng(0).normal(size=24)
    target = np.random.default_rng(1).normal(size=24)
    minibatch = {"obs": flat(batch.obs), "action": flat(batch.action), "log_prob": flat(batch.extras["log_prob"]),
                 "old_dist": jax.tree.map(flat, old_dist), "advantage": jnp.asarray(adv, jnp.float32),
                 "target": jnp.asarray(target, jnp.float32)}
    beta = jnp.float32(1.7)
    loss, _ = algo.loss(params, ac, minibatch, beta, hp)
    # NumPy reference
    lp_new = flat(new_dist.log_prob(batch.action)).astype(np.float64)
    lp_old = flat(batch.extras["log_prob"]).astype(np.float64)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    if spec.discrete:
        kl = np_categorical_kl(flat(old_dist.logits), flat(new_dist.logits))
        logp = flat(new_dist.logits) - np.log(np.exp(flat(new_dist.logits)).sum(-1, keepdims=True))
        entropy = -np.sum(np.exp(logp) * logp, axis=-1)
    else:
        mu_p, s_p = flat(old_dist.mean), np.exp(flat(old_dist.log_std))
        mu_q, s_q = flat(new_dist.mean), np.exp(flat(new_dist.log_std))
        kl = np.sum(np.log(s_q / s_p) + (s_p**2 + (mu_p - mu_q) ** 2) / (2 * s_q**2) - 0.5, axis=-1)
        entropy = np.sum(np.log(s_q) + 0.5 * (1 + np.log(2 * np.pi)), axis=-1)
    values = flat(ac.value(batch.obs, params))
    expected = (-np.mean(np.exp(lp_new - lp_old) * a) + 1.7 * kl.mean()
                + 0.7 * 0.5 * np.mean((values - target) ** 2) - 0.05 * entropy.mean())
    assert kl.mean() > 1e-3
    np.testing.assert_allclose(loss, expected, rtol=2e-4)


def test_objective_is_validated():
    with pytest.raises(ConfigError, match="objective='clip'"):
        train.make_train(PPOKL(objective="clip"), TrainConfig("CartPole-v1"), PPOKLHParams())
    with pytest.raises(ConfigError, match="num_minibatches=3"):
        train.make_train(PPOKL(num_minibatches=3), TrainConfig("CartPole-v1"), PPOKLHParams())


# ----------------------------------------------------------------------------------------------
# Learning
# ----------------------------------------------------------------------------------------------


def _learn(env_id, num_seeds=2, **overrides):
    preset = dict(presets.preset("ppo_kl", env_id), **overrides)
    train_fields = ("num_envs", "num_steps", "total_timesteps", "normalize_obs")
    config = TrainConfig(env_id, **{k: preset.pop(k) for k in train_fields if k in preset})
    hp_fields = set(PPOKLHParams.__dataclass_fields__)
    hp = PPOKLHParams(**{k: preset.pop(k) for k in list(preset) if k in hp_fields})
    trainer = train.make_train(PPOKL(**preset), config, hp)
    return train.run_chunked(trainer, _learning.seed_keys(num_seeds), hp)


@pytest.mark.learning
@pytest.mark.slow  # default-run budget; the 8-seed row of docs/results.md covers it
def test_improves_and_reaches_475_on_cartpole():
    # the preset's 5e5 steps (random policy: 22). About one seed in 30 still stalls near 190
    # (two 16-seed runs: all at 500; a batch of 2: 194 and 500), so three of four must learn.
    out = _learn("CartPole-v1", num_seeds=4, total_timesteps=500_000)
    first = np.nanmean(out.metrics["episode_return"][:, :2], axis=1)
    assert np.all(first < 40), first
    _learning.check(results.final_returns(out.metrics), most_above=(3, 400), mean_above=350)


@pytest.mark.slow
@pytest.mark.learning
def test_improves_on_pendulum():
    out = _learn("Pendulum-v1", total_timesteps=200_000)  # ~45 s with compilation (5 seeds: -205 to -291)
    first = np.nanmean(out.metrics["episode_return"][:, :2], axis=1)
    final = results.final_returns(out.metrics)
    assert np.all(first < -1000), first
    assert np.all(final >= -500), final


@pytest.mark.learning
@pytest.mark.slow
def test_reaches_minus_300_on_pendulum():
    out = _learn("Pendulum-v1", num_seeds=3)  # preset: 5e5 steps, ~80 s
    final = results.final_returns(out.metrics)
    assert np.all(final >= -300), final
