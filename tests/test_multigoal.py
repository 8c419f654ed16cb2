"""purejaxpg.multigoal: the multi-goal point mass against a NumPy re-implementation, its gymnax
interface (auto-reset, terminated vs truncated) and a few training iterations through the Trainer."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import envs, multigoal, train
from purejaxpg.algorithms.sql import SQL, SQLHParams
from purejaxpg.config import TrainConfig, hparams_to_arrays


def np_step(position, action, p):
    """The paper's point mass, written plainly (no noise)."""
    velocity = np.clip(action, -1.0, 1.0)
    new = np.clip(position + velocity, -p.bound, p.bound)
    distances = [np.linalg.norm(new - np.asarray(g)) for g in p.goals]
    reached = min(distances) < p.goal_radius
    reward = -p.action_cost * np.sum(velocity ** 2) - p.distance_cost * min(distances) ** 2 + p.goal_reward * reached
    return new, reward, reached


def test_dynamics_and_rewards_match_numpy_over_an_episode():
    env = multigoal.MultiGoal()
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == (2,) and np.all(np.abs(obs) < 0.5)  # N(0, 0.1^2) start
    position = np.asarray(obs, np.float64)
    # right at full speed (clipped from 1.7), within the radius 1 of the goal (5, 0) at step 4
    actions = [np.array([1.7, 0.0]), np.array([1.0, 0.05]), np.array([0.9, -0.2]), np.array([1.0, 0.1]),
               np.array([1.0, 0.0])]
    step = jax.jit(env.step)
    for t, action in enumerate(actions):
        position, reward, reached = np_step(position, action, params)
        obs, state, r, terminated, truncated, info = step(jax.random.PRNGKey(t), state, jnp.asarray(action), params)
        np.testing.assert_allclose(info["final_observation"], position, rtol=1e-5, atol=1e-5)
        assert float(r) == pytest.approx(reward, rel=1e-5, abs=1e-4)
        assert bool(terminated) == reached and not bool(truncated)
        if reached:
            break
    assert reached and t == 3, "the scripted path comes within 1 of the goal (5, 0) at step 4"
    assert np.linalg.norm(np.asarray(obs)) < 0.5  # auto-reset to the start


def test_walls_clip_and_the_time_limit_truncates_without_terminating():
    env = multigoal.MultiGoal()
    params = dataclasses.replace(env.default_params, max_steps_in_episode=9)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    position = np.asarray(state.position, np.float64)
    step = jax.jit(env.step)
    for t in range(9):  # diagonally out to the corner (7, 7): no goal on the way
        position, reward, _ = np_step(position, np.array([1.0, 1.0]), params)
        _, state, r, terminated, truncated, info = step(jax.random.PRNGKey(t), state, jnp.ones(2), params)
        assert not bool(terminated)
        assert float(r) == pytest.approx(reward, rel=1e-5)
    np.testing.assert_allclose(info["final_observation"], [7.0, 7.0])
    assert bool(truncated)


def test_spec_and_a_few_sql_iterations_through_the_trainer(fast_compiles):
    """The env object goes through envs._spec and train.Trainer (make_train takes gymnax ids only)."""
    env = multigoal.MultiGoal()
    params = env.default_params
    spec = envs._spec("MultiGoal", env, params)
    assert spec.obs_shape == (2,) and spec.action_dim == 2 and spec.max_episode_steps == 30
    assert spec.action_low == (-1.0, -1.0) and spec.action_high == (1.0, 1.0)
    algo = SQL(hidden=(16,), batch_size=8, buffer_size=128, learning_starts=16, num_particles=4, value_samples=4)
    config = TrainConfig(env_id="MultiGoal", num_envs=4, num_steps=8, total_timesteps=4 * 8 * 3)
    algo.validate(spec, config)
    trainer = train.Trainer(algo, config, spec, env, params)
    hparams = hparams_to_arrays(SQLHParams(alpha=10.0))
    runner, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), hparams)
    assert int(metrics["env_steps"][-1]) == 96
    assert np.all(np.isfinite(np.asarray(metrics["critic_loss"]))) and float(metrics["critic_loss"][-1]) > 0
    positions = np.asarray(runner.learner.buffer.experience.next_obs).reshape(-1, 2)[:96]
    assert np.all(np.abs(positions) <= 7.0)
