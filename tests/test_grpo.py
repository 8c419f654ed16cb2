"""GRPO: first-episode masking, group-relative advantages, shared start states, k3 KL to a
reference, weighted losses, validation, and learning on CartPole."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _learning
from purejaxpg import envs, presets, results, train
from purejaxpg.algorithms.grpo import (GRPO, GRPOHParams, first_episode_mask, first_episode_returns,
                                       grouped_advantages, weighted_clipped_surrogate_loss, weighted_mean)
from purejaxpg import objectives
from purejaxpg.config import ConfigError, TrainConfig
from purejaxpg.distributions import Categorical
from purejaxpg.rollout import Transition

# ----------------------------------------------------------------------------------------------
# NumPy references
# ----------------------------------------------------------------------------------------------


def np_first_episode(rewards, done):
    """Loop reference: mask, return and length of each env's first episode."""
    T, N = rewards.shape
    mask = np.zeros((T, N), bool)
    rets, lens = np.zeros(N), np.zeros(N, int)
    for n in range(N):
        for t in range(T):
            mask[t, n] = True
            rets[n] += rewards[t, n]
            lens[n] += 1
            if done[t, n]:
                break
    return mask, rets, lens


def np_group_advantages(rets, G, eps=1e-8):
    out = np.zeros_like(rets, dtype=np.float64)
    for start in range(0, len(rets), G):
        g = rets[start:start + G].astype(np.float64)
        out[start:start + G] = (g - g.mean()) / (g.std() + eps)
    return out


