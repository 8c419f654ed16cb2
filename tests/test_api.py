"""The one-call API, ``purejaxpg.train(...)``: the numbers of the composable path it wraps."""

import numpy as np
import pytest

import purejaxpg
from purejaxpg import experiment, results, train
from purejaxpg.config import ConfigError

SMALL = dict(num_envs=4, num_steps=32, hidden=(16,), num_minibatches=2, num_epochs=1)


@pytest.mark.usefixtures("fast_compiles")
def test_one_call_equals_the_composable_path():
    out = purejaxpg.train("ppo", "CartPole-v1", seeds=3, seed=5, total_timesteps=4 * 32 * 6, **SMALL)
    algo, config, hparams = experiment.build("ppo", "CartPole-v1", dict(SMALL, total_timesteps=4 * 32 * 6))
    ref = train.run_chunked(train.make_train(algo, config, hparams), train.seed_keys(5, 3), hparams)
    np.testing.assert_array_equal(out.final_returns, results.final_returns(ref.metrics))
    assert len(out.metrics) == 3 * 6 and {"seed", "iteration", "episode_return", "env_steps"} <= set(out.metrics)
    np.testing.assert_array_equal(out.metrics.sort_values(["seed", "iteration"])["policy_loss"].to_numpy(),
                                  ref.metrics["policy_loss"].reshape(-1))
    assert out.policy(seed=2).evaluate(2).shape == (2,)


def test_bad_calls_are_clear_errors():
    with pytest.raises(ConfigError, match="seeds=0"):
        purejaxpg.train("ppo", "CartPole-v1", seeds=0)
    with pytest.raises(ConfigError, match="total_timesteps=1000.5"):
        purejaxpg.train("ppo", "CartPole-v1", total_timesteps=1000.5)
    with pytest.raises(ConfigError, match="not a setting of ppo"):
        purejaxpg.train("ppo", "CartPole-v1", learning_rate=1e-3)
