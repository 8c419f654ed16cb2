"""Generalized state-dependent exploration (gSDE; Raffin et al. 2022) against its definition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import envs, experiment, networks, rollout, train
from purejaxpg.config import ConfigError


def _policy_and_params(hidden=(8,), log_std_init=-1.0):
    spec = envs.make("Pendulum-v1")[2]
    policy = networks.make_policy(spec, hidden, "tanh", log_std_init, use_sde=True)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    # a non-constant sigma matrix, so that every entry's role is checked
    log_sigma = params["params"]["log_std"]
    params["params"]["log_std"] = log_sigma + jnp.linspace(-0.5, 0.5, log_sigma.size).reshape(log_sigma.shape)
    return policy, params


def test_variance_is_the_sum_over_features_of_phi_squared_sigma_squared():
    policy, params = _policy_and_params()
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    dist = policy.apply(params, obs)
    # phi(s): the hidden layer, computed by hand from the parameters
    dense = params["params"]["Dense_0"]
    phi = np.tanh(np.asarray(obs) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"]))
    sigma = np.exp(np.asarray(params["params"]["log_std"]))
    expected = np.sqrt((phi**2) @ (sigma**2) + 1e-6)
    np.testing.assert_allclose(np.asarray(dist.std), expected, rtol=1e-5)


def test_samples_under_random_matrices_have_the_distribution_it_reports():
    """Monte Carlo: a = mean + phi^T (sigma * eps) over many eps is N(mean, dist.std^2) per state."""
    policy, params = _policy_and_params(hidden=(16,))
    obs = jax.random.normal(jax.random.PRNGKey(2), (3, 3))
    noise = jax.random.normal(jax.random.PRNGKey(3), (20_000, 3, 16, 1))
    dist, actions = jax.vmap(lambda n: policy.apply(params, obs, n))(noise)
    actions = np.asarray(actions)
    np.testing.assert_allclose(actions.mean(axis=0), np.asarray(dist.mean[0]), atol=4 * np.asarray(dist.std[0]).max() / np.sqrt(20_000))
    np.testing.assert_allclose(actions.std(axis=0), np.asarray(dist.std[0]), rtol=0.03)


def test_gradient_of_log_std_does_not_flow_into_the_features():
    """As Stable-Baselines3's default (learn_features=False): the std sees phi through stop_gradient."""
    policy, params = _policy_and_params()
    obs = jax.random.normal(jax.random.PRNGKey(4), (7, 3))
    grads = jax.grad(lambda p: jnp.sum(policy.apply(p, obs).log_std))(params)
    assert np.all(np.asarray(grads["params"]["Dense_0"]["kernel"]) == 0)
    assert np.any(np.asarray(grads["params"]["log_std"]) != 0)


def test_noise_matrix_is_held_for_sde_sample_freq_steps_then_redrawn():
    algo, config, hp = experiment.build("ppo", "Pendulum-v1", {"use_sde": True, "sde_sample_freq": 4,
                                                                "num_envs": 2, "num_steps": 10})
    spec = envs.make("Pendulum-v1")[2]
    state = algo.init(jax.random.PRNGKey(0), spec, hp)
    actor = algo.init_actor(state, config, jax.random.PRNGKey(1))
    assert actor["noise"].shape == (2, 64, 1)
    obs = jnp.zeros((2, 3))
    seen = []
    for t in range(9):
        _, _, actor = algo.act(state, obs, jax.random.PRNGKey(10 + t), actor)
        seen.append(np.asarray(actor["noise"]))
    same = [np.array_equal(seen[t], seen[t - 1]) for t in range(1, 9)]
    # drawn at steps 0, 4 and 8; held in between
    assert same == [True, True, True, False, True, True, True, False]


def test_once_per_iteration_by_default_and_the_batch_log_probs_match():
    algo, config, hp = experiment.build("a2c", "Pendulum-v1", {"use_sde": True, "num_envs": 3, "num_steps": 5,
                                                                "total_timesteps": 30})
    trainer = train.make_train(algo, config, hp)
    runner = trainer.init(jax.random.PRNGKey(0), hp)
    assert int(runner.env.actor["period"]) == 5
    loop, batch = rollout.collect(lambda o, k, a: algo.act(runner.learner, o, k, a), trainer.env,
                                  trainer.env_params, trainer.spec, runner.env, jax.random.PRNGKey(1), 5)
    np.testing.assert_allclose(runner.learner.dist(batch.obs).log_prob(batch.action), batch.extras["log_prob"],
                               rtol=1e-5, atol=1e-5)
    out = train.run_chunked(trainer, train.seed_keys(0, 2), hp)
    assert np.all(np.isfinite(out.metrics["value_loss"]))


@pytest.mark.parametrize("env_id, overrides, needle", [
    ("CartPole-v1", {"use_sde": True}, "continuous"),
    ("Pendulum-v1", {"use_sde": True, "sde_sample_freq": 0}, "sde_sample_freq"),
])
def test_bad_sde_settings_are_rejected_before_compiling(env_id, overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        train.make_train(*experiment.build("ppo", env_id, overrides))
