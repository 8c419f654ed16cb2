"""Linear-softmax and linear-Gaussian policies and the feature maps of purejaxpg.features.

References are closed forms evaluated in NumPy float64: the linear-softmax score
phi(s,a) - E_pi[phi(s,.)], the Gaussian score (a - mu) x / sigma^2, the score-function lemma
E_pi[grad log pi] = 0, and the feature maps' own definitions.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _learning
from purejaxpg import envs, features, networks, rollout
from purejaxpg.algorithms import PPO, PPOHParams, common

OBS_DIM, NUM_ACTIONS, ACT_DIM, BATCH = 4, 3, 2, 16


def random_params(tree, seed, scale=0.7):
    """Replace every leaf by N(0, scale^2) draws (so the policy is far from uniform)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(scale * rng.standard_normal(x.shape), jnp.float32), tree)


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def states():
    return np.random.default_rng(0).standard_normal((BATCH, OBS_DIM)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Linear softmax: CategoricalPolicy(hidden=())
# --------------------------------------------------------------------------------------------
def linear_softmax():
    policy = networks.CategoricalPolicy(NUM_ACTIONS, 1, hidden=())
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM)))
    return policy, random_params(params, 1)


def per_sample_grads(policy, params, obs, actions):
    def log_prob(p, o, a):
        return policy.apply(p, o).log_prob(a)

    return jax.vmap(jax.grad(log_prob), in_axes=(None, 0, 0))(params, jnp.asarray(obs), jnp.asarray(actions))


def test_linear_softmax_score_is_phi_minus_its_mean(states):
    """grad log pi(a|s) = phi(s,a) - E_pi phi(s,.) with phi(s,a) = e_a (x) [x(s), 1]."""
    policy, params = linear_softmax()
    actions = np.arange(BATCH) % NUM_ACTIONS
    grads = per_sample_grads(policy, params, states, actions)["params"]["MLP_0"]["Dense_0"]
    w = np.asarray(params["params"]["MLP_0"]["Dense_0"]["kernel"], np.float64)  # [d, A]
    b = np.asarray(params["params"]["MLP_0"]["Dense_0"]["bias"], np.float64)
    x = states.astype(np.float64)
    p = softmax(x @ w + b)  # [B, A]
    for i in range(BATCH):
        xb = np.append(x[i], 1.0)  # [x(s), 1]
        phi = np.stack([np.kron(np.eye(NUM_ACTIONS)[a], xb) for a in range(NUM_ACTIONS)])  # [A, A (d+1)]
        expected = phi[actions[i]] - p[i] @ phi  # [A (d+1)], action-major blocks
        expected = expected.reshape(NUM_ACTIONS, OBS_DIM + 1)  # [A, d+1]
        np.testing.assert_allclose(np.asarray(grads["kernel"][i]), expected[:, :OBS_DIM].T, atol=1e-5)
        np.testing.assert_allclose(np.asarray(grads["bias"][i]), expected[:, OBS_DIM], atol=1e-5)


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_categorical_score_function_lemma_is_exact(states, hidden):
    """sum_a pi(a|s) grad log pi(a|s) = 0 for every state, linear or not."""
    policy = networks.CategoricalPolicy(NUM_ACTIONS, 1, hidden=hidden)
    params = random_params(policy.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM))), 2)
    probs = np.asarray(policy.apply(params, jnp.asarray(states)).probs, np.float64)  # [B, A]
    for a in range(NUM_ACTIONS):
        g = per_sample_grads(policy, params, states, np.full(BATCH, a))
        weight = probs[:, a]
        term = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64) * weight.reshape((-1,) + (1,) * (leaf.ndim - 1)), g)
        total = term if a == 0 else jax.tree.map(np.add, total, term)
    for leaf in jax.tree.leaves(total):
        np.testing.assert_allclose(leaf, 0.0, atol=1e-6)
    # and a single action's score is not zero (so the sum above is a real cancellation)
    assert max(np.abs(np.asarray(leaf)).max() for leaf in jax.tree.leaves(g)) > 1e-2


# --------------------------------------------------------------------------------------------
# Linear Gaussian: GaussianPolicy(hidden=())
# --------------------------------------------------------------------------------------------
def linear_gaussian():
    policy = networks.GaussianPolicy(ACT_DIM, 1, hidden=())
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM)))
    return policy, random_params(params, 3, scale=0.5)


def test_linear_gaussian_score_closed_form(states):
    """grad_W log pi = x (a - mu)^T / sigma^2, grad_b = (a - mu) / sigma^2,
    grad_logstd = (a - mu)^2 / sigma^2 - 1."""
    policy, params = linear_gaussian()
    actions = np.random.default_rng(4).standard_normal((BATCH, ACT_DIM)).astype(np.float32)
    grads = per_sample_grads(policy, params, states, actions)["params"]
    w = np.asarray(params["params"]["MLP_0"]["Dense_0"]["kernel"], np.float64)
    b = np.asarray(params["params"]["MLP_0"]["Dense_0"]["bias"], np.float64)
    sigma = np.exp(np.asarray(params["params"]["log_std"], np.float64))
    x = states.astype(np.float64)
    mu = x @ w + b
    z = (actions - mu) / sigma**2  # [B, D]
    np.testing.assert_allclose(np.asarray(grads["MLP_0"]["Dense_0"]["kernel"]), x[:, :, None] * z[:, None, :],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["MLP_0"]["Dense_0"]["bias"]), z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["log_std"]), (actions - mu) ** 2 / sigma**2 - 1.0,
                               rtol=1e-4, atol=1e-5)


