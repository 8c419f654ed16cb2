"""purejaxpg.svgd: the RBF kernel, the median heuristic, the SVGD direction (against NumPy loops and
on a known 2-D Gaussian mixture) and soft Q-learning's importance-sampled soft value (against
closed-form integrals)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import svgd


def np_svgd_direction(x, score, h):
    """Liu & Wang (2016), eq. 8, as a plain double loop: phi(x_i) = (1/K) sum_j [k(x_j, x_i) score_j
    + grad_{x_j} k(x_j, x_i)], k(x, y) = exp(-||x - y||^2 / h)."""
    x, score = np.asarray(x, np.float64), np.asarray(score, np.float64)
    num = len(x)
    phi = np.zeros_like(x)
    for i in range(num):
        for j in range(num):
            k = math.exp(-np.sum((x[j] - x[i]) ** 2) / h)
            grad_k = -2.0 / h * (x[j] - x[i]) * k  # d/dx_j of exp(-||x_j - x_i||^2 / h)
            phi[i] += (k * score[j] + grad_k) / num
    return phi


def np_median_bandwidth(x):
    num = len(x)
    sq = [np.sum((x[i] - x[j]) ** 2) for i in range(num) for j in range(i + 1, num)]
    return np.median(sq) / math.log(num + 1)


def test_rbf_kernel_and_median_bandwidth_match_numpy():
    rng = np.random.default_rng(0)
    for num in (2, 5, 8):  # odd and even numbers of pairs (1, 10, 28)
        x = rng.normal(size=(num, 3)).astype(np.float32)
        y = rng.normal(size=(4, 3)).astype(np.float32)
        h = np_median_bandwidth(x)
        assert float(jax.jit(svgd.median_bandwidth)(jnp.asarray(x))) == pytest.approx(h, rel=1e-5)
        expected = np.array([[math.exp(-np.sum((a - b) ** 2) / 0.7) for b in y] for a in x])
        np.testing.assert_allclose(jax.jit(svgd.rbf_kernel)(jnp.asarray(x), jnp.asarray(y), 0.7), expected, rtol=1e-5)


def test_median_bandwidth_of_collapsed_particles_is_floored():
    """All particles equal: med = 0; the bound keeps h > 0, so the direction stays finite."""
    x = jnp.ones((6, 2))
    assert float(svgd.median_bandwidth(x)) == pytest.approx(1e-6)
    assert np.all(np.isfinite(svgd.svgd_direction(x, jnp.ones((6, 2)))))


@pytest.mark.parametrize("num, dim, bandwidth", [(2, 1, None), (7, 2, None), (10, 3, 0.5)])
def test_svgd_direction_matches_a_numpy_double_loop(num, dim, bandwidth):
    rng = np.random.default_rng(num)
    x = rng.normal(size=(num, dim)).astype(np.float32)
    score = rng.normal(size=(num, dim)).astype(np.float32)
    h = np_median_bandwidth(x) if bandwidth is None else bandwidth
    got = jax.jit(svgd.svgd_direction)(jnp.asarray(x), jnp.asarray(score), bandwidth)
    np.testing.assert_allclose(got, np_svgd_direction(x, score, h), rtol=1e-4, atol=1e-5)


def test_svgd_direction_vmaps_over_states():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 6, 2)).astype(np.float32)
    score = rng.normal(size=(4, 6, 2)).astype(np.float32)
    got = jax.vmap(svgd.svgd_direction)(jnp.asarray(x), jnp.asarray(score))
    for b in range(4):
        np.testing.assert_allclose(got[b], np_svgd_direction(x[b], score[b], np_median_bandwidth(x[b])),
                                   rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# SVGD on a known target: a 2-D mixture of two Gaussians

WEIGHTS = np.array([0.3, 0.7])
MEANS = np.array([[-1.5, 0.0], [1.5, 0.5]])
SIGMA = 0.8  # isotropic component std
NUM_PARTICLES, NUM_STEPS, STEP_SIZE = 100, 400, 0.1


def mixture_score(x):
    """Closed-form grad log p(x) = sum_k r_k(x) (mu_k - x) / sigma^2, r_k the posterior of component k."""
    diff = MEANS[None] - x[:, None, :]  # [K, 2 components, 2]
    resp = jax.nn.softmax(jnp.log(WEIGHTS) - 0.5 * jnp.sum(diff ** 2, -1) / SIGMA ** 2, axis=1)
    return jnp.sum(resp[..., None] * diff, axis=1) / SIGMA ** 2


def run_svgd(direction, key):
    """NUM_STEPS steps x <- x + eps phi(x) from a narrow Gaussian N(0, 0.1^2 I) at the origin."""
    x0 = 0.1 * jax.random.normal(key, (NUM_PARTICLES, 2))
    step = lambda x, _: (x + STEP_SIZE * direction(x, mixture_score(x)), None)  # noqa: E731
    return np.asarray(jax.jit(lambda x: jax.lax.scan(step, x, None, length=NUM_STEPS)[0])(x0), np.float64)


def check_matches_the_mixture(x):
    """Tolerances of three standard errors of K i.i.d. samples (SVGD's particles are at least as
    accurate on these moments; without the repulsive term they collapse and fail by far):
    proportions sqrt(w (1 - w) / K), means sqrt(var / K), variances var sqrt(2 / K)."""
    num = len(x)
    mean = WEIGHTS @ MEANS
    cov = SIGMA ** 2 * np.eye(2) + sum(w * np.outer(m - mean, m - mean) for w, m in zip(WEIGHTS, MEANS))
    # which component each particle belongs to (the modes lie on either side of x = 0)
    second = x[:, 0] > 0
    fraction = second.mean()
    assert abs(fraction - WEIGHTS[1]) < 3 * math.sqrt(WEIGHTS[0] * WEIGHTS[1] / num), f"mode weights: {fraction}"
    for k, members in enumerate((x[~second], x[second])):  # particles near each mode
        tol = 3 * SIGMA / math.sqrt(WEIGHTS[k] * num)
        np.testing.assert_allclose(members.mean(0), MEANS[k], atol=tol + 0.1, err_msg=f"mode {k}")
    mean_tol = 3 * np.sqrt(np.diag(cov) / num)
    assert np.all(np.abs(x.mean(0) - mean) < mean_tol), f"mean {x.mean(0)} vs {mean} (tolerance {mean_tol})"
    cov_tol = 3 * np.sqrt(2.0 / num) * np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(np.cov(x.T) - cov) < cov_tol), f"covariance {np.cov(x.T)} vs {cov} (tolerance {cov_tol})"


@pytest.mark.parametrize("seed", [0, 1])
def test_svgd_particles_match_a_gaussian_mixture_modes_weights_and_moments(seed):
    x = run_svgd(svgd.svgd_direction, jax.random.PRNGKey(seed))
    check_matches_the_mixture(x)


def test_the_mixture_check_fails_without_the_repulsive_term():
    """Kernel-smoothed gradient ascent alone (no grad k term): the particles collapse onto a mode."""

    def attractive_only(x, score):
        kernel = svgd.rbf_kernel(x, x, svgd.median_bandwidth(x))
        return kernel @ score / x.shape[0]

    x = run_svgd(attractive_only, jax.random.PRNGKey(0))
    with pytest.raises(AssertionError):
        check_matches_the_mixture(x)
    assert np.cov(x.T)[1, 1] < 0.2 * SIGMA ** 2  # the within-mode spread is gone


# ---------------------------------------------------------------------------------------------
# the importance-sampled soft value


def gaussian_integral_1d(center, width):
    """int_{-1}^{1} exp(-(a - center)^2 / (2 width^2)) da, in closed form with erf."""
    scale = width * math.sqrt(2.0)
    return width * math.sqrt(math.pi / 2) * (math.erf((1 - center) / scale) - math.erf((-1 - center) / scale))


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_soft_value_of_a_quadratic_q_matches_the_gaussian_integral(alpha):
    """Q(a) = c - sum_d (a_d - m_d)^2 / (2 s_d^2) on [-1, 1]^2: alpha log int exp(Q / alpha) da is
    c + alpha sum_d log I_d (I_d a 1-D Gaussian integral with width s_d sqrt(alpha)). The estimate
    with M uniform samples lies within four standard errors of it; that error is far below
    alpha log 2 (a missing proposal density) and alpha log M (a missing -log M)."""
    c, centers, widths = 3.0, np.array([0.3, -0.6]), np.array([0.5, 0.8])
    exact = c + alpha * sum(math.log(gaussian_integral_1d(m, s * math.sqrt(alpha))) for m, s in zip(centers, widths))
    num = 200_000
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(num, 2))
    q = c - np.sum((actions - centers) ** 2 / (2 * widths ** 2), axis=-1)
    got = float(svgd.soft_value(jnp.asarray(q, jnp.float32), svgd.uniform_log_density(2), alpha))
    weights = np.exp((q - c) / alpha)  # the standard error of log(mean(w)) is std(w) / (mean(w) sqrt(M))
    stderr = alpha * weights.std() / (weights.mean() * math.sqrt(num))
    assert 4 * stderr < 0.1 * alpha * math.log(2)
    assert got == pytest.approx(exact, abs=4 * stderr + 1e-4)


def test_soft_value_matches_numpy_and_tends_to_the_max_as_alpha_vanishes():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(3, 5)) * 4
    log_q = rng.normal(size=(3, 5))  # any proposal densities, per sample
    alpha = 0.7
    expected = alpha * np.log(np.mean(np.exp(q / alpha - log_q), axis=-1))
    np.testing.assert_allclose(svgd.soft_value(jnp.asarray(q), jnp.asarray(log_q), alpha), expected, rtol=1e-5)
    # huge Q values stay finite (logsumexp), and alpha -> 0 gives the max
    big = jnp.asarray(q * 1e6, jnp.float32)
    np.testing.assert_allclose(svgd.soft_value(big, 0.0, 1e-3), np.max(q * 1e6, axis=-1), rtol=1e-6)


def test_uniform_log_density():
    assert svgd.uniform_log_density(3) == pytest.approx(-3 * math.log(2))
    assert svgd.uniform_log_density(1, 0.0, 4.0) == pytest.approx(-math.log(4))
