"""PPO-Clip: learning on CartPole-v1 at the classic configuration, and its update's invariants."""

import jax
import numpy as np
import pytest

import _learning
from purejaxpg import experiment, results, rollout, train
from purejaxpg.algorithms import PPO, PPOHParams
from purejaxpg.config import TrainConfig


@pytest.mark.learning
def test_ppo_learns_cartpole_classic_config():
    """The classic CleanRL/PureJaxRL config (4 envs x 128 steps, 4 x 4 minibatches, lr 2.5e-4
    annealed) at 5e5 steps, where the literature reports 488-490 on average (random policy: 22)."""
    out = _learning.run_named("ppo", "CartPole-v1", {"total_timesteps": 500_000}, num_seeds=4)
    _learning.check(_learning.final_returns(out), every_seed_above=300, mean_above=425)


@pytest.mark.slow
def test_ppo_pendulum_preset_reaches_minus_200():
    # presets.PRESETS["ppo"]["Pendulum-v1"] at 1e6 steps, seeds 0-7 as one vmapped batch, as
    # benchmarks/ppo_cartpole.py --pendulum runs them (-159.7 to -192.3, mean -175.6). The goal is
    # on the 8-seed mean: single seeds move by tens of points with float-level differences (seeds
    # 0 and 1 in a batch of 2 end at -219 and -199).
    algo, config, hp = experiment.build("ppo", "Pendulum-v1", {})
    out = train.run_chunked(train.make_train(algo, config, hp), train.seed_keys(0, 8), hp)
    finals = results.final_returns(out.metrics)
    assert np.mean(finals) >= -200 and np.all(finals >= -250), finals


def test_first_epoch_ratio_is_one_and_update_moves_policy():
    algo = PPO(num_epochs=1, num_minibatches=1, hidden=(16,))
    trainer = train.make_train(algo, TrainConfig(num_envs=2, num_steps=16, total_timesteps=64), PPOHParams())
    runner = trainer.init(jax.random.PRNGKey(0), PPOHParams())
    act = lambda obs, k, a: algo.act(runner.learner, obs, k, a)  # noqa: E731
    _, batch = rollout.collect(act, trainer.env, trainer.env_params, trainer.spec, runner.env, jax.random.PRNGKey(1), 16)
    # at the rollout's parameters the importance ratio is exactly 1: the log-probs in the batch are
    # those of the sampled actions under the same parameters
    log_prob = runner.learner.dist(batch.obs).log_prob(batch.action)
    np.testing.assert_allclose(log_prob, batch.extras["log_prob"], atol=1e-6)
    new_state, metrics = algo.update(runner.learner, batch, jax.random.PRNGKey(2), PPOHParams(), 0.0)
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), runner.learner.params, new_state.params)
    assert any(jax.tree.leaves(changed))
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_lr_annealing_is_linear_to_zero():
    algo = PPO(num_epochs=1, num_minibatches=1, hidden=(8,))
    config = TrainConfig(num_envs=2, num_steps=8, total_timesteps=16 * 4)
    out = train.run_chunked(train.make_train(algo, config, PPOHParams(lr=1e-3)), train.seed_keys(0, 1), PPOHParams(lr=1e-3))
    np.testing.assert_allclose(out.metrics["lr"][0], 1e-3 * (1 - np.arange(4) / 4), rtol=1e-6)