def test_gaussian_score_function_lemma_by_monte_carlo(states):
    """E_{a~pi}[grad log pi(a|s)] = 0: every component's sample mean within 4.5 standard errors,
    while the mean of |score| is far from 0."""
    policy, params = linear_gaussian()
    num_samples = 20_000
    s = np.repeat(states[:2], num_samples // 2, axis=0)
    actions = policy.apply(params, jnp.asarray(s)).sample(jax.random.PRNGKey(5))
    flat = jax.vmap(lambda g: jax.flatten_util.ravel_pytree(g)[0])(per_sample_grads(policy, params, s, actions))
    flat = np.asarray(flat, np.float64)
    for half in (flat[: num_samples // 2], flat[num_samples // 2:]):  # per state
        mean, se = half.mean(0), half.std(0) / np.sqrt(half.shape[0])
        assert np.all(np.abs(mean) < 4.5 * se), (mean, se)
        assert np.all(np.abs(half).mean(0) > 20 * se)


# --------------------------------------------------------------------------------------------
# State-action features
# --------------------------------------------------------------------------------------------
def test_state_action_linear_softmax_matches_linear_categorical_and_score(states):
    phi_module = features.OneHotActionFeatures(NUM_ACTIONS)
    policy = features.StateActionLinearSoftmax(phi_module)
    params = random_params(policy.init(jax.random.PRNGKey(0), jnp.zeros((1, OBS_DIM))), 6)
    theta = np.asarray(params["params"]["theta"], np.float64)  # [A (d+1)]
    # same policy as CategoricalPolicy(hidden=()) with kernel/bias read off theta's action blocks
    blocks = theta.reshape(NUM_ACTIONS, OBS_DIM + 1)
    x = states.astype(np.float64)
    expected_logits = x @ blocks[:, :OBS_DIM].T + blocks[:, OBS_DIM]
    got = np.asarray(policy.apply(params, jnp.asarray(states)).log_probs_all, np.float64)
    np.testing.assert_allclose(got, np.log(softmax(expected_logits)), atol=1e-5)
    # score = phi(s,a) - sum_b pi(b|s) phi(s,b), phi evaluated independently in NumPy
    actions = (np.arange(BATCH) * 2) % NUM_ACTIONS
    grads = np.asarray(per_sample_grads(policy, params, states, actions)["params"]["theta"], np.float64)
    p = softmax(expected_logits)
    for i in range(BATCH):
        phi = np.stack([np.kron(np.eye(NUM_ACTIONS)[a], np.append(x[i], 1.0)) for a in range(NUM_ACTIONS)])
        np.testing.assert_allclose(grads[i], phi[actions[i]] - p[i] @ phi, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Feature maps against their definitions
# --------------------------------------------------------------------------------------------
def apply(module, obs):
    return np.asarray(module.apply({}, jnp.asarray(obs, jnp.float32)), np.float64)


def test_polynomial_features():
    x = np.array([[2.0, -3.0, 0.5]])
    out = apply(features.PolynomialFeatures(degree=3), x)
    d, k = 3, 3
    assert out.shape == (1, math.comb(d + k, k) - 1)
    expected = [np.prod(x[0, list(idx)]) for deg in range(1, k + 1)
                for idx in itertools.combinations_with_replacement(range(d), deg)]
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    assert sorted(np.round(out[0], 6)) == sorted(np.round(expected, 6))
    assert 2.0 * 2.0 * 0.5 in np.round(out[0], 6) and (-3.0) ** 3 in np.round(out[0], 6)
    with_bias = apply(features.PolynomialFeatures(degree=1, include_bias=True), x)
    np.testing.assert_allclose(with_bias[0], [1.0, 2.0, -3.0, 0.5])


def test_fourier_basis():
    low, high = (-1.0, 0.0), (1.0, 4.0)
    module = features.FourierBasis(order=2, low=low, high=high)
    x = np.array([[0.0, 1.0], [-1.0, 0.0], [5.0, -3.0]])  # the last is clipped to (1, 0)
    out = apply(module, x)
    assert out.shape == (3, 9)
    u = np.clip((x - np.array(low)) / (np.array(high) - np.array(low)), 0, 1)
    coefs = np.array(list(itertools.product(range(3), repeat=2)))
    np.testing.assert_allclose(out, np.cos(np.pi * u @ coefs.T), atol=1e-6)
    np.testing.assert_allclose(out[1], 1.0, atol=1e-6)  # the corner u = 0: every cosine is 1


def test_random_fourier_features_approximate_the_gaussian_kernel():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3))
    bandwidth = 1.5
    out = apply(features.RandomFourierFeatures(num_features=20_000, bandwidth=bandwidth, seed=3), x)
    kernel = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * bandwidth**2))
    np.testing.assert_allclose(out @ out.T, kernel, atol=0.04)
    # fixed seed: the same map every call; another seed: another map
    np.testing.assert_array_equal(out, apply(features.RandomFourierFeatures(20_000, bandwidth, 3), x))
    assert not np.allclose(out, apply(features.RandomFourierFeatures(20_000, bandwidth, 4), x))


