"""Reliability across the library: bad input, numerical safety, determinism, peers' known bugs."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import envs, networks, returns, rollout, train
from purejaxpg.algorithms import PPO, PPOHParams, common
from purejaxpg.config import ConfigError, TrainConfig, hp, hparams


@dataclasses.dataclass(frozen=True)
class DiscreteOnlyPPO(PPO):
    name: ClassVar[str] = "discrete_only_ppo"
    discrete: ClassVar[bool | None] = True


def test_discrete_only_algorithm_on_box_env_and_the_reverse():
    with pytest.raises(ConfigError, match=r"only discrete.*Pendulum-v1.*continuous"):
        train.make_train(DiscreteOnlyPPO(), TrainConfig(env_id="Pendulum-v1"))

    @dataclasses.dataclass(frozen=True)
    class ContinuousOnlyPPO(PPO):
        discrete: ClassVar[bool | None] = False

    with pytest.raises(ConfigError, match=r"only continuous.*CartPole-v1.*discrete"):
        train.make_train(ContinuousOnlyPPO(), TrainConfig(env_id="CartPole-v1"))


def test_wrong_hparams_class_is_named():
    @hparams
    class Other:
        lr: float = hp(1e-3, low=0.0)

    with pytest.raises(ConfigError, match="PPOHParams"):
        train.make_train(PPO(), TrainConfig(), Other())


def _batch_with_reward_scale(env_id: str, scale: float):
    algo = PPO(num_epochs=2, num_minibatches=2, hidden=(16,))
    config = TrainConfig(env_id=env_id, num_envs=4, num_steps=32, total_timesteps=128)
    trainer = train.make_train(algo, config, PPOHParams())
    runner = trainer.init(jax.random.PRNGKey(0), PPOHParams())
    act = lambda obs, k, a: algo.act(runner.learner, obs, k, a)  # noqa: E731
    _, batch = rollout.collect(act, trainer.env, trainer.env_params, trainer.spec, runner.env,
                               jax.random.PRNGKey(1), 32)
    return algo, runner, batch.replace(reward=batch.reward * scale)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("scale", [1e6, 1e-8])
def test_extreme_reward_scales_give_finite_updates(env_id, scale):
    algo, runner, batch = _batch_with_reward_scale(env_id, scale)
    state, metrics = jax.jit(algo.update)(runner.learner, batch, jax.random.PRNGKey(2), PPOHParams(), 0.0)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics


def test_log_std_stays_within_bounds():
    _, _, spec = envs.make("Pendulum-v1")
    policy = networks.make_policy(spec, (8,))
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    for value, expected in ((100.0, networks.LOG_STD_MAX), (-100.0, networks.LOG_STD_MIN)):
        pushed = jax.tree_util.tree_map_with_path(
            lambda path, x: jnp.full_like(x, value) if "log_std" in jax.tree_util.keystr(path) else x, params)
        dist = policy.apply(pushed, jnp.zeros((5, 3)))
        np.testing.assert_array_equal(dist.log_std, expected)
        assert np.all(np.isfinite(dist.log_prob(jnp.ones((5, 1)) * 1e3)))


def test_advantage_standardisation_of_one_sample_or_equal_values_is_zero_not_nan():
    np.testing.assert_array_equal(returns.standardize(jnp.array([3.0])), [0.0])
    np.testing.assert_array_equal(returns.standardize(jnp.full((7,), 0.3)), np.zeros(7))


@hparams
class _NaNHParams:
    lr: float = hp(1.0, low=0.0)


@dataclasses.dataclass(frozen=True)
class _GoesNaNAtIteration3:
    """A minimal algorithm whose loss metric becomes NaN at iteration 3."""

    name: ClassVar[str] = "nan_at_3"
    HParams: ClassVar[type] = _NaNHParams
    rollout_options: ClassVar[rollout.RolloutOptions] = rollout.RolloutOptions()

    def validate(self, spec, config):
        pass

    def init(self, key, spec, hparams):
        return {"count": jnp.zeros((), jnp.int32)}

    def init_actor(self, state, config, key):
        return ()

    def act(self, state, obs, key, actor_state):
        return jax.random.randint(key, (obs.shape[0],), 0, 2), {}, actor_state

    def update(self, state, batch, key, hparams, progress):
        loss = jnp.where(state["count"] == 3, jnp.nan, 1.0)
        return {"count": state["count"] + 1}, {"loss": loss}


def test_non_finite_guard_stops_the_run_naming_iteration_and_metric():
    config = TrainConfig(num_envs=2, num_steps=4, total_timesteps=2 * 4 * 6, check_finite=True)
    trainer = train.make_train(_GoesNaNAtIteration3(), config, _NaNHParams())
    with pytest.raises(FloatingPointError, match=r"'loss'.*iteration 3"):
        train.run_chunked(trainer, train.seed_keys(0, 1), _NaNHParams(), chunk_iterations=2)
    # without the guard the run completes and the NaN is in the metrics, where the user can see it
    quiet = train.make_train(_GoesNaNAtIteration3(), dataclasses.replace(config, check_finite=False), _NaNHParams())
    out = train.run_chunked(quiet, train.seed_keys(0, 1), _NaNHParams())
    assert np.isnan(out.metrics["loss"][0, 3]) and np.isfinite(out.metrics["loss"][0, 4])


def test_truncation_is_not_treated_as_termination_in_ppo_targets():
    """The peers' bug: time-limit ends treated as terminal. On Pendulum (never terminates) every
    episode end must bootstrap from V(final observation)."""
    algo, runner, batch = _batch_with_reward_scale("Pendulum-v1", 1.0)
    state = runner.learner
    # force a truncation in the middle of the batch, as if the time limit had been hit at t = 10
    batch = batch.replace(truncated=batch.truncated.at[10].set(True), done=batch.done.at[10].set(True))
    advantages, targets, values = common.gae_targets(state, batch, 0.99, 0.95)
    _, next_values = common.values_and_next_values(state, batch)
    # at a truncated step the TD(lambda) target is r + gamma * V(final obs), not r
    np.testing.assert_allclose(targets[10], batch.reward[10] + 0.99 * next_values[10], rtol=1e-5, atol=1e-5)