def synthetic_batch(key, T=12, N=8, p_done=0.15, obs_dim=4):
    """A Transition with random rewards and episode ends (one env without any end, one ending at t=0)."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    done = np.array(jax.random.bernoulli(k1, p_done, (T, N)))
    done[:, 0] = False          # first episode runs past the batch
    done[0, 1] = True           # first episode is one step long
    done[-1, 2], done[:-1, 2] = True, False  # ends exactly at the last step
    rewards = np.asarray(jax.random.uniform(k2, (T, N), minval=-1.0, maxval=2.0))
    obs = jax.random.normal(k3, (T, N, obs_dim))
    action = jax.random.randint(k4, (T, N), 0, 2)
    zeros = jnp.zeros((T, N))
    terminated = jnp.asarray(done)
    return Transition(obs, action, jnp.asarray(rewards), terminated, jnp.zeros((T, N), bool), obs,
                      {"log_prob": jnp.full((T, N), np.log(0.5))}, terminated, zeros, zeros)


# ----------------------------------------------------------------------------------------------
# Masking and advantages
# ----------------------------------------------------------------------------------------------


def test_first_episode_mask_and_returns_match_numpy_loop():
    batch = synthetic_batch(jax.random.PRNGKey(0))
    rewards, done = np.asarray(batch.reward), np.asarray(batch.done)
    mask, rets, lens = first_episode_returns(batch.reward, batch.done)
    ref_mask, ref_rets, ref_lens = np_first_episode(rewards, done)
    np.testing.assert_array_equal(np.asarray(mask), ref_mask)
    np.testing.assert_array_equal(np.asarray(first_episode_mask(batch.done.astype(jnp.float32))), ref_mask)
    np.testing.assert_allclose(np.asarray(rets), ref_rets, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(lens), ref_lens)
    assert ref_lens[1] == 1 and ref_lens[0] == ref_lens[2] == rewards.shape[0]  # the edge cases are present
    assert (~ref_mask).any()  # some steps are masked out


def test_group_advantages_mean_zero_std_one_and_equal_groups_zero():
    rets = np.array([1.0, 5.0, 2.0, 8.0,   3.0, 3.0, 3.0, 3.0,   -1.0, 0.0, 10.0, 4.0], np.float32)
    adv = np.asarray(grouped_advantages(jnp.asarray(rets), 4))
    np.testing.assert_allclose(adv, np_group_advantages(rets, 4), rtol=1e-5, atol=1e-6)
    groups = adv.reshape(3, 4)
    np.testing.assert_allclose(groups[[0, 2]].mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(groups[[0, 2]].std(axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(adv))
    np.testing.assert_array_equal(groups[1], 0.0)  # equal returns: exactly zeros, not NaN


def test_large_equal_returns_give_exact_zeros():
    rets = jnp.full((8,), 500.0)  # a solved CartPole group
    np.testing.assert_array_equal(np.asarray(grouped_advantages(rets, 8)), 0.0)


@pytest.mark.parametrize("aggregation", ["step", "episode"])
def test_batch_advantages_and_weights_match_numpy(aggregation):
    batch = synthetic_batch(jax.random.PRNGKey(1))
    algo = GRPO(episode_group_size=4, loss_aggregation=aggregation)
    scored = algo.advantages(batch)
    mask, rets, lens = np_first_episode(np.asarray(batch.reward), np.asarray(batch.done))
    per_env = np_group_advantages(rets, 4)
    expected_adv = np.where(mask, per_env[None, :], 0.0)
    expected_w = mask / lens[None, :] if aggregation == "episode" else mask.astype(float)
    np.testing.assert_allclose(np.asarray(scored["advantage"]), expected_adv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(scored["weight"]), expected_w, rtol=1e-6)
    if aggregation == "episode":  # every episode weighs 1 in total
        np.testing.assert_allclose(np.asarray(scored["weight"]).sum(axis=0), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Weighted losses
# ----------------------------------------------------------------------------------------------


def test_weighted_clipped_surrogate_matches_numpy_and_splits_into_minibatches():
    rng = np.random.default_rng(0)
    lp, old, adv = (rng.normal(size=64) * s for s in (0.3, 0.3, 1.0))
    w = rng.uniform(size=64) * (rng.uniform(size=64) < 0.6)
    r = np.exp(lp - old)
    per = np.minimum(r * adv, np.clip(r, 0.8, 1.2) * adv)
    expected = -np.sum(w * per) / np.sum(w)
    f32 = lambda *xs: [jnp.asarray(x, jnp.float32) for x in xs]  # noqa: E731
    full = weighted_clipped_surrogate_loss(*f32(lp, old, adv), jnp.float32(0.2), *f32(w))
    np.testing.assert_allclose(full, expected, rtol=1e-5)
    # minibatch losses normalised by the batch's weight share average to the full-batch loss
    share = jnp.float32(np.sum(w) / 4)
    pieces = [weighted_clipped_surrogate_loss(*f32(lp[i::4], old[i::4], adv[i::4]), jnp.float32(0.2),
                                              *f32(w[i::4]), share) for i in range(4)]
    np.testing.assert_allclose(np.mean(pieces), expected, rtol=1e-5)
    # a minibatch with no valid step gives 0, not NaN
    zero = weighted_clipped_surrogate_loss(*f32(lp, old, adv), jnp.float32(0.2), jnp.zeros(64))
    assert float(zero) == 0.0
    assert float(weighted_mean(jnp.ones(3), jnp.zeros(3))) == 0.0
    np.testing.assert_allclose(weighted_mean(jnp.arange(4.0), jnp.array([0.0, 1.0, 1.0, 2.0])), (1 + 2 + 6) / 4)


def test_masked_steps_get_no_gradient():
    spec = envs.make("CartPole-v1")[2]
    algo = GRPO(episode_group_size=4, hidden=(8,))
    state = algo.init(jax.random.PRNGKey(0), spec, GRPOHParams())
    batch = synthetic_batch(jax.random.PRNGKey(2))
    scored = algo.advantages(batch)
    minibatch = {"obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"],
                 "ref_log_prob": batch.extras["log_prob"], "advantage": scored["advantage"],
                 "weight": scored["weight"]}
    grad_obs = jax.grad(lambda obs: algo.loss(state.actor_critic.params, state.actor_critic,
                                              {**minibatch, "obs": obs}, jnp.sum(scored["weight"]),
                                              GRPOHParams(ent_coef=0.01))[0])(batch.obs)
    masked = ~np.asarray(scored["mask"])
    assert np.all(np.asarray(grad_obs)[masked] == 0.0)
    assert np.any(np.asarray(grad_obs)[~masked] != 0.0)


# ----------------------------------------------------------------------------------------------
# k3 KL to the reference
# ----------------------------------------------------------------------------------------------


def test_k3_nonnegative_zero_only_where_policies_agree_and_unbiased():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5))
    ref_logits = logits.copy()
    ref_logits[3:] += rng.normal(size=(3, 5))  # rows 0-2 agree, rows 3-5 differ
    pi, ref = Categorical(jnp.asarray(logits, jnp.float32)), Categorical(jnp.asarray(ref_logits, jnp.float32))
    k3 = np.asarray(objectives.grpo_k3(pi.log_probs_all, ref.log_probs_all))  # every action of every row
    assert np.all(k3 >= 0)
    np.testing.assert_array_equal(k3[:3], 0.0)
    assert np.all(k3[3:] > 0)
    # E_{a ~ pi}[rho - log rho - 1] = KL(pi || pi_ref) (closed form in NumPy)
    p = np.exp(logits - np.log(np.exp(logits).sum(1, keepdims=True)))
    log_q = ref_logits - np.log(np.exp(ref_logits).sum(1, keepdims=True))
    kl = np.sum(p * (np.log(p) - log_q), axis=1)
    np.testing.assert_allclose(np.sum(p * k3, axis=1), kl, rtol=1e-4, atol=1e-6)


def _fake_state_batch(algo, seed=0):
    spec = envs.make("CartPole-v1")[2]
    hp = GRPOHParams(lr=1e-2)
    state = algo.init(jax.random.PRNGKey(seed), spec, hp)
    batch = synthetic_batch(jax.random.PRNGKey(seed + 1))
    dist = state.actor_critic.dist(batch.obs)
    return state, batch.replace(extras={"log_prob": dist.log_prob(batch.action)}), hp


@pytest.mark.parametrize("interval", [0, 2])
def test_reference_is_initial_policy_or_refreshed_every_m_iterations(interval):
    algo = GRPO(episode_group_size=4, hidden=(8,), num_epochs=1, num_minibatches=1, ref_update_interval=interval)
    state, batch, hp = _fake_state_batch(algo)
    initial = state.actor_critic.params["policy"]
    update = jax.jit(algo.update)
    history = [state.actor_critic.params["policy"]]
    kls = []
    for i in range(4):
        state, metrics = update(state, batch, jax.random.PRNGKey(i), hp, jnp.float32(0.0))
        history.append(state.actor_critic.params["policy"])
        kls.append(float(metrics["kl_ref"]))
        # the reference used in iteration i: the policy at the start of the last iteration k <= i with k % M == 0
        expected = initial if interval == 0 else history[(i // interval) * interval]
        jax.tree.map(np.testing.assert_array_equal, state.ref_policy, expected)
    assert int(state.iteration) == 4
    # k3 to the reference (measured before each minibatch step) is 0 exactly where pi_theta = pi_ref
    at_reference = [0] if interval == 0 else [0, 2]
    for i in range(4):
        if i in at_reference:
            assert kls[i] < 1e-7, (i, kls)
        else:
            assert kls[i] > 1e-4, (i, kls)
    if interval == 0:
        assert kls[3] > kls[1]  # drifting away from the fixed reference


# ----------------------------------------------------------------------------------------------
# Shared start states on a real gymnax batch through the training skeleton
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProbeGRPO(GRPO):
    """GRPO whose metrics also expose the batch's first observations and actions."""

    def update(self, state, batch, key, hparams, progress):
        state, metrics = super().update(state, batch, key, hparams, progress)
        return state, {**metrics, "obs": batch.obs[:10], "actions": batch.action[:20]}


