"""Finite-difference gradients: exact on smooth objectives, and the policy gradient of real episodes.

References: `jax.grad` / `jax.jacobian` in float64; the closed-form discounted return of CartPole
(reward 1 per step); an independent REINFORCE estimate, compared within Monte-Carlo error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from purejaxpg import envs, networks, rollout
from purejaxpg.finite_difference import episode_returns, finite_difference_gradient, make_return_objective


def smooth_params(dtype):
    rng = np.random.default_rng(0)
    return {"w": jnp.asarray(rng.standard_normal((3, 2)), dtype), "b": jnp.asarray(rng.standard_normal(2), dtype),
            "s": jnp.asarray(0.3, dtype)}


def smooth_objective(params):
    x = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7]], params["w"].dtype)
    z = jnp.tanh(x @ params["w"] + params["b"])
    return jnp.exp(params["s"]) * jnp.sum(z**3) + jnp.sum(jax.nn.log_softmax(z, axis=-1))


def test_matches_jax_grad_on_a_smooth_objective_with_second_order_error():
    with jax.enable_x64(True):
        params = smooth_params(jnp.float64)
        exact = ravel_pytree(jax.grad(smooth_objective)(params))[0]
        fd = jax.jit(finite_difference_gradient, static_argnums=0)
        errors = []
        for h in (1e-2, 5e-3, 1e-5):
            approx = fd(smooth_objective, params, h)
            assert jax.tree.structure(approx) == jax.tree.structure(params)
            errors.append(float(jnp.max(jnp.abs(ravel_pytree(approx)[0] - exact))))
        scale = float(jnp.max(jnp.abs(exact)))
    assert errors[-1] < 1e-8 * scale
    # central differences: halving h divides the error by about 4
    assert 3.0 < errors[0] / errors[1] < 5.0, errors


def test_matches_the_exact_policy_gradient_of_a_contextual_bandit():
    """A linear-softmax policy on 5 fixed states with rewards r(s, a): J = mean_s sum_a pi(a|s) r(s,a)
    is smooth; its finite-difference gradient equals the closed form mean_s sum_a pi r (phi - E phi)."""
    with jax.enable_x64(True):
        policy = networks.CategoricalPolicy(3, 1, hidden=())
        rng = np.random.default_rng(1)
        params = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)),
                              policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 4))))
        states = jnp.asarray(rng.standard_normal((5, 4)))
        rewards = jnp.asarray(rng.standard_normal((5, 3)))

        def expected_reward(p):
            return jnp.mean(jnp.sum(policy.apply(p, states).probs * rewards, axis=-1))

        fd = finite_difference_gradient(expected_reward, params, 1e-5)["params"]["MLP_0"]["Dense_0"]
        probs = np.asarray(policy.apply(params, states).probs)
    x, r = np.asarray(states), np.asarray(rewards)
    # d/dlogits_b of sum_a p_a r_a = p_b (r_b - sum_a p_a r_a)
    dlogits = probs * (r - (probs * r).sum(-1, keepdims=True))  # [S, A]
    np.testing.assert_allclose(np.asarray(fd["kernel"]), x.T @ dlogits / 5, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(np.asarray(fd["bias"]), dlogits.mean(0), rtol=1e-7, atol=1e-10)


def test_vector_objective_gives_the_jacobian_and_chunking_changes_nothing():
    with jax.enable_x64(True):
        params = smooth_params(jnp.float64)

        def per_row(p):  # [2] outputs
            x = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.2, -0.7]], jnp.float64)
            return jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2, axis=-1) * p["s"]

        jac = jax.jacobian(per_row)(params)
        approx = finite_difference_gradient(per_row, params, 1e-5)
        chunked = finite_difference_gradient(per_row, params, 1e-5, chunk_size=3)
    for name in params:
        assert approx[name].shape == (2,) + params[name].shape
        np.testing.assert_allclose(np.asarray(approx[name]), np.asarray(jac[name]), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(np.asarray(chunked[name]), np.asarray(approx[name]), rtol=1e-9, atol=1e-12)


def test_h_is_a_traced_hyperparameter():
    params = smooth_params(jnp.float32)
    grads = jax.jit(jax.vmap(lambda h: finite_difference_gradient(smooth_objective, params, h)))(
        jnp.array([1e-2, 3e-2], jnp.float32))
    exact = jax.grad(smooth_objective)(params)
    np.testing.assert_allclose(np.asarray(grads["w"][0]), np.asarray(exact["w"]), rtol=2e-2, atol=2e-3)
    assert not np.array_equal(np.asarray(grads["w"][0]), np.asarray(grads["w"][1]))


# --------------------------------------------------------------------------------------------
# Monte-Carlo returns with common random numbers
# --------------------------------------------------------------------------------------------
def linear_gaussian_pendulum(seed=0):
    """A linear Gaussian policy on Pendulum with random weights and sigma = 0.6."""
    policy = networks.GaussianPolicy(1, 1, hidden=())
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape), jnp.float32), params)
    params["params"]["log_std"] = jnp.full((1,), np.log(0.6), jnp.float32)
    return policy, params


def test_episode_returns_mask_after_the_first_episode_and_discount():
    """CartPole pays 1 per step: with gamma = 1 the return is the first episode's length L, and
    with gamma it is (1 - gamma^L) / (1 - gamma), so nothing after the first end is counted."""
    env, env_params, spec = envs.make("CartPole-v1")
    policy = networks.make_policy(spec, hidden=())
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    run = jax.jit(lambda gamma, steps_key: episode_returns(policy, params, env, env_params, spec, steps_key, 32, 120,
                                                           gamma))
    key = jax.random.PRNGKey(1)
    lengths = np.asarray(run(1.0, key))
    assert np.all(lengths == np.round(lengths)) and lengths.min() >= 8
    assert np.any(lengths < 120) and lengths.max() <= 120  # random play ends early; others are cut at H
    np.testing.assert_allclose(np.asarray(run(0.9, key)), (1 - 0.9**lengths) / (1 - 0.9), rtol=1e-5)
    # common random numbers: the same key gives the same episodes, another key others
    np.testing.assert_array_equal(np.asarray(run(1.0, key)), lengths)
    assert not np.array_equal(np.asarray(run(1.0, jax.random.PRNGKey(2))), lengths)


def reinforce_samples(policy, params, env_id, key, num_episodes, horizon):
    """Per-episode REINFORCE gradient samples sum_t grad log pi(a_t|s_t) G_t (reward-to-go), ``[E, P]``,
    and whether any episode ended within the horizon."""
    env, env_params, spec = envs.make(env_id)
    loop = envs.reset(env, env_params, spec, key, num_episodes)
    _, batch = rollout.collect(rollout.stateless(lambda o, k: (policy.apply(params, o).sample(k), ())), env, env_params, spec,
                               loop, jax.random.fold_in(key, 1), horizon)
    reward_to_go = jnp.cumsum(batch.reward[::-1], axis=0)[::-1]  # [H, E]
    flat, unravel = ravel_pytree(params)

    def surrogate(f, obs, action, weight):
        return jnp.sum(policy.apply(unravel(f), obs).log_prob(action) * weight)

    per_episode = jax.vmap(jax.grad(surrogate), in_axes=(None, 1, 1, 1))
    return per_episode(flat, batch.obs, batch.action, reward_to_go), batch.done.any()


@pytest.mark.learning
def test_finite_differences_agree_with_reinforce_within_monte_carlo_error():
    """Pendulum, 10 steps, linear Gaussian policy: the CRN finite-difference gradient and the
    REINFORCE gradient estimate the same dJ/dtheta; per component they agree within 4 combined
    standard errors, and the gradient is far from zero (so the comparison can fail)."""
    policy, params = linear_gaussian_pendulum()
    horizon = 10
    objective = make_return_objective(policy, "Pendulum-v1", jax.random.PRNGKey(3), 4000, horizon,
                                      per_episode=True)
    fd_samples = jax.jit(lambda p: finite_difference_gradient(objective, p, 1e-2))(params)  # leaves [E, ...]
    fd_samples = np.asarray(jax.vmap(lambda g: ravel_pytree(g)[0])(fd_samples), np.float64)  # [E, P]
    rf_samples, any_done = jax.jit(reinforce_samples, static_argnums=(0, 2, 4, 5))(
        policy, params, "Pendulum-v1", jax.random.PRNGKey(4), 200_000, horizon)
    assert not bool(any_done)  # Pendulum runs 200 steps: every step is in the first episode
    rf_samples = np.asarray(rf_samples, np.float64)
    fd_mean, fd_se = fd_samples.mean(0), fd_samples.std(0) / np.sqrt(len(fd_samples))
    rf_mean, rf_se = rf_samples.mean(0), rf_samples.std(0) / np.sqrt(len(rf_samples))
    combined = np.sqrt(fd_se**2 + rf_se**2)
    assert np.all(np.abs(fd_mean - rf_mean) < 4 * combined), (fd_mean, rf_mean, combined)
    assert np.max(np.abs(rf_mean) / combined) > 8  # a real, resolved gradient
    # with common random numbers the finite differences have much less variance than REINFORCE
    assert np.all(fd_samples.std(0) < rf_samples.std(0))
