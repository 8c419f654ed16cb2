"""Tests for purejaxpg.distributions against NumPy closed forms, Monte Carlo and jax.hessian."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purejaxpg.distributions import Categorical, DiagGaussian

RNG = np.random.default_rng(0)
LOGITS_P = RNG.normal(size=(3, 5)).astype(np.float32)
LOGITS_Q = RNG.normal(size=(3, 5)).astype(np.float32)
MEAN_P = RNG.normal(size=(3, 2)).astype(np.float32)
LOGSTD_P = RNG.normal(0.0, 0.5, size=(3, 2)).astype(np.float32)
MEAN_Q = RNG.normal(size=(3, 2)).astype(np.float32)
LOGSTD_Q = RNG.normal(0.0, 0.5, size=(3, 2)).astype(np.float32)

N_MC = 100_000


# ----------------------------------------------------------------------------------------------
# NumPy references (float64).
# ----------------------------------------------------------------------------------------------


def np_log_softmax(logits):
    x = np.asarray(logits, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def np_gauss_logpdf(a, mean, log_std):
    var = np.exp(2.0 * np.asarray(log_std, np.float64))
    return np.sum(-((a - mean) ** 2) / (2 * var) - 0.5 * np.log(2 * math.pi * var), axis=-1)


def np_gauss_entropy(log_std):
    var = np.exp(2.0 * np.asarray(log_std, np.float64))
    return np.sum(0.5 * np.log(2 * math.pi * math.e * var), axis=-1)


def np_gauss_kl(mp, lsp, mq, lsq):
    vp, vq = np.exp(2.0 * np.asarray(lsp, np.float64)), np.exp(2.0 * np.asarray(lsq, np.float64))
    return np.sum(0.5 * (np.log(vq / vp) + (vp + (mp - mq) ** 2) / vq - 1.0), axis=-1)


def assert_mc_close(samples, expected, n_se=5.0):
    """|sample mean - expected| < n_se standard errors, elementwise over the non-sample axes."""
    samples = np.asarray(samples, np.float64)
    se = samples.std(axis=0) / np.sqrt(samples.shape[0])
    err = np.abs(samples.mean(axis=0) - expected)
    assert np.all(err < n_se * se + 1e-6), (samples.mean(axis=0), expected, se)


# Jitted helpers (distributions are pytrees, so they pass straight through jit).
log_prob_j = jax.jit(lambda d, a: d.log_prob(a))
sample_j = jax.jit(lambda d, key: d.sample(key))
entropy = jax.jit(lambda d: d.entropy())
kl = jax.jit(lambda p, q: p.kl(q))
fisher_matvec = jax.jit(lambda d, t: d.fisher_matvec(t))


# ----------------------------------------------------------------------------------------------
# Categorical.
# ----------------------------------------------------------------------------------------------


def test_categorical_closed_forms():
    p, q = Categorical(LOGITS_P), Categorical(LOGITS_Q)
    lp_ref, lq_ref = np_log_softmax(LOGITS_P), np_log_softmax(LOGITS_Q)
    np.testing.assert_allclose(p.log_probs_all, lp_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.probs, np.exp(lp_ref), rtol=1e-5, atol=1e-7)
    for a in range(5):
        actions = np.full((3,), a, np.int32)
        np.testing.assert_allclose(log_prob_j(p, actions), lp_ref[:, a], rtol=1e-5, atol=1e-6)
    actions = np.array([4, 0, 2])
    np.testing.assert_allclose(log_prob_j(p, actions), lp_ref[np.arange(3), actions], rtol=1e-5)
    np.testing.assert_allclose(entropy(p), -np.sum(np.exp(lp_ref) * lp_ref, -1), rtol=1e-5)
    np.testing.assert_allclose(kl(p, q), np.sum(np.exp(lp_ref) * (lp_ref - lq_ref), -1), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(p.mode(), np.argmax(LOGITS_P, -1))
    # Uniform: entropy log A; a point mass (a -inf logit elsewhere) has zero entropy.
    np.testing.assert_allclose(entropy(Categorical(jnp.zeros((5,)))), math.log(5), rtol=1e-6)
    np.testing.assert_allclose(Categorical(jnp.array([0.0, -jnp.inf, -jnp.inf])).entropy(), 0.0, atol=1e-7)


def test_categorical_monte_carlo():
    p, q = Categorical(LOGITS_P[0]), Categorical(LOGITS_Q[0])
    big_p = Categorical(jnp.broadcast_to(LOGITS_P[0], (N_MC, 5)))
    big_q = Categorical(jnp.broadcast_to(LOGITS_Q[0], (N_MC, 5)))
    a = np.asarray(sample_j(big_p, jax.random.PRNGKey(1)))
    assert a.shape == (N_MC,) and a.dtype == np.int32
    probs = np.exp(np_log_softmax(LOGITS_P[0]))
    assert_mc_close(a[:, None] == np.arange(5), probs)
    log_p = np.asarray(log_prob_j(big_p, a))
    log_q = np.asarray(log_prob_j(big_q, a))
    assert_mc_close(-log_p, float(entropy(p)))
    assert_mc_close(log_p - log_q, float(kl(p, q)))


# ----------------------------------------------------------------------------------------------
# Diagonal Gaussian.
# ----------------------------------------------------------------------------------------------


def test_gaussian_closed_forms():
    p, q = DiagGaussian(MEAN_P, LOGSTD_P), DiagGaussian(MEAN_Q, LOGSTD_Q)
    a = RNG.normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_allclose(log_prob_j(p, a), np_gauss_logpdf(a, MEAN_P, LOGSTD_P), rtol=1e-5)
    np.testing.assert_allclose(entropy(p), np_gauss_entropy(LOGSTD_P), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kl(p, q), np_gauss_kl(MEAN_P, LOGSTD_P, MEAN_Q, LOGSTD_Q), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p.std, np.exp(LOGSTD_P), rtol=1e-6)
    np.testing.assert_array_equal(p.mode(), MEAN_P)
    # Standard normal in 1-D: log density at 0 is -log(2 pi)/2, entropy (1 + log 2 pi)/2.
    std1 = DiagGaussian(jnp.zeros((1,)), jnp.zeros((1,)))
    np.testing.assert_allclose(std1.log_prob(jnp.zeros((1,))), -0.5 * math.log(2 * math.pi), rtol=1e-6)
    np.testing.assert_allclose(std1.entropy(), 0.5 * (1 + math.log(2 * math.pi)), rtol=1e-6)


def test_gaussian_monte_carlo():
    p, q = DiagGaussian(MEAN_P[0], LOGSTD_P[0]), DiagGaussian(MEAN_Q[0], LOGSTD_Q[0])
    big_p = DiagGaussian(jnp.broadcast_to(MEAN_P[0], (N_MC, 2)), jnp.broadcast_to(LOGSTD_P[0], (N_MC, 2)))
    big_q = DiagGaussian(jnp.broadcast_to(MEAN_Q[0], (N_MC, 2)), jnp.broadcast_to(LOGSTD_Q[0], (N_MC, 2)))
    a = np.asarray(sample_j(big_p, jax.random.PRNGKey(2)), np.float64)
    assert a.shape == (N_MC, 2)
    std = np.exp(LOGSTD_P[0].astype(np.float64))
    assert_mc_close(a, MEAN_P[0])
    assert_mc_close((a - MEAN_P[0]) ** 2, std**2)
    # Independence of the coordinates.
    assert_mc_close((a[:, 0] - MEAN_P[0, 0]) * (a[:, 1] - MEAN_P[0, 1]), 0.0)
    a32 = a.astype(np.float32)
    log_p = np.asarray(log_prob_j(big_p, a32))
    log_q = np.asarray(log_prob_j(big_q, a32))
    assert_mc_close(-log_p, float(entropy(p)))
    assert_mc_close(log_p - log_q, float(kl(p, q)))


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float32, 3, elements=st.floats(-3.0, 3.0, width=32)),
    st.integers(0, 2),
    st.floats(1e-2, 2.0),
)
def test_gaussian_entropy_grows_with_log_std(log_std, i, delta):
    mean = np.zeros(3, np.float32)
    bigger = log_std.copy()
    bigger[i] += np.float32(delta)
    h0 = float(entropy(DiagGaussian(mean, log_std)))
    h1 = float(entropy(DiagGaussian(mean, bigger)))
    assert h1 > h0
    # dH / d log_std_i = 1: the increase is exactly the increase in log_std.
    np.testing.assert_allclose(h1 - h0, float(bigger[i]) - float(log_std[i]), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# KL properties.
# ----------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float32, (2, 4), elements=st.floats(-5.0, 5.0, width=32)),
    hnp.arrays(np.float32, (4, 2), elements=st.floats(-2.0, 2.0, width=32)),
)
def test_kl_nonnegative_and_zero_on_self(logits, gauss):
    p, q = Categorical(logits[0]), Categorical(logits[1])
    g_p = DiagGaussian(gauss[0], gauss[1])
    g_q = DiagGaussian(gauss[2], gauss[3])
    for a, b in ((p, q), (g_p, g_q)):
        assert float(kl(a, b)) >= -1e-6
        assert float(kl(b, a)) >= -1e-6
        np.testing.assert_allclose(kl(a, a), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        kl(p, q), np.sum(np.exp(np_log_softmax(logits[0])) * (np_log_softmax(logits[0]) - np_log_softmax(logits[1]))),
        rtol=1e-3, atol=1e-5,
    )
    np.testing.assert_allclose(kl(g_p, g_q), np_gauss_kl(gauss[0], gauss[1], gauss[2], gauss[3]), rtol=1e-3, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# jit / vmap / grad.
# ----------------------------------------------------------------------------------------------


def test_jit_vmap_grad():
    # vmap over a batch of distributions (the pytree leaves get the batch axis).
    lp_v = jax.jit(jax.vmap(lambda d, a: d.log_prob(a)))(Categorical(LOGITS_P), jnp.array([1, 2, 3]))
    np.testing.assert_allclose(lp_v, np_log_softmax(LOGITS_P)[np.arange(3), [1, 2, 3]], rtol=1e-5)
    ent_v = jax.vmap(lambda d: d.entropy())(DiagGaussian(MEAN_P, LOGSTD_P))
    np.testing.assert_allclose(ent_v, np_gauss_entropy(LOGSTD_P), rtol=1e-5)

    # Categorical: d log p(a) / d logits = onehot(a) - p; dH / d logits_j = -p_j (log p_j + H).
    g = jax.jit(jax.grad(lambda lg: Categorical(lg).log_prob(jnp.array(2))))(LOGITS_P[0])
    probs = np.exp(np_log_softmax(LOGITS_P[0]))
    np.testing.assert_allclose(g, np.eye(5)[2] - probs, rtol=1e-5, atol=1e-6)
    g = jax.jit(jax.grad(lambda lg: Categorical(lg).entropy()))(LOGITS_P[0])
    h = -np.sum(probs * np.log(probs))
    np.testing.assert_allclose(g, -probs * (np.log(probs) + h), rtol=1e-4, atol=1e-6)

    # Gaussian: d log N(a) / d mean = (a - mu) / sigma^2, d / d log_std = z^2 - 1; dH/dlog_std = 1.
    a = np.array([0.3, -1.2], np.float32)
    gm, gs = jax.jit(jax.grad(lambda m, s: DiagGaussian(m, s).log_prob(a), argnums=(0, 1)))(MEAN_P[0], LOGSTD_P[0])
    var = np.exp(2.0 * LOGSTD_P[0].astype(np.float64))
    np.testing.assert_allclose(gm, (a - MEAN_P[0]) / var, rtol=1e-5)
    np.testing.assert_allclose(gs, (a - MEAN_P[0]) ** 2 / var - 1.0, rtol=1e-4, atol=1e-6)
    gs = jax.grad(lambda s: DiagGaussian(MEAN_P[0], s).entropy())(LOGSTD_P[0])
    np.testing.assert_allclose(gs, 1.0)
    # Reparameterised sampling is differentiable: d sample / d mean = 1, d sample / d log_std = std * eps.
    key = jax.random.PRNGKey(3)
    eps = np.asarray(DiagGaussian(jnp.zeros(2), jnp.zeros(2)).sample(key))
    jm = jax.jacrev(lambda m: DiagGaussian(m, LOGSTD_P[0]).sample(key))(MEAN_P[0])
    js = jax.jacrev(lambda s: DiagGaussian(MEAN_P[0], s).sample(key))(LOGSTD_P[0])
    np.testing.assert_allclose(jm, np.eye(2), atol=1e-7)
    np.testing.assert_allclose(js, np.diag(np.exp(LOGSTD_P[0]) * eps), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Score-function lemma and Fisher information.
# ----------------------------------------------------------------------------------------------


def test_score_function_lemma_categorical_exact():
    # sum_a p(a) d log p(a) / d logits = 0 exactly (up to rounding).
    logits = LOGITS_P[1]
    scores = jax.jacrev(lambda lg: Categorical(lg).log_probs_all)(logits)  # [A, A]: row a = grad log p(a)
    probs = np.exp(np_log_softmax(logits))
    np.testing.assert_allclose(probs @ np.asarray(scores, np.float64), 0.0, atol=1e-6)
    # ... and the expected outer product of scores is the Fisher diag(p) - p p^T.
    s = np.asarray(scores, np.float64)
    fisher_mc = np.einsum("a,ai,aj->ij", probs, s, s)
    np.testing.assert_allclose(fisher_mc, np.diag(probs) - np.outer(probs, probs), atol=1e-6)


def test_score_function_lemma_gaussian_monte_carlo():
    mean, log_std = MEAN_P[2], LOGSTD_P[2]
    big = DiagGaussian(jnp.broadcast_to(mean, (N_MC, 2)), jnp.broadcast_to(log_std, (N_MC, 2)))
    a = sample_j(big, jax.random.PRNGKey(4))
    score = jax.jit(jax.vmap(jax.grad(lambda m, s, x: DiagGaussian(m, s).log_prob(x), argnums=(0, 1)),
                             in_axes=(None, None, 0)))
    g_mean, g_log_std = (np.asarray(x, np.float64) for x in score(mean, log_std, a))
    assert_mc_close(g_mean, np.zeros(2))
    assert_mc_close(g_log_std, np.zeros(2))
    # E[score score^T] is the Fisher: 1 / sigma^2 for the mean, 2 for the log std, 0 across.
    var = np.exp(2.0 * log_std.astype(np.float64))
    assert_mc_close(g_mean**2, 1.0 / var)
    assert_mc_close(g_log_std**2, np.full(2, 2.0))
    assert_mc_close(g_mean * g_log_std, np.zeros(2))


def test_categorical_fisher_matvec():
    t = RNG.normal(size=(3, 5)).astype(np.float32)
    out = np.asarray(fisher_matvec(Categorical(LOGITS_P), Categorical(t)).logits)  # batch of 3
    # Hessian of KL(p || q) in q's logits at q = p, per batch row.
    hess = jax.jit(jax.vmap(jax.hessian(lambda lp, lq: Categorical(lp).kl(Categorical(lq)), argnums=1)))(
        LOGITS_P, LOGITS_P
    )
    probs = np.exp(np_log_softmax(LOGITS_P))
    for b in range(3):
        explicit = np.diag(probs[b]) - np.outer(probs[b], probs[b])
        np.testing.assert_allclose(out[b], explicit @ t[b], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(hess[b], explicit, atol=1e-5)


def test_gaussian_fisher_matvec():
    D = 2

    def kl_to(theta_p, theta_q):
        p = DiagGaussian(theta_p[:D], theta_p[D:])
        return p.kl(DiagGaussian(theta_q[:D], theta_q[D:]))

    theta = np.concatenate([MEAN_P, LOGSTD_P], axis=-1)  # [3, 2D] in (mean, log_std)
    hess = np.asarray(jax.jit(jax.vmap(jax.hessian(kl_to, argnums=1)))(theta, theta), np.float64)
    t = RNG.normal(size=(3, 2 * D)).astype(np.float32)
    out = fisher_matvec(DiagGaussian(MEAN_P, LOGSTD_P), DiagGaussian(t[:, :D], t[:, D:]))
    out = np.concatenate([out.mean, out.log_std], axis=-1)
    for b in range(3):
        np.testing.assert_allclose(out[b], hess[b] @ t[b], rtol=1e-4, atol=1e-6)
    # The explicit block-diagonal form: 1 / sigma^2 for the mean, 2 for the log std.
    np.testing.assert_allclose(out[:, :D], t[:, :D] / np.exp(2.0 * LOGSTD_P), rtol=1e-5)
    np.testing.assert_allclose(out[:, D:], 2.0 * t[:, D:], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Masked actions (-inf logits): no 0 * inf in values or gradients.
# ----------------------------------------------------------------------------------------------


def test_categorical_kl_and_entropy_with_masked_actions():
    masked = jnp.array([0.0, 1.0, -jnp.inf])
    other = jnp.array([0.5, 0.0, 2.0])
    probs = np.exp(np_log_softmax(np.array([0.0, 1.0])))
    q = np.exp(np_log_softmax(np.array([0.5, 0.0, 2.0])))
    expected = np.sum(probs * (np.log(probs) - np.log(q[:2])))
    np.testing.assert_allclose(Categorical(masked).kl(Categorical(other)), expected, rtol=1e-5)
    np.testing.assert_allclose(Categorical(masked).entropy(), -np.sum(probs * np.log(probs)), rtol=1e-5)
    grad_entropy = jax.grad(lambda l: Categorical(l).entropy())(masked)
    grad_kl = jax.grad(lambda l: Categorical(masked).kl(Categorical(l)))(other)
    assert np.all(np.isfinite(grad_entropy)) and np.all(np.isfinite(grad_kl))


def test_sample_is_noise_then_deterministic_part_and_noise_needs_only_shapes():
    """sample(key) == sample_from_noise(sample_noise(key)); the noise can be drawn from
    jax.eval_shape's abstract distribution; Categorical matches jax.random.categorical."""
    key = jax.random.PRNGKey(7)
    cat = Categorical(jnp.asarray(LOGITS_P))
    np.testing.assert_array_equal(cat.sample(key), jax.random.categorical(key, cat.logits))
    abstract = jax.eval_shape(lambda: cat)
    noise = abstract.sample_noise(key)
    assert noise.shape == LOGITS_P.shape
    np.testing.assert_array_equal(cat.sample_from_noise(noise), cat.sample(key))
    # Gumbel-max: argmax of logits + Gumbel noise, by hand
    np.testing.assert_array_equal(cat.sample_from_noise(noise), np.argmax(LOGITS_P + np.asarray(noise), axis=-1))

    gauss = DiagGaussian(jnp.asarray(MEAN_P), jnp.asarray(LOGSTD_P))
    eps = jax.eval_shape(lambda: gauss).sample_noise(key)
    np.testing.assert_array_equal(eps, jax.random.normal(key, MEAN_P.shape))
    np.testing.assert_allclose(gauss.sample_from_noise(eps), MEAN_P + np.exp(LOGSTD_P) * np.asarray(eps), rtol=1e-6)
    np.testing.assert_allclose(gauss.sample(key), gauss.sample_from_noise(eps), rtol=1e-6)