def test_group_members_share_start_state_and_diverge():
    G, N = 4, 12
    algo = ProbeGRPO(episode_group_size=G, hidden=(16,))
    config = TrainConfig("CartPole-v1", num_envs=N, num_steps=500, total_timesteps=N * 500 * 2)
    trainer = train.make_train(algo, config, GRPOHParams())
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0), GRPOHParams())
    step = jax.jit(trainer.step)
    first_obs = []
    for _ in range(2):
        runner, metrics = step(runner, GRPOHParams())
        obs = np.asarray(metrics["obs"]).reshape(10, N // G, G, -1)
        actions = np.asarray(metrics["actions"]).reshape(20, N // G, G)
        start = obs[0]
        # the same start state within a group ...
        np.testing.assert_array_equal(start, np.broadcast_to(start[:, :1], start.shape))
        # ... different start states across groups
        assert len({tuple(s) for s in start[:, 0]}) == N // G
        for g in range(N // G):  # members act differently and their trajectories diverge
            assert len({tuple(actions[:, g, m]) for m in range(G)}) == G
            assert len({tuple(obs[-1, g, m]) for m in range(G)}) > 1
        first_obs.append(start[:, 0])
    assert not np.array_equal(first_obs[0], first_obs[1])  # every iteration starts from a fresh reset


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo_kwargs, config_kwargs, match", [
    (dict(episode_group_size=1), {}, r"episode_group_size=1 must be an integer >= 2.*set episode_group_size"),
    (dict(episode_group_size=3), {}, r"episode_group_size=3 does not divide num_envs=8"),
    ({}, dict(num_steps=200), r"num_steps=200 is shorter than an episode.*num_steps=500"),
    (dict(ref_update_interval=-1), {}, r"ref_update_interval=-1"),
    (dict(loss_aggregation="token"), {}, r"loss_aggregation='token'"),
    (dict(num_minibatches=3), {}, r"num_minibatches=3"),
])
def test_validation_names_field_and_fix(algo_kwargs, config_kwargs, match):
    config = TrainConfig("CartPole-v1", **{"num_envs": 8, "num_steps": 500, "total_timesteps": 8000, **config_kwargs})
    with pytest.raises(ConfigError, match=match):
        train.make_train(GRPO(**{"episode_group_size": 4, **algo_kwargs}), config, GRPOHParams())


# ----------------------------------------------------------------------------------------------
# Learning
# ----------------------------------------------------------------------------------------------


def _learn(env_id, num_seeds=2, **overrides):
    preset = dict(presets.preset("grpo", env_id), **overrides)
    train_fields = ("num_envs", "num_steps", "total_timesteps", "normalize_obs")
    config = TrainConfig(env_id, **{k: preset.pop(k) for k in train_fields if k in preset})
    hp = GRPOHParams(lr=preset.pop("lr"))
    trainer = train.make_train(GRPO(**preset), config, hp)
    return train.run_chunked(trainer, _learning.seed_keys(num_seeds), hp)


@pytest.mark.learning
@pytest.mark.slow  # default-run budget; the 8-seed row of docs/results.md covers it
def test_improves_and_reaches_475_on_cartpole():
    # preset budget 640k steps = 40 iterations of 32 x 500 (random policy: 22). Most seeds end
    # above 480; now and then one is still climbing (283 at one seed offset), so three of four.
    out = _learn("CartPole-v1", num_seeds=4)
    first = np.asarray(out.metrics["group_return"][:, :2]).mean(axis=1)
    assert np.all(first < 40), first
    _learning.check(results.final_returns(out.metrics), most_above=(3, 400), mean_above=350)


@pytest.mark.learning
@pytest.mark.slow
def test_improves_on_pendulum():
    # preset: 1e6 steps, 64 envs in groups of 8, ~90 s
    out = _learn("Pendulum-v1")
    first = np.asarray(out.metrics["group_return"][:, :2]).mean(axis=1)
    final = results.final_returns(out.metrics)
    assert np.all(first < -1000), first
    assert np.all(final >= -400), final
