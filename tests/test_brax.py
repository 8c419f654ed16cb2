"""The brax adapter against brax called directly; unknown names; PPO and SAC smoke runs on brax."""

import pytest

brax = pytest.importorskip("brax")

import brax.envs  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from purejaxpg import envs, experiment, train  # noqa: E402
from purejaxpg.backends import brax_env  # noqa: E402
from purejaxpg.errors import ConfigError  # noqa: E402

NAME = "inverted_pendulum"
EPISODE = 8  # a short time limit, so that a rollout sees truncations, terminations and resets
STEPS = 40


def _tree_where(flag, new, old):
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


@pytest.fixture(scope="module")
def paired_rollouts():
    """The adapter and brax's own ``EpisodeWrapper`` env stepped with the same keys and actions.

    Two action sequences: all 0 (the pole stays up for 8 steps: every episode is truncated) and
    all +1 (the cart is pushed at full force: the pole falls, episodes terminate). The reference
    resets where brax says the episode is done, with the reset key gymnax's ``step`` uses (the
    second half of the step key), so that it must agree with the adapter's auto-reset.
    """
    env, params = brax_env.make(NAME, max_steps_in_episode=EPISODE)
    reference = brax.envs.create(NAME, backend=brax_env.DEFAULT_BACKEND, episode_length=EPISODE, auto_reset=False)

    def both(action_value, key):
        reset_key, run_key = jax.random.split(key)
        step_keys = jax.random.split(run_key, STEPS)
        obs0, state = env.reset(reset_key, params)
        ref0 = reference.reset(reset_key)
        action = jnp.full((1,), action_value)

        def adapter_step(state, step_key):
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, action, params)
            return state, (obs, reward, terminated, truncated, info["final_observation"])

        def reference_step(ref, step_key):
            ref = reference.step(ref, action)
            final_obs = ref.obs
            fresh = reference.reset(jax.random.split(step_key)[1])
            out = (ref.reward, ref.done, ref.info["truncation"], final_obs)
            return _tree_where(ref.done > 0, fresh, ref), (fresh.obs, ref.obs, *out)

        _, ours = jax.lax.scan(adapter_step, state, step_keys)
        _, (fresh_obs, _, reward, done, truncation, final_obs) = jax.lax.scan(reference_step, ref0, step_keys)
        ref_obs = jnp.where(done[:, None] > 0, fresh_obs, final_obs)
        return (obs0, ref0.obs), ours, (ref_obs, reward, done, truncation, final_obs)

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)  # halves the compile time (conftest.fast_compiles)
    try:
        out = jax.jit(jax.vmap(both, in_axes=(0, None)))(jnp.array([0.0, 1.0]), jax.random.PRNGKey(3))
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
    return jax.device_get(out)


def test_reset_matches_brax(paired_rollouts):
    (obs0, ref_obs0), _, _ = paired_rollouts
    assert obs0.dtype == np.float32 and obs0.shape == (2, 4)
    np.testing.assert_allclose(obs0, ref_obs0, rtol=1e-6, atol=1e-7)


def test_steps_match_brax_with_termination_and_truncation_apart(paired_rollouts):
    _, (obs, reward, terminated, truncated, final_obs), (ref_obs, ref_reward, done, truncation, ref_final) = paired_rollouts
    np.testing.assert_allclose(final_obs, ref_final, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs, ref_obs, rtol=1e-5, atol=1e-6)  # includes the auto-reset observations
    np.testing.assert_array_equal(reward, ref_reward)
    # brax's EpisodeWrapper: done = terminated or time limit, truncation = time limit and not terminated
    np.testing.assert_array_equal(truncated, truncation > 0)
    np.testing.assert_array_equal(terminated, (done > 0) & (truncation == 0))
    # the two action sequences exercise both kinds of ending
    idle, pushed = 0, 1
    assert not terminated[idle].any()
    np.testing.assert_array_equal(np.flatnonzero(truncated[idle]), np.arange(EPISODE - 1, STEPS, EPISODE))
    assert terminated[pushed].sum() >= 2 and not truncated[pushed].any()


def test_auto_reset_starts_a_fresh_episode(paired_rollouts):
    _, (obs, _, terminated, truncated, final_obs), _ = paired_rollouts
    ended = terminated | truncated
    # where an episode ended, the next observation is a reset state (|x| <= 0.01 in every
    # coordinate), not the final one; elsewhere it is the final observation itself
    assert np.all(np.abs(obs[ended]) <= 0.01)
    assert np.all(np.abs(final_obs[terminated][:, 1]) > 0.2)  # the pole fell past 0.2 rad
    np.testing.assert_array_equal(obs[~ended], final_obs[~ended])


def test_spec_of_a_brax_id():
    _, params, spec = envs.make("brax/inverted_pendulum")
    assert spec.obs_shape == (4,) and not spec.discrete and spec.action_dim == 1
    assert spec.action_low == (-1.0,) and spec.action_high == (1.0,)
    assert spec.max_episode_steps == 1000 == params.max_steps_in_episode


def test_unknown_brax_name_lists_what_exists():
    with pytest.raises(ConfigError, match="Did you mean 'brax/inverted_pendulum'") as err:
        envs.make("brax/inverted_pendulm")
    assert "brax/hopper" in str(err.value) and "brax/ant" in str(err.value)
    with pytest.raises(ConfigError, match="hopper"):
        brax_env.make("hoper")
    with pytest.raises(ConfigError, match="generalized"):
        brax_env.make("hopper", backend="bullet")
    assert set(brax_env.names()) >= {"inverted_pendulum", "hopper", "ant", "halfcheetah"}


@pytest.mark.parametrize("algo_name, overrides", [
    ("ppo", dict(num_envs=2, num_steps=16, total_timesteps=64, num_epochs=1, num_minibatches=2, hidden=(8,))),
    ("sac", dict(total_timesteps=24, learning_starts=8, batch_size=8, buffer_size=64, hidden=(8,))),
])
def test_training_smoke(fast_compiles, algo_name, overrides):
    """A few iterations of the preset (tiny networks) through make_train: finite losses, all steps taken."""
    algo, config, hparams = experiment.build(algo_name, "brax/inverted_pendulum", overrides)
    trainer = train.make_train(algo, config, hparams)
    result = train.run_chunked(trainer, train.seed_keys(0, 1), hparams)
    assert result.metrics["env_steps"][0, -1] == overrides["total_timesteps"]
    for name, values in result.metrics.items():
        if name not in train.EPISODE_METRICS and np.issubdtype(values.dtype, np.floating):
            assert np.all(np.isfinite(values)), name
