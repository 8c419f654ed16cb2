"""Natural actor-critic: the compatible least-squares critic is the natural gradient.

Identities tested (references: dense NumPy float64 solves, `jax.hessian` of the mean KL):

1. the score matrix from ``score_matrix`` equals the Jacobian of the batch's log-probabilities;
2. w from ``compatible_natural_gradient`` equals the dense ridge least-squares solution
   argmin (1/B)||Psi w - A||^2 + ridge ||w||^2 = (F_hat + ridge I)^{-1} g_hat, F_hat = Psi^T Psi / B
   (the EMPIRICAL Fisher over the sampled actions, built explicitly);
3. compatible advantages A = Psi w* are recovered exactly (Kakade 2001's compatibility);
4. weighting every action of every state by pi(a|s) / N turns the empirical Fisher into the
   EXPECTED one, so the weighted least-squares w equals F^{-1} g computed by
   `purejaxpg.natural` (analytic Fisher-vector product) and by a dense solve with jax.hessian.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import _learning
from purejaxpg import natural, networks, results, train
from purejaxpg.algorithms.nac import NAC, NACHParams, compatible_natural_gradient, score_matrix
from purejaxpg.config import TrainConfig

OBS_DIM, NUM_ACTIONS, BATCH = 4, 3, 64


def policy_and_params(hidden, seed=0, dtype=jnp.float64):
    policy = networks.CategoricalPolicy(NUM_ACTIONS, 1, hidden=hidden)
    params = policy.init(jax.random.PRNGKey(seed), jnp.zeros((1, OBS_DIM)))
    rng = np.random.default_rng(seed)
    return policy, jax.tree.map(lambda x: jnp.asarray(0.8 * rng.standard_normal(x.shape), dtype), params)


def log_prob_fn(policy):
    return lambda p, o, a: policy.apply(p, o).log_prob(a)


@pytest.fixture(scope="module")
def sampled_batch():
    """A small MLP policy in float64, B states, actions sampled from it, random advantages."""
    with jax.enable_x64(True):
        policy, params = policy_and_params((5,))
        rng = np.random.default_rng(1)
        obs = jnp.asarray(rng.standard_normal((BATCH, OBS_DIM)))
        actions = policy.apply(params, obs).sample(jax.random.PRNGKey(2))
        advantages = jnp.asarray(rng.standard_normal(BATCH))
        scores, unravel = score_matrix(log_prob_fn(policy), params, obs, actions)
    return policy, params, obs, actions, advantages, np.asarray(scores)


def test_score_matrix_is_the_jacobian_of_log_probs(sampled_batch):
    policy, params, obs, actions, _, scores = sampled_batch
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(params)
        jacobian = jax.jacobian(lambda f: policy.apply(unravel(f), obs).log_prob(actions))(flat)
    assert scores.shape == (BATCH, flat.shape[0]) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, np.asarray(jacobian), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ridge", [1e-3, 0.1])
def test_least_squares_weights_equal_dense_empirical_fisher_solve(sampled_batch, ridge):
    _, _, _, _, advantages, scores = sampled_batch
    num_params = scores.shape[1]
    a = np.asarray(advantages)
    fisher = sum(np.outer(s, s) for s in scores) / BATCH  # empirical Fisher, sample by sample
    g = (scores * a[:, None]).mean(0)
    expected = np.linalg.solve(fisher + ridge * np.eye(num_params), g)
    # the same w as the ridge least-squares problem, solved as an augmented lstsq
    design = np.vstack([scores / np.sqrt(BATCH), np.sqrt(ridge) * np.eye(num_params)])
    target = np.concatenate([a / np.sqrt(BATCH), np.zeros(num_params)])
    np.testing.assert_allclose(np.linalg.lstsq(design, target, rcond=None)[0], expected, rtol=1e-8, atol=1e-10)
    with jax.enable_x64(True):
        w, info = compatible_natural_gradient(jnp.asarray(scores), advantages, ridge, 4 * num_params,
                                              cg_tol=1e-30)
        np.testing.assert_allclose(np.asarray(info["grad"]), g, rtol=1e-10)
        v = np.random.default_rng(3).standard_normal(num_params)
        np.testing.assert_allclose(np.asarray(info["matvec"](jnp.asarray(v))),
                                   (fisher + ridge * np.eye(num_params)) @ v, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-6, atol=1e-9)
    assert float(info["cg_residual"]) < 1e-8


def test_compatible_advantages_are_recovered(sampled_batch):
    """If A = Psi w* exactly (w* in the row space of Psi), the fit returns w* and explains all of A."""
    _, _, _, _, _, scores = sampled_batch
    w_star = scores.T @ np.random.default_rng(4).standard_normal(BATCH) / BATCH
    with jax.enable_x64(True):
        w, _ = compatible_natural_gradient(jnp.asarray(scores), jnp.asarray(scores @ w_star), 1e-12,
                                           4 * scores.shape[1], cg_tol=1e-30)
    np.testing.assert_allclose(np.asarray(w), w_star, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(scores @ np.asarray(w), scores @ w_star, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("hidden", [(), (6,)])
def test_weighted_over_all_actions_equals_expected_fisher_solution(hidden):
    """sum_s sum_a pi(a|s)/N psi psi^T = the analytic Fisher J^T M J of purejaxpg.natural, so the
    pi-weighted least-squares fit of Q over ALL actions is natural's F^{-1} g (linear softmax and MLP)."""
    num_states, ridge = 8, 1e-2
    with jax.enable_x64(True):
        policy, params = policy_and_params(hidden, seed=5)
        rng = np.random.default_rng(6)
        obs = jnp.asarray(rng.standard_normal((num_states, OBS_DIM)))
        q_values = jnp.asarray(rng.standard_normal((num_states, NUM_ACTIONS)))
        flat, unravel = ravel_pytree(params)
        num_params = flat.shape[0]

        @jax.jit
        def compute(params):
            dist_fn = lambda p: policy.apply(p, obs)  # noqa: E731
            # every (state, action) pair once, weighted by pi(a|s) / N
            all_obs = jnp.repeat(obs, NUM_ACTIONS, axis=0)
            all_actions = jnp.tile(jnp.arange(NUM_ACTIONS), num_states)
            weights = dist_fn(params).probs.reshape(-1) / num_states
            scores, _ = score_matrix(log_prob_fn(policy), params, all_obs, all_actions)
            w, _ = compatible_natural_gradient(scores, q_values.reshape(-1), ridge, 4 * num_params, weights,
                                               cg_tol=1e-30)
            # natural.py's route: g = grad of mean_s sum_a pi_theta(a|s) Q(s,a), analytic FVP, CG
            grad = jax.grad(lambda p: jnp.mean(jnp.sum(dist_fn(p).probs * q_values, axis=-1)))(params)
            matvec = natural.make_fisher_vector_product(dist_fn, params, ridge)
            direction, _ = natural.natural_gradient_direction(grad, matvec, 4 * num_params, cg_tol=1e-30)

            # dense reference: the Hessian of the mean KL(stop_gradient(pi) || pi_theta)
            def mean_kl(f):
                new = dist_fn(unravel(f))
                return jnp.mean(jax.lax.stop_gradient(new).kl(new))

            fisher = jax.hessian(mean_kl)(ravel_pytree(params)[0])
            return w, ravel_pytree(direction)[0], ravel_pytree(grad)[0], fisher, scores, weights

        w, direction, grad, fisher, scores, weights = map(np.asarray, compute(params))
    assert w.dtype == np.float64
    dense = np.linalg.solve(fisher + ridge * np.eye(num_params), grad)
    np.testing.assert_allclose(direction, dense, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(w, dense, rtol=1e-6, atol=1e-9)
    # the pi-weighted empirical Fisher IS the expected Fisher (matrix identity, not just the solve)
    np.testing.assert_allclose((scores * weights[:, None]).T @ scores, fisher, rtol=1e-8, atol=1e-12)


def test_sampled_empirical_fisher_differs_from_expected_fisher(sampled_batch):
    """The sampled-action (empirical) Fisher is a different matrix than the expected one; the
    identity above needs the pi-weighting over all actions."""
    policy, params, obs, _, _, scores = sampled_batch
    with jax.enable_x64(True):
        flat, unravel = ravel_pytree(params)
        fisher = np.asarray(jax.jit(jax.hessian(
            lambda f: jnp.mean(jax.lax.stop_gradient(policy.apply(unravel(f), obs)).kl(policy.apply(unravel(f), obs)))
        ))(flat))
    empirical = scores.T @ scores / BATCH
    assert np.linalg.norm(empirical - fisher) > 0.05 * np.linalg.norm(fisher)


# --------------------------------------------------------------------------------------------
# The algorithm on real rollouts
# --------------------------------------------------------------------------------------------
def test_nac_update_moves_along_w_and_respects_the_kl_model():
    """One normalised NAC step: finite metrics, 0.5 s^T (F_hat + ridge) s = delta by construction
    (checked through xFx and step_norm), and a small actual KL; also the MC-return variant runs."""
    config = TrainConfig("CartPole-v1", num_envs=4, num_steps=64, total_timesteps=4 * 64 * 3)
    for algo in (NAC(hidden=(8,), critic_epochs=1, critic_minibatches=2), NAC(hidden=(8,), use_critic=False)):
        trainer = train.make_train(algo, config, NACHParams())
        out = train.run_chunked(trainer, train.seed_keys(0, 1), NACHParams())
        m = out.metrics
        for name in ("kl", "step_norm", "xFx", "cg_residual", "compatible_r2"):
            assert np.all(np.isfinite(m[name])), name
        # step = sqrt(2 delta / xFx) w  =>  ||step||^2 xFx / ||w||^2 = 2 delta
        np.testing.assert_allclose(m["step_norm"] ** 2 * m["xFx"] / m["w_norm"] ** 2, 2 * 0.01, rtol=1e-3)
        assert np.all(m["kl"] > 0) and np.all(m["kl"] < 0.1)
        assert np.all(m["compatible_r2"] <= 1.0)


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_nac_learns_cartpole():
    algo = NAC(hidden=(16,))
    # 1e5 steps (random policy: 22)
    config = TrainConfig("CartPole-v1", num_envs=8, num_steps=256, total_timesteps=100_000)
    hparams = NACHParams(max_kl=0.02)
    out = train.run_chunked(train.make_train(algo, config, hparams), _learning.seed_keys(2), hparams)
    _learning.check(results.final_returns(out.metrics), every_seed_above=250, mean_above=350)
