"""Training skeleton: determinism, chunking, vmapped seeds and hyperparameters, validation."""

import dataclasses

import jax
import numpy as np
import pytest

from purejaxpg import experiment, results, train
from purejaxpg.algorithms import PPO, PPOHParams
from purejaxpg.config import ConfigError, TrainConfig

SMALL = TrainConfig(env_id="CartPole-v1", num_envs=4, num_steps=32, total_timesteps=4 * 32 * 6)


@pytest.fixture(scope="module")
def trainer():
    return train.make_train(PPO(num_epochs=2, num_minibatches=2, hidden=(16, 16)), SMALL, PPOHParams())


@pytest.fixture(scope="module")
def whole_run(trainer):
    return train.run_chunked(trainer, train.seed_keys(0, 2), PPOHParams())


def test_chunked_equals_unchunked_bit_for_bit(trainer, whole_run):
    chunked = train.run_chunked(trainer, train.seed_keys(0, 2), PPOHParams(), chunk_iterations=4)
    for name, values in whole_run.metrics.items():
        np.testing.assert_array_equal(values, chunked.metrics[name], err_msg=name)
    same = jax.tree.map(lambda a, b: np.array_equal(a, b), whole_run.runner, chunked.runner)
    assert all(jax.tree.leaves(same))


def test_same_key_same_run_and_different_keys_differ(trainer, whole_run):
    again = train.run_chunked(trainer, train.seed_keys(0, 2), PPOHParams())
    np.testing.assert_array_equal(whole_run.metrics["policy_loss"], again.metrics["policy_loss"])
    # the two vmapped seeds differ from each other
    assert not np.array_equal(whole_run.metrics["policy_loss"][0], whole_run.metrics["policy_loss"][1])


def test_seed_i_does_not_depend_on_how_many_seeds_ran(trainer, whole_run):
    alone = train.run_chunked(trainer, train.seed_keys(0, 2)[1:], PPOHParams())
    np.testing.assert_allclose(alone.metrics["episode_return"][0], whole_run.metrics["episode_return"][1], rtol=1e-5)


def test_hyperparameter_grid_is_a_vmap(trainer):
    hp = PPOHParams(lr=np.array([1e-4, 1e-3], np.float32), clip_eps=np.array([0.1, 0.3], np.float32))
    out = train.run_chunked(trainer, train.seed_keys(0, 2), hp)
    assert out.metrics["lr"].shape == (2, SMALL.num_iterations)
    np.testing.assert_allclose(out.metrics["lr"][:, 0], [1e-4, 1e-3], rtol=1e-6)


def test_metrics_shapes_and_env_steps(whole_run):
    m = whole_run.metrics
    assert m["env_steps"].shape == (2, SMALL.num_iterations)
    np.testing.assert_array_equal(m["env_steps"][0], SMALL.batch_size * np.arange(1, SMALL.num_iterations + 1))
    # NaN only where no episode finished
    np.testing.assert_array_equal(np.isnan(m["episode_return"]), m["episodes"] == 0)


def test_final_returns_are_episode_weighted():
    metrics = {"episode_return": np.array([[np.nan, 10.0, 20.0, np.nan]]), "episodes": np.array([[0, 1, 3, 0]])}
    np.testing.assert_allclose(results.final_returns(metrics, fraction=0.75), [(10 + 60) / 4])
    assert np.isnan(results.final_returns({"episode_return": np.array([[np.nan]]), "episodes": np.array([[0]])})[0])


def test_non_finite_guard_names_iteration_and_metric():
    metrics = {"policy_loss": np.array([[0.0, 1.0, np.inf]]), "episode_return": np.array([[np.nan] * 3])}
    with pytest.raises(FloatingPointError, match=r"'policy_loss'.*iteration 7"):
        train._check_finite(metrics, first_iteration=5)


@pytest.mark.parametrize("overrides, field", [
    ({"num_minibatches": 3}, "num_minibatches=3"),
    ({"total_timesteps": 100}, "total_timesteps=100"),
    ({"lr": 0.0}, "lr=0"),
    ({"gamma": 1.5}, "gamma=1.5"),
    ({"gae_lambda": -0.1}, "gae_lambda=-0.1"),
    ({"clip_eps": -0.2}, "clip_eps=-0.2"),
    ({"lrr": 1e-3}, "'lr'"),
])
def test_bad_settings_fail_before_compiling(overrides, field):
    with pytest.raises(ConfigError, match=field.replace("(", r"\(")):
        algo, config, hp = experiment.build("ppo", "CartPole-v1", overrides)
        train.make_train(algo, config, hp)


def test_unknown_algorithm_and_env():
    with pytest.raises(ConfigError, match="ppo"):
        experiment.build("ppoo", "CartPole-v1")
    with pytest.raises(ConfigError, match="Pendulum-v1"):
        experiment.build("ppo", "Pendulum-v0")


def test_hparams_grid_validated_elementwise():
    algo, config, _ = experiment.build("ppo", "CartPole-v1")
    with pytest.raises(ConfigError, match="lr=-0.001"):
        train.make_train(algo, config, PPOHParams(lr=np.array([1e-3, -1e-3])))


def test_presets_then_overrides():
    algo, config, hp = experiment.build("ppo", "Pendulum-v1", {"num_envs": 10})
    assert config.num_envs == 10 and config.num_steps == 100 and algo.num_epochs == 10 and hp.gamma == 0.95
    assert dataclasses.asdict(config)["normalize_obs"]
