"""Environment layer: termination vs truncation, episode statistics, normalisation, clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import envs, rollout
from purejaxpg.config import ConfigError


def test_unknown_env_suggests_close_ids():
    with pytest.raises(ConfigError, match="CartPole-v1"):
        envs.make("CartPole-v2")


def test_spec_discrete_and_box():
    _, _, cart = envs.make("CartPole-v1")
    assert cart.discrete and cart.num_actions == 2 and cart.obs_shape == (4,) and cart.max_episode_steps == 500
    _, _, pend = envs.make("Pendulum-v1")
    assert not pend.discrete and pend.action_dim == 1
    assert pend.action_low == (-2.0,) and pend.action_high == (2.0,)


def test_continuous_actions_clipped_to_env_bounds():
    _, _, spec = envs.make("Pendulum-v1")
    action = jnp.array([[-7.0], [0.5], [3.0]])
    np.testing.assert_array_equal(envs.env_action(spec, action), np.array([[-2.0], [0.5], [2.0]]))


def _random_act(spec):
    def act(obs, key):
        if spec.discrete:
            return jax.random.randint(key, (obs.shape[0],), 0, spec.num_actions), {}
        return jax.random.normal(key, (obs.shape[0], spec.action_dim)) * 3.0, {}
    return rollout.stateless(act)


def test_pendulum_truncates_at_200_never_terminates():
    env, params, spec = envs.make("Pendulum-v1")
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 3)
    loop, traj = jax.jit(lambda l, k: rollout.collect(_random_act(spec), env, params, spec, l, k, 450))(
        loop, jax.random.PRNGKey(1))
    assert not np.asarray(traj.terminated).any()
    trunc = np.asarray(traj.truncated)
    # episodes of exactly 200 steps: truncated at t = 199 and 399 in every env
    np.testing.assert_array_equal(np.argwhere(trunc[:, 0]).ravel(), [199, 399])
    np.testing.assert_array_equal(np.asarray(traj.finished_length)[199], [200, 200, 200])
    # the finished return is the sum of that episode's rewards
    np.testing.assert_allclose(np.asarray(traj.finished_return)[199], np.asarray(traj.reward)[:200].sum(0), rtol=1e-5)


def test_rollout_steps_an_env_through_its_own_step():
    """An env whose class overrides step() is stepped through it (its own auto-reset is kept)."""
    env, params, spec = envs.make("CartPole-v1")

    class CountingCartPole(type(env)):
        def step(self, key, state, action, params=None):
            obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
            return obs, state, reward * 2.0, terminated, truncated, info

    custom = CountingCartPole()
    loop = envs.reset(custom, params, spec, jax.random.PRNGKey(0), 2)
    _, traj = rollout.collect(_random_act(spec), custom, params, spec, loop, jax.random.PRNGKey(1), 5)
    np.testing.assert_array_equal(np.asarray(traj.reward), 2.0)


def test_next_obs_is_final_observation_not_reset_observation():
    env, params, spec = envs.make("CartPole-v1")
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 8)
    loop, traj = rollout.collect(_random_act(spec), env, params, spec, loop, jax.random.PRNGKey(2), 200)
    obs, next_obs, done = map(np.asarray, (traj.obs, traj.next_obs, traj.done))
    assert done.any()
    # where the episode continues, next_obs[t] is obs[t+1]; where it ended, it is not (reset obs)
    cont = ~done[:-1]
    np.testing.assert_array_equal(next_obs[:-1][cont], obs[1:][cont])
    ended = done[:-1]
    assert not np.allclose(next_obs[:-1][ended], obs[1:][ended])
    # a terminated CartPole has left its bounds: |x| > 2.4 or |angle| > 12 degrees
    term = np.asarray(traj.terminated)
    final = next_obs[term]
    assert np.all((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * np.pi / 360))


def test_episode_statistics_match_a_host_recount():
    env, params, spec = envs.make("CartPole-v1")
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 4)
    loop, traj = rollout.collect(_random_act(spec), env, params, spec, loop, jax.random.PRNGKey(3), 300)
    reward, done = np.asarray(traj.reward), np.asarray(traj.done)
    for n in range(4):
        running, length = 0.0, 0
        for t in range(300):
            running += reward[t, n]
            length += 1
            if done[t, n]:
                assert traj.finished_return[t, n] == pytest.approx(running)
                assert traj.finished_length[t, n] == length
                running, length = 0.0, 0
            else:
                assert traj.finished_return[t, n] == 0 and traj.finished_length[t, n] == 0
        assert loop.episode_return[n] == pytest.approx(running)


def test_running_mean_std_matches_numpy_and_is_shaped_per_observation():
    rng = np.random.default_rng(0)
    stats = envs.RunningMeanStd.create((3,))
    chunks = [rng.normal(2.0, 3.0, size=(5, 7, 3)) for _ in range(4)]
    for c in chunks:
        stats = stats.update(jnp.asarray(c, jnp.float32))
    assert stats.mean.shape == (3,) and stats.var.shape == (3,)
    data = np.concatenate([c.reshape(-1, 3) for c in chunks])
    # the prior (mean 0, var 1, count 1e-4) has negligible weight
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-3)


def test_normalisation_of_a_constant_feature_is_finite_zero():
    stats = envs.RunningMeanStd.create((2,))
    batch = jnp.stack([jnp.full((50,), 5.0), jnp.linspace(-1, 1, 50)], axis=-1)
    stats = stats.update(batch)
    out = stats.normalize(batch)
    assert np.all(np.isfinite(out))
    # (x - mean) / sqrt(var + eps) with var ~ 0: bounded near 0, never inf or NaN
    assert np.max(np.abs(out[:, 0])) < 1e-2


def test_rollout_normalises_with_frozen_statistics():
    env, params, spec = envs.make("Pendulum-v1")
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 4)
    loop = loop.replace(obs_stats=loop.obs_stats.update(jnp.ones((10, 3)) * jnp.array([0.5, -0.2, 3.0])))
    before = loop.obs_stats
    seen = []

    def act(obs, key):
        return jnp.zeros((obs.shape[0], 1)), {"obs": obs}

    new_loop, traj = rollout.collect(rollout.stateless(act), env, params, spec, loop, jax.random.PRNGKey(1), 16,
                                     normalize_obs=True)
    # what the policy saw is exactly what the batch holds
    np.testing.assert_array_equal(traj.obs, traj.extras["obs"])
    # and the statistics were merged with the raw observations afterwards
    assert float(new_loop.obs_stats.count) == pytest.approx(float(before.count) + 64)


def test_reward_scaling_matches_a_numpy_running_return():
    env, params, spec = envs.make("CartPole-v1")
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 3)
    rng = np.random.default_rng(1)
    reward = rng.normal(1.0, 2.0, size=(20, 3)).astype(np.float32)
    done = rng.random((20, 3)) < 0.1
    new_loop, scaled = envs.scale_rewards(loop, jnp.asarray(reward), jnp.asarray(done), 0.9)
    running, seen = np.zeros(3), []
    for t in range(20):
        running = running * 0.9 + reward[t]
        seen.append(running.copy())
        running[done[t]] = 0.0
    seen = np.stack(seen)
    # prior: mean 0, var 1 with weight 1e-4
    n = seen.size
    mean = seen.mean() * n / (n + 1e-4)
    var = (1e-4 * 1.0 + seen.var() * n + seen.mean() ** 2 * 1e-4 * n / (n + 1e-4)) / (n + 1e-4)
    np.testing.assert_allclose(new_loop.return_stats.mean, mean, rtol=1e-4)
    np.testing.assert_allclose(scaled, reward / np.sqrt(var + 1e-8), rtol=1e-4)
    np.testing.assert_allclose(new_loop.discounted_return, running, rtol=1e-5)


def test_a_subclass_that_overrides_act_is_stepped_with_its_act():
    """The trainer steps the environments with the algorithm's own act (here: greedy actions)."""
    from purejaxpg import experiment, train
    from purejaxpg.algorithms import PPO

    class GreedyPPO(PPO):
        def act(self, state, obs, key, actor_state=()):
            dist = state.dist(obs)
            return dist.mode(), {"log_prob": dist.log_prob(dist.mode())}, actor_state

    _, config, hp = experiment.build("ppo", "CartPole-v1", {"num_envs": 2, "num_steps": 16,
                                                            "total_timesteps": 32})
    trainer = train.make_train(GreedyPPO(), config, hp)
    runner = trainer.init(jax.random.PRNGKey(0), hp)
    captured = {}
    real_update = GreedyPPO.update

    def spy(self, state, batch, key, hparams, progress):
        captured["batch"] = batch
        return real_update(self, state, batch, key, hparams, progress)

    GreedyPPO.update = spy
    trainer.step(runner, hp)
    batch = captured["batch"]
    greedy = runner.learner.dist(batch.obs).mode()
    np.testing.assert_array_equal(batch.action, greedy)
