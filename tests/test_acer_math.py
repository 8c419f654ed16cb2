"""ACER's pure functions against independent references: Retrace (`returns.retrace`) against a
forward-sum NumPy loop, the truncated importance-sampled policy gradient with bias correction
(`objectives.truncated_is_bias_correction_loss`) against its closed-form gradient in the logits and
against the exact on-policy gradient it estimates without bias, and the trust-region step
(`objectives.trust_region_projection`) against SciPy's constrained solver."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from purejaxpg import objectives as O
from purejaxpg import returns as R

retrace_j = jax.jit(R.retrace)
TOL = dict(rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Retrace
# ----------------------------------------------------------------------------------------------


def np_retrace(r, q, nv, rho, te, tr, gamma, lam):
    """Forward view: Q^ret_t = Q_t + sum_{k=t}^{e} gamma^{k-t} (prod_{j=t+1}^{k} c_j) delta_k, with
    delta_k = r_k + gamma (1 - te_k) V(s_{k+1}) - Q_k, c_j = lam min(1, rho_j) and e the step where
    the episode (or the segment) ends."""
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            e = t
            while not (te[e, n] or tr[e, n]) and e < T - 1:
                e += 1
            total, weight = float(q[t, n]), 1.0
            for k in range(t, e + 1):
                if k > t:
                    weight *= gamma * lam * min(1.0, float(rho[k, n]))
                delta = float(r[k, n]) + (0.0 if te[k, n] else gamma * float(nv[k, n])) - float(q[k, n])
                total += weight * delta
            out[t, n] = total
    return out


def retrace_case(seed, T=12, N=5):
    rng = np.random.default_rng(seed)
    ends = rng.random((T, N))
    te = ends < 0.15
    tr = (ends >= 0.15) & (ends < 0.3)
    rho = np.exp(rng.normal(0.0, 1.0, (T, N)))  # both sides of 1
    return dict(r=rng.normal(size=(T, N)), q=rng.normal(size=(T, N)), nv=rng.normal(size=(T, N)) + 2.0,
                rho=rho, te=te, tr=tr)


def call_retrace(case, gamma, lam):
    return np.asarray(retrace_j(case["r"], case["q"], case["nv"], case["rho"], case["te"], case["tr"], gamma, lam))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma, lam", [(0.99, 1.0), (0.9, 0.7)])
def test_retrace_matches_forward_sum_with_both_kinds_of_episode_end(seed, gamma, lam):
    case = retrace_case(seed)
    assert case["te"].any() and case["tr"].any() and (case["rho"] > 1).any() and (case["rho"] < 1).any()
    np.testing.assert_allclose(call_retrace(case, gamma, lam), np_retrace(**case, gamma=gamma, lam=lam), **TOL)


def test_retrace_by_hand():
    """One env, 4 steps: truncated at 1, terminated at 3 (the last row)."""
    r = np.array([[1.0], [2.0], [3.0], [4.0]])
    q = np.array([[0.5], [0.1], [0.2], [0.3]])
    nv = np.array([[7.0], [5.0], [6.0], [100.0]])
    rho = np.array([[1.0], [3.0], [0.5], [2.0]])
    te = np.array([[False], [False], [False], [True]])
    tr = np.array([[False], [True], [False], [False]])
    g = 0.9
    q3 = 4.0                                    # terminated: no bootstrap at all
    q2 = 3.0 + g * (6.0 + 1.0 * (q3 - 0.3))     # c_3 = min(1, 2) = 1
    q1 = 2.0 + g * 5.0                          # truncated: V(final obs), no chain across the reset
    q0 = 1.0 + g * (7.0 + 1.0 * (q1 - 0.1))     # c_1 = min(1, 3) = 1
    np.testing.assert_allclose(call_retrace(dict(r=r, q=q, nv=nv, rho=rho, te=te, tr=tr), g, 1.0)[:, 0],
                               [q0, q1, q2, q3], rtol=1e-6)


def test_retrace_with_lambda_zero_is_the_one_step_expected_sarsa_target():
    case = retrace_case(3)
    one_step = case["r"] + 0.95 * np.where(case["te"], 0.0, case["nv"])
    np.testing.assert_allclose(call_retrace(case, 0.95, 0.0), one_step, **TOL)


def test_retrace_accepts_float_flags_and_traced_hyperparameters():
    case = retrace_case(4)
    as_float = dict(case, te=case["te"].astype(np.float32), tr=case["tr"].astype(np.float32))
    swept = jax.vmap(lambda g: R.retrace(case["r"], case["q"], case["nv"], case["rho"], as_float["te"],
                                         as_float["tr"], g, 1.0))(jnp.array([0.9, 0.99]))
    np.testing.assert_allclose(np.asarray(swept[1]), np_retrace(**case, gamma=0.99, lam=1.0), **TOL)


# ----------------------------------------------------------------------------------------------
# Truncated importance sampling with bias correction
# ----------------------------------------------------------------------------------------------


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_acer_gradient(logits, actions, mu, q_ret, q, c):
    """g_t = min(c, rho_t(a_t)) (onehot(a_t) - pi)(Q^ret_t - V) + sum_b [1 - c / rho(b)]_+ pi(b) (onehot(b) - pi)(Q(b) - V),
    with d log pi(b) / d logits = onehot(b) - pi."""
    B, A = logits.shape
    g = np.zeros((B, A))
    for i in range(B):
        pi = softmax(logits[i].astype(np.float64))
        v = float(pi @ q[i])
        rho = pi / mu[i]
        a = actions[i]
        g[i] += min(c, rho[a]) * (np.eye(A)[a] - pi) * (q_ret[i] - v)
        for b in range(A):
            g[i] += max(0.0, 1.0 - c / rho[b]) * pi[b] * (np.eye(A)[b] - pi) * (q[i, b] - v)
    return g


def acer_case(seed, B=7, A=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (B, A)).astype(np.float32)
    mu = softmax(rng.normal(0.0, 1.5, (B, A))).astype(np.float32)
    actions = np.array([rng.choice(A, p=m / m.sum()) for m in mu.astype(np.float64)], np.int32)
    return logits, actions, mu, rng.normal(size=B).astype(np.float32), rng.normal(size=(B, A)).astype(np.float32)


loss_grad = jax.jit(jax.grad(O.truncated_is_bias_correction_loss))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("clip", [0.7, 1.5, 10.0])
def test_truncated_is_gradient_matches_closed_form(seed, clip):
    logits, actions, mu, q_ret, q = acer_case(seed)
    rho = softmax(logits.astype(np.float64)) / mu
    if clip < 2:  # the case exercises both the truncation and the correction
        assert (rho > clip).any()
    got = np.asarray(loss_grad(logits, actions, mu, q_ret, q, clip))
    # the loss is -mean_t l_t: its gradient is -g / B
    np.testing.assert_allclose(got, -np_acer_gradient(logits, actions, mu, q_ret, q, clip) / len(actions),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clip", [0.5, 1.0, 3.0])
def test_truncated_is_with_correction_is_unbiased(clip):
    """With Q^ret = Q(s, a), the expectation over a ~ mu of the estimator equals the on-policy
    gradient sum_a pi(a) grad log pi(a) (Q(s, a) - V(s)) for any truncation c (Wang et al. 2017, eq. 8)."""
    rng = np.random.default_rng(5)
    A = 5
    logits = rng.normal(0.0, 1.0, (1, A)).astype(np.float32)
    mu = softmax(rng.normal(0.0, 1.0, (1, A))).astype(np.float32)
    q = rng.normal(size=(1, A)).astype(np.float32)
    pi = softmax(logits[0].astype(np.float64))
    v = pi @ q[0]
    exact = sum(pi[a] * (np.eye(A)[a] - pi) * (q[0, a] - v) for a in range(A))
    expected = np.zeros(A)
    for a in range(A):  # E_{a ~ mu}: every action, weighted by its behaviour probability
        grad = loss_grad(logits, np.array([a], np.int32), mu, q[:, a], q, clip)
        expected += float(mu[0, a]) * -np.asarray(grad[0], np.float64)
    np.testing.assert_allclose(expected, exact, rtol=1e-4, atol=1e-6)


def test_truncated_is_handles_zero_probabilities_without_nan():
    logits = np.array([[0.0, 1.0, -np.inf]], np.float32)   # pi(2) = 0
    mu = np.array([[0.5, 0.5, 0.0]], np.float32)           # mu(2) = 0
    grad = loss_grad(logits, np.array([1], np.int32), mu, np.array([1.0], np.float32),
                     np.array([[0.0, 1.0, 2.0]], np.float32), 1.0)
    assert np.all(np.isfinite(np.asarray(grad)[:, :2]))
    loss = O.truncated_is_bias_correction_loss(jnp.asarray(logits), jnp.array([1]), jnp.asarray(mu),
                                               jnp.array([1.0]), jnp.array([[0.0, 1.0, 2.0]]), 1.0)
    assert np.isfinite(float(loss))


# ----------------------------------------------------------------------------------------------
# The efficient trust region
# ----------------------------------------------------------------------------------------------


def scipy_projection(g, k, delta):
    """argmin_z 1/2 ||z - g||^2 subject to k . z <= delta, by SLSQP."""
    res = scipy.optimize.minimize(lambda z: 0.5 * np.sum((z - g) ** 2), x0=np.zeros_like(g), jac=lambda z: z - g,
                                  constraints=[{"type": "ineq", "fun": lambda z: delta - k @ z, "jac": lambda z: -k}],
                                  method="SLSQP", options={"ftol": 1e-14, "maxiter": 200})
    assert res.success, res.message
    return res.x


@pytest.mark.parametrize("seed", range(4))
def test_trust_region_projection_matches_a_constrained_solver(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(6, 4))
    k = rng.normal(size=(6, 4))
    k[1::2] += g[1::2]  # k . g > 0: these leave the region
    k[2::2] -= g[2::2]  # k . g < 0: these stay inside
    k[0] = 0.0  # no constraint where the policy equals the average policy
    delta = 0.3
    active = np.sum(k * g, -1) > delta
    assert active.any() and (~active).any()
    got = np.asarray(O.trust_region_projection(jnp.asarray(g, jnp.float32), jnp.asarray(k, jnp.float32), delta))
    want = np.stack([scipy_projection(g[i], k[i], delta) for i in range(len(g))])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[~active], g[~active], rtol=1e-6)  # inside the region: untouched
    assert np.all(np.sum(k * got, -1) <= delta + 1e-5)
