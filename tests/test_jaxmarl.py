"""The jaxmarl backend: the adapter against jaxmarl called directly, time limits as truncations,
the joint and shared-stream views, errors, and parameter-shared PPO through the loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from purejaxpg import backends, envs, experiment, train  # noqa: E402
from purejaxpg.config import ConfigError  # noqa: E402

SPREAD = "jaxmarl/MPE_simple_spread_v3"


@pytest.fixture(scope="module")
def spread():
    return envs.make(SPREAD)


def test_spec_of_simple_spread(spread):
    _, params, spec = spread
    assert spec.num_agents == 3 and spec.joint_agents and spec.obs_shape == (3, 18)
    assert spec.discrete and spec.num_actions == 5 and spec.max_episode_steps == 25
    shared = envs.shared_agents_view(spec)
    assert shared.obs_shape == (18,) and shared.share_agents and shared.streams(4) == 12


def test_the_adapter_steps_exactly_as_jaxmarl(spread):
    """Same keys, same actions: the stacked observations and rewards are jaxmarl's own, through
    the auto-reset after 26 steps (jaxmarl's MPE episode); the end is a truncation, never a termination."""
    env, params, _ = spread
    marl = env.marl
    key = jax.random.PRNGKey(0)
    obs, state = env.reset(key, params)
    m_obs, m_state = marl.reset(key)
    step = jax.jit(lambda k, s, a: env.step(k, s, a, params))
    m_step = jax.jit(marl.step)
    for t in range(30):  # the episode ends at t = 25
        # two compilations of the same arithmetic: equal up to the last bits
        np.testing.assert_allclose(obs, np.stack([m_obs[a] for a in marl.agents]), rtol=1e-5, atol=1e-6)
        k = jax.random.fold_in(key, t + 1)
        action = jax.random.randint(jax.random.fold_in(k, 7), (3,), 0, 5)
        obs, state, reward, terminated, truncated, info = step(k, state, action)
        m_obs, m_state, m_reward, m_dones, _ = m_step(k, m_state, {a: action[i] for i, a in enumerate(marl.agents)})
        np.testing.assert_allclose(reward, np.stack([m_reward[a] for a in marl.agents]), rtol=1e-5, atol=1e-6)
        assert not bool(terminated)
        assert bool(truncated) == bool(m_dones["__all__"]) == (t == 25)
        assert info["final_observation"].shape == (3, 18)


def test_joint_and_shared_views_agree(spread):
    """Shared streams are the joint arrays with the agent axis folded into the env axis; the joint
    view's episode return is the mean over agents of each agent's return (NumPy over the rewards)."""
    env, params, spec = spread
    shared = envs.shared_agents_view(spec)
    n, steps = 2, 27
    key = jax.random.PRNGKey(1)
    actions = jax.random.randint(key, (steps, n, 3), 0, 5)

    def run(sp, act):
        loop = envs.reset(env, params, sp, jax.random.PRNGKey(2), n)
        return jax.lax.scan(lambda l, xs: envs.step(env, params, sp, l, xs[0], xs[1]), loop,
                            (act, jax.random.split(jax.random.PRNGKey(3), steps)))[1]

    joint = run(spec, actions)
    flat = run(shared, actions.reshape(steps, n * 3))
    np.testing.assert_array_equal(flat.reward, joint.reward.reshape(steps, n * 3))
    np.testing.assert_array_equal(flat.next_obs, joint.next_obs.reshape(steps, n * 3, 18))
    np.testing.assert_array_equal(flat.truncated, np.repeat(joint.truncated, 3, axis=1))
    per_agent = np.asarray(joint.reward)[:26].sum(axis=0)  # [n, 3] returns of the first episodes
    np.testing.assert_allclose(joint.finished_return[25], per_agent.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(flat.finished_return[25], per_agent.reshape(-1), rtol=1e-5)
    assert np.all(np.asarray(joint.done)[25]) and not np.any(np.asarray(joint.done)[:25])


def test_unknown_names_and_prefixes_are_clear_errors():
    with pytest.raises(ConfigError, match="MPE_simple_spread_v3"):  # lists what exists
        envs.make("jaxmarl/MPE_simple_sprad_v3")
    with pytest.raises(ConfigError, match="unknown backend prefix 'mujoco'"):
        envs.make("mujoco/hopper")


def test_a_missing_backend_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "jaxmarl", ("purejaxpg_no_such_module", "jaxmarl", "purejaxpg_no_such_module"))
    with pytest.raises(ConfigError, match=r'pip install "purejaxpg\[jaxmarl\]"'):
        envs.make("jaxmarl/MPE_simple_spread_v3")


@pytest.mark.usefixtures("fast_compiles")
def test_parameter_shared_ppo_runs_with_no_multi_agent_code():
    """PPO sees 4 envs x 3 agents as 12 streams of one policy; env steps count joint steps."""
    algo, config, hparams = experiment.build("ppo", SPREAD, dict(num_envs=4, num_steps=26, total_timesteps=208,
                                                                 num_minibatches=2, num_epochs=1, hidden=(16,)))
    trainer = train.make_train(algo, config, hparams)
    assert trainer.learner_config.num_envs == 12 and trainer.spec.obs_shape == (18,)
    result = train.run_chunked(trainer, train.seed_keys(0, 1), hparams)
    assert result.metrics["env_steps"][0, -1] == 208
    assert result.metrics["episodes"][0, 0] == 12  # every agent stream ended its 26-step episode
    assert np.all(np.isfinite(result.metrics["episode_return"]))
    assert np.all(result.metrics["episode_return"] < 0)