def test_rbf_features_on_a_grid():
    module = features.RBFFeatures.grid((0.0, 0.0), (1.0, 2.0), num_per_dim=3, width=0.5)
    assert len(module.centers) == 9 and module.centers[5] == (0.5, 2.0)
    x = np.array([[0.5, 2.0], [0.1, 0.3]])
    out = apply(module, x)
    centers = np.array(module.centers)
    expected = np.exp(-((x[:, None] - centers[None]) ** 2).sum(-1) / (2 * 0.25))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert out[0, 5] == pytest.approx(1.0)


def test_state_aggregation_one_hot_cells():
    module = features.StateAggregation(low=(0.0, -1.0), high=(1.0, 1.0), bins=4)
    x = np.array([[0.1, -0.9], [0.99, 0.99], [0.3, 0.1], [-5.0, 7.0]])
    out = apply(module, x)
    assert out.shape == (4, 16)
    np.testing.assert_array_equal(out.sum(-1), 1.0)
    # cell (i, j) -> index i * 4 + j; NumPy reference of the binning
    u = np.clip((x - [0.0, -1.0]) / [1.0, 2.0], 0, 1)
    cells = np.minimum(np.floor(u * 4).astype(int), 3)
    np.testing.assert_array_equal(out.argmax(-1), cells[:, 0] * 4 + cells[:, 1])
    np.testing.assert_array_equal(out.argmax(-1), [0, 15, 6, 3])


# --------------------------------------------------------------------------------------------
# Plugging features into an algorithm
# --------------------------------------------------------------------------------------------
def test_featurize_any_actor_critic_state_runs_ppo_update():
    """featurize() turns PPO's state into a linear policy over RBF features; an update runs on it."""
    env, env_params, spec = envs.make("CartPole-v1")
    algo = PPO(num_epochs=1, num_minibatches=2, hidden=(8,))
    tx = common.optimizer("adam", 1.0, algo.adam_eps)
    phi = features.RBFFeatures.grid((-1, -1, -0.2, -1), (1, 1, 0.2, 1), num_per_dim=2, width=0.5)
    state = features.featurize(algo.init(jax.random.PRNGKey(0), spec, PPOHParams()), phi,
                               jax.random.PRNGKey(1), spec, tx=tx)
    head = state.params["policy"]["params"]["head"]
    widths = [leaf.shape for leaf in jax.tree.leaves(head)]
    assert (16, 8) in widths  # the MLP now reads 16 RBF features, not the 4 raw observations
    loop = envs.reset(env, env_params, spec, jax.random.PRNGKey(2), 4)
    _, batch = rollout.collect(lambda o, k, a: algo.act(state, o, k, a), env, env_params, spec, loop,
                               jax.random.PRNGKey(3), 8)
    new_state, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(4), PPOHParams(), 0.0)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), state.params["policy"], new_state.params["policy"])
    assert any(jax.tree.leaves(changed))


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_linear_gaussian_over_a_fourier_basis_learns_pendulum_with_trpo():
    """A textbook linear policy: mean = W phi(s) + b over a 3rd-order Fourier basis of
    (cos, sin, angular velocity), 64 features; TRPO swings it up in 2e5 steps."""
    from purejaxpg import results, train
    from purejaxpg.algorithms.trpo import TRPO, TRPOHParams
    from purejaxpg.config import TrainConfig

    phi = features.FourierBasis(order=3, low=(-1.0, -1.0, -8.0), high=(1.0, 1.0, 8.0))
    algo = TRPO(hidden=(), features=phi, critic_epochs=10, critic_minibatches=8)  # Pendulum preset's critic
    hparams = TRPOHParams(gamma=0.95, critic_lr=3e-3)
    config = TrainConfig("Pendulum-v1", num_envs=20, num_steps=200, total_timesteps=200_000)
    trainer = train.make_train(algo, config, hparams)
    policy_params = algo.init(jax.random.PRNGKey(0), trainer.spec, hparams).params["policy"]
    assert [leaf.shape for leaf in jax.tree.leaves(policy_params)] == [(1,), (64, 1), (1,)]  # bias, W, log std
    out = train.run_chunked(trainer, _learning.seed_keys(2), hparams)
    _learning.check(results.final_returns(out.metrics), every_seed_above=-400, mean_above=-300)
