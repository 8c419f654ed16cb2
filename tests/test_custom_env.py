"""Your own environment: a class written here, with the gymnax interface, trains through
``make_train(..., env=...)`` and ``experiment.build``; objects without the interface are clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxpg import envs, experiment, train
from purejaxpg.algorithms.ppo import PPO
from purejaxpg.config import ConfigError, TrainConfig


@struct.dataclass
class CorridorState:
    position: jax.Array
    time: jax.Array


@struct.dataclass
class CorridorParams:
    length: int = 6
    max_steps_in_episode: int = 20


class Corridor(Environment):
    """A walk on 0..length from the middle: action 1 steps right, 0 left. Reaching the right end
    pays +1 and ends the episode; the left end pays 0 and ends it; every step costs 0.01; the time
    limit truncates. A random walk from the middle ends right half of the time; a good policy
    goes right every step and scores 1 - 0.01 * length / 2 = 0.97."""

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def reset_env(self, key, params):
        state = CorridorState(jnp.asarray(params.length // 2, jnp.int32), jnp.asarray(0, jnp.int32))
        return self.observe(key, state, None, params), state

    def step_env(self, key, state, action, params):
        position = state.position + 2 * action - 1
        state = CorridorState(position, state.time + 1)
        at_goal = position >= params.length
        terminated = jnp.logical_or(at_goal, position <= 0)
        reward = jnp.where(at_goal, 1.0, 0.0) - 0.01
        return self.observe(key, state, action, params), state, reward, terminated, {}

    def observe(self, key, state, action, params):
        return jnp.asarray([state.position / params.length, state.time / params.max_steps_in_episode], jnp.float32)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


SETTINGS = dict(num_envs=16, num_steps=16, total_timesteps=16 * 16 * 40, num_minibatches=2, num_epochs=4,
                hidden=(16,), lr=3e-3)


def test_a_custom_env_object_learns_through_make_train():
    """Every seed learns to walk right (>= 0.9 per episode; a random walk scores about 0.4)."""
    algo, config, hparams = experiment.build("ppo", Corridor(), SETTINGS)
    assert config.env_id == "Corridor"
    trainer = train.make_train(algo, config, hparams, env=Corridor())
    assert trainer.spec.obs_shape == (2,) and trainer.spec.num_actions == 2 and trainer.spec.max_episode_steps == 20
    result = train.run_chunked(trainer, train.seed_keys(11, 3), hparams)
    first = np.nanmean(result.metrics["episode_return"][:, :2], axis=1)
    final = np.nanmean(result.metrics["episode_return"][:, -5:], axis=1)
    assert np.all(first < 0.8), first
    assert np.all(final >= 0.9), final


def test_the_env_params_given_are_the_ones_used():
    """A longer corridor (length 10) needs 5 steps to the goal: a trained policy's episodes are
    5 steps long, which only these params give."""
    params = CorridorParams(length=10, max_steps_in_episode=30)
    env, got, spec = envs.from_env(Corridor(), params)
    assert got is params and spec.max_episode_steps == 30
    loop = envs.reset(env, params, spec, jax.random.PRNGKey(0), 2)
    for _ in range(5):
        loop, out = envs.step(env, params, spec, loop, jnp.ones((2,), jnp.int32), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(out.terminated, [True, True])
    np.testing.assert_allclose(out.finished_return, [1.0 - 0.05] * 2, rtol=1e-6)


def test_objects_without_the_gymnax_interface_are_clear_errors():
    with pytest.raises(ConfigError, match="gymnax interface"):
        train.make_train(PPO(), TrainConfig(env_id="thing"), env=object())
    with pytest.raises(ConfigError, match="gymnax interface"):
        experiment.build("ppo", object())
    with pytest.raises(ConfigError, match="env=my_env"):
        envs.check_env_id(Corridor())
