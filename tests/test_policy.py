"""A trained run's policy: load, act, evaluate and render it, from Python and the command line."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_custom_env import SETTINGS, Corridor  # noqa: E402

from purejaxpg import checkpoint, experiment, policy, render, train  # noqa: E402
from purejaxpg.cli import main  # noqa: E402
from purejaxpg.config import ConfigError  # noqa: E402


def save_run(directory, algo_name, env, overrides, seeds=2):
    algo, config, hparams = experiment.build(algo_name, env, overrides)
    trainer = train.make_train(algo, config, hparams, env=None if isinstance(env, str) else env)
    description = experiment.describe(algo, config, hparams)
    description.update(seeds=seeds, seed=0, chunk_iterations=config.num_iterations)
    checkpoint.run(trainer, train.seed_keys(0, seeds), hparams, os.path.join(directory, "checkpoints"), description,
                   chunk_iterations=config.num_iterations, every=1, keep=1)
    return trainer


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("cartpole"))
    save_run(directory, "ppo", "CartPole-v1", dict(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 4,
                                                   hidden=(16,), num_minibatches=2, num_epochs=1))
    return directory


def untrained_corridor_policy(seed):
    algo, config, hparams = experiment.build("ppo", Corridor(), SETTINGS)
    trainer = train.make_train(algo, config, hparams, env=Corridor())
    runner = trainer.init(jax.random.PRNGKey(seed), hparams)
    return policy.Policy(trainer, runner.learner, runner.env.obs_stats)


@pytest.mark.usefixtures("fast_compiles")
def test_evaluate_equals_a_python_loop_over_single_episodes():
    """A deterministic env and the greedy policy: the vmapped evaluation's returns are those of
    episodes played one by one in a plain Python loop with ``policy.act``."""
    pol = untrained_corridor_policy(3)
    trainer = pol.trainer
    returns = pol.evaluate(4, deterministic=True)
    env, params = trainer.env, trainer.env_params
    act = jax.jit(lambda o, k: pol.act(o, k, deterministic=True))
    want = []
    for episode in range(4):
        obs, state = env.reset(jax.random.PRNGKey(episode), params)
        total = 0.0
        for t in range(params.max_steps_in_episode):
            obs, state, reward, terminated, truncated, _ = env.step(jax.random.PRNGKey(t), state,
                                                                   act(obs, jax.random.PRNGKey(0)), params)
            total += float(reward)
            if terminated or truncated:
                break
        want.append(total)
    np.testing.assert_allclose(returns, want, rtol=1e-5)


def test_load_act_and_sampled_evaluation(cartpole_run):
    pol = policy.load(cartpole_run, run=1)
    assert pol.trainer.algo.name == "ppo" and pol.spec.env_id == "CartPole-v1"
    one = jax.jit(pol.act)(jnp.zeros(4), jax.random.PRNGKey(0))
    batch = jax.jit(pol.act)(jnp.zeros((5, 4)), jax.random.PRNGKey(0))
    assert one.shape == () and batch.shape == (5,)
    returns = pol.evaluate(8, jax.random.PRNGKey(1))
    assert returns.shape == (8,) and np.all((returns >= 1) & (returns <= 500))
    # run 0 and run 1 are different seeds: different parameters
    other = policy.load(cartpole_run, run=0)
    leaves = zip(jax.tree.leaves(pol.learner.params), jax.tree.leaves(other.learner.params))
    assert any(not np.array_equal(a, b) for a, b in leaves)
    with pytest.raises(ConfigError, match="run=2 is out of range"):
        policy.load(cartpole_run, run=2)
    with pytest.raises(ConfigError, match="cannot load a policy"):
        policy.load(os.path.join(cartpole_run, "nothing_here"))


def test_eval_and_render_commands(cartpole_run, tmp_path, capsys):
    assert main(["eval", cartpole_run, "--episodes", "6", "--deterministic"]) == 0
    out = capsys.readouterr().out
    assert "6 episodes (deterministic actions): return" in out and "+-" in out
    gif = str(tmp_path / "policy.gif")
    assert main(["render", cartpole_run, "--out", gif, "--max-steps", "5"]) == 0
    from PIL import Image

    assert Image.open(gif).n_frames == 6  # 5 steps: the first state and one frame per step
    assert main(["eval", cartpole_run, "--episodes", "0"]) == 2
    assert main(["render", str(tmp_path / "missing"), "--out", gif]) == 2


def test_render_refuses_what_it_cannot_draw(tmp_path):
    pol = untrained_corridor_policy(0)
    with pytest.raises(ConfigError, match="cannot draw 'Corridor'"):
        render.render(pol, str(tmp_path / "x.gif"))
