"""Tests for purejaxpg.objectives against NumPy closed forms and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purejaxpg import objectives as O
from _reference import np_fd_grad

# ----------------------------------------------------------------------------------------------
# NumPy (float64) references, written from the formulas.
# ----------------------------------------------------------------------------------------------


def np_reinforce(lp, a):
    return -np.mean(lp * a)


def np_surrogate(lp, old, a):
    return -np.mean(np.exp(lp - old) * a)


def np_clipped(lp, old, a, eps):
    r = np.exp(lp - old)
    return -np.mean(np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a))


def np_value_loss(v, t, old=None, eps=None):
    if old is None:
        return 0.5 * np.mean((v - t) ** 2)
    vc = old + np.clip(v - old, -eps, eps)
    return 0.5 * np.mean(np.maximum((v - t) ** 2, (vc - t) ** 2))


def np_k1(lp, old):
    return old - lp


def np_k3(lp, old):
    r = np.exp(lp - old)
    return (r - 1) - np.log(r)


def np_grpo_k3(lp, ref):
    rho = np.exp(ref - lp)
    return rho - np.log(rho) - 1


def f32(*xs):
    return tuple(np.asarray(x, np.float32) for x in xs)


RNG = np.random.default_rng(0)
LP = RNG.normal(-1.0, 0.3, size=(4, 3))
OLD = LP + RNG.normal(0.0, 0.3, size=(4, 3))
ADV = RNG.normal(size=(4, 3))


# ----------------------------------------------------------------------------------------------
# Closed forms on small inputs.
# ----------------------------------------------------------------------------------------------


def test_hand_made_values():
    lp = np.log(np.array([0.5, 0.25]))
    old = np.log(np.array([0.25, 0.5]))  # ratios 2 and 0.5
    adv = np.array([1.0, -2.0])
    # reinforce: -(log .5 * 1 + log .25 * -2) / 2
    np.testing.assert_allclose(O.reinforce_loss(*f32(lp, adv)), -(np.log(0.5) - 2 * np.log(0.25)) / 2, rtol=1e-6)
    np.testing.assert_allclose(O.importance_ratio(*f32(lp, old)), [2.0, 0.5], rtol=1e-6)
    # surrogate: -(2 * 1 + 0.5 * -2) / 2 = -0.5
    np.testing.assert_allclose(O.surrogate_loss(*f32(lp, old, adv)), -0.5, rtol=1e-6)
    # clipped with eps = 0.2: min(2, 1.2) = 1.2 ; min(-1, 0.8 * -2 = -1.6) = -1.6 -> -(1.2 - 1.6)/2
    np.testing.assert_allclose(O.clipped_surrogate_loss(*f32(lp, old, adv), 0.2), 0.2, rtol=1e-5)
    # k1 = old - lp = [log .5, log 2]; k3 = (r - 1) - log r
    np.testing.assert_allclose(O.kl_k1(*f32(lp, old)), [np.log(0.5), np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(O.kl_k3(*f32(lp, old)), [1 - np.log(2.0), -0.5 + np.log(2.0)], rtol=1e-5)
    # grpo_k3 with rho = ref / pi = [0.5, 2]: rho - log rho - 1
    np.testing.assert_allclose(O.grpo_k3(*f32(lp, old)), [-0.5 + np.log(2.0), 1 - np.log(2.0)], rtol=1e-5)
    np.testing.assert_allclose(O.entropy_loss(np.array([0.5, 1.5], np.float32)), -1.0, rtol=1e-6)
    # value loss: 0.5 * mean([1, 4]) ; clipped: v = [1, 3], old = [0, 0], t = [0, 1], eps = 0.5
    v, t, vold = np.array([1.0, 3.0]), np.array([0.0, 1.0]), np.array([0.0, 0.0])
    np.testing.assert_allclose(O.value_loss(*f32(v, t)), 0.5 * (1 + 4) / 2, rtol=1e-6)
    # clipped values [0.5, 0.5]: max(1, 0.25) = 1, max(4, 0.25) = 4
    np.testing.assert_allclose(O.value_loss(*f32(v, t, vold), 0.5), 0.5 * (1 + 4) / 2, rtol=1e-6)
    # v = [0.2, 3], old = [0, 2.5], t = [1, 4], eps = 0.1: clipped = [0.1, 2.6];
    # max(0.64, 0.81) = 0.81, max(1, 1.96) = 1.96
    v, t, vold = np.array([0.2, 3.0]), np.array([1.0, 4.0]), np.array([0.0, 2.5])
    np.testing.assert_allclose(O.value_loss(*f32(v, t, vold), 0.1), 0.5 * (0.81 + 1.96) / 2, rtol=1e-5)
    # penalties: kl = [0.1, 0.3]
    kl = np.array([0.1, 0.3], np.float32)
    np.testing.assert_allclose(O.kl_penalty_loss(*f32(lp, old, adv), kl, 3.0), -0.5 + 3.0 * 0.2, rtol=1e-5)
    np.testing.assert_allclose(O.mirror_descent_loss(*f32(lp, old, adv), kl, 0.5), -0.5 + 0.2 / 0.5, rtol=1e-5)


def test_losses_match_numpy_on_random_inputs():
    lp, old, adv = f32(LP, OLD, ADV)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(O.reinforce_loss(lp, adv), np_reinforce(LP, ADV), **tol)
    np.testing.assert_allclose(O.importance_ratio(lp, old), np.exp(LP - OLD), **tol)
    np.testing.assert_allclose(O.surrogate_loss(lp, old, adv), np_surrogate(LP, OLD, ADV), **tol)
    for eps in (0.05, 0.2, 10.0):
        np.testing.assert_allclose(O.clipped_surrogate_loss(lp, old, adv, eps), np_clipped(LP, OLD, ADV, eps), **tol)
    # A huge clip range is the plain surrogate.
    np.testing.assert_allclose(O.clipped_surrogate_loss(lp, old, adv, 1e6), np_surrogate(LP, OLD, ADV), **tol)
    np.testing.assert_allclose(O.kl_k1(lp, old), np_k1(LP, OLD), **tol)
    np.testing.assert_allclose(O.kl_k3(lp, old), np_k3(LP, OLD), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(O.grpo_k3(lp, old), np_grpo_k3(LP, OLD), rtol=1e-4, atol=1e-6)
    v, t, vold = f32(ADV, LP, OLD)
    np.testing.assert_allclose(O.value_loss(v, t), np_value_loss(ADV, LP), **tol)
    np.testing.assert_allclose(O.value_loss(v, t, vold, 0.2), np_value_loss(ADV, LP, OLD, 0.2), **tol)
    # Either optional argument missing gives the unclipped loss.
    np.testing.assert_allclose(O.value_loss(v, t, vold), np_value_loss(ADV, LP), **tol)
    np.testing.assert_allclose(O.value_loss(v, t, clip_eps=0.2), np_value_loss(ADV, LP), **tol)


# ----------------------------------------------------------------------------------------------
# Gradients.
# ----------------------------------------------------------------------------------------------


def test_clipped_surrogate_gradient_pattern():
    eps = 0.2
    ratios = np.array([0.5, 0.9, 1.0, 1.1, 1.5, 0.5, 0.9, 1.0, 1.1, 1.5])
    adv = np.array([1.0] * 5 + [-1.0] * 5)
    old = np.full_like(ratios, -1.0)
    lp = old + np.log(ratios)
    grad = np.asarray(jax.grad(O.clipped_surrogate_loss)(*f32(lp, old, adv), eps))
    clipped_side = ((adv > 0) & (ratios > 1 + eps)) | ((adv < 0) & (ratios < 1 - eps))
    assert clipped_side.sum() == 2
    np.testing.assert_array_equal(grad[clipped_side], 0.0)
    assert np.all(np.abs(grad[~clipped_side]) > 0)
    # Where it is not clipped, the gradient is that of -r A / n: -r A / n.
    np.testing.assert_allclose(grad[~clipped_side], (-ratios * adv / len(adv))[~clipped_side], rtol=1e-5)


def test_gradients_match_finite_differences():
    lp32, old32, adv32 = f32(LP, OLD, ADV)
    cases = {
        "reinforce": (lambda lp: O.reinforce_loss(lp, adv32), lambda lp: np_reinforce(lp, ADV)),
        "surrogate": (lambda lp: O.surrogate_loss(lp, old32, adv32), lambda lp: np_surrogate(lp, OLD, ADV)),
        # The ratios stay away from the kinks at 1 +- 0.2 (asserted below).
        "clipped": (lambda lp: O.clipped_surrogate_loss(lp, old32, adv32, 0.2),
                    lambda lp: np_clipped(lp, OLD, ADV, 0.2)),
        "k3_mean": (lambda lp: jnp.mean(O.kl_k3(lp, old32)), lambda lp: np.mean(np_k3(lp, OLD))),
        "grpo_k3_mean": (lambda lp: jnp.mean(O.grpo_k3(lp, old32)), lambda lp: np.mean(np_grpo_k3(lp, OLD))),
        "kl_penalty": (
            lambda lp: O.kl_penalty_loss(lp, old32, adv32, O.kl_k3(lp, old32), 2.0),
            lambda lp: np_surrogate(lp, OLD, ADV) + 2.0 * np.mean(np_k3(lp, OLD)),
        ),
        "mdpo": (
            lambda lp: O.mirror_descent_loss(lp, old32, adv32, O.grpo_k3(lp, old32), 0.3),
            lambda lp: np_surrogate(lp, OLD, ADV) + np.mean(np_grpo_k3(lp, OLD)) / 0.3,
        ),
    }
    ratios = np.exp(LP - OLD)
    assert np.all(np.abs(ratios - 0.8) > 1e-3) and np.all(np.abs(ratios - 1.2) > 1e-3)
    for name, (f_jax, f_np) in cases.items():
        g = np.asarray(jax.grad(f_jax)(lp32))
        np.testing.assert_allclose(g, np_fd_grad(f_np, LP), rtol=1e-3, atol=1e-6, err_msg=name)
    # Value losses w.r.t. values.
    v32, t32, vold32 = f32(ADV, LP, OLD)
    g = np.asarray(jax.grad(lambda v: O.value_loss(v, t32, vold32, 0.2))(v32))
    np.testing.assert_allclose(g, np_fd_grad(lambda v: np_value_loss(v, LP, OLD, 0.2), ADV),
                               rtol=1e-3, atol=1e-6)
    g = np.asarray(jax.grad(O.entropy_loss)(v32))
    np.testing.assert_allclose(g, np.full(v32.shape, -1.0 / v32.size), rtol=1e-6)


def test_advantages_and_targets_are_constants():
    lp, old, adv = f32(LP, OLD, ADV)
    kl = np.zeros_like(lp)
    losses = [
        lambda a: O.reinforce_loss(lp, a),
        lambda a: O.surrogate_loss(lp, old, a),
        lambda a: O.clipped_surrogate_loss(lp, old, a, 0.2),
        lambda a: O.kl_penalty_loss(lp, old, a, kl, 1.0),
        lambda a: O.mirror_descent_loss(lp, old, a, kl, 1.0),
        lambda a: O.value_loss(lp, a, old, 0.2),
        lambda a: O.value_loss(lp, a),
    ]
    for loss in losses:
        np.testing.assert_array_equal(jax.grad(loss)(adv), 0.0)


# ----------------------------------------------------------------------------------------------
# KL estimators.
# ----------------------------------------------------------------------------------------------

_LOGPS = st.floats(-20.0, 5.0, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, 7, elements=_LOGPS), hnp.arrays(np.float32, 7, elements=_LOGPS))
def test_k3_and_grpo_k3_nonnegative_and_zero_iff_equal(lp, old):
    old = np.where(np.arange(7) % 3 == 0, lp, old)  # some entries agree exactly
    k3 = np.asarray(O.kl_k3(lp, old))
    g3 = np.asarray(O.grpo_k3(lp, old))
    assert np.all(k3 >= 0) and np.all(g3 >= 0)
    equal = lp == old
    np.testing.assert_array_equal(k3[equal], 0.0)
    np.testing.assert_array_equal(g3[equal], 0.0)
    # Well separated log-probs give a strictly positive estimate.
    far = np.abs(lp.astype(np.float64) - old) > 1e-2
    assert np.all(k3[far] > 0) and np.all(g3[far] > 0)
    # Against the float64 formulas.
    np.testing.assert_allclose(k3, np_k3(lp.astype(np.float64), old), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g3, np_grpo_k3(lp.astype(np.float64), old), rtol=1e-4, atol=1e-6)


def _categorical_kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def test_kl_estimators_monte_carlo():
    """E_{a~p}[k1] = E_{a~p}[k3] = KL(p || q) with old = p, new = q; and
    E_{a~pi}[grpo_k3(pi, ref)] = KL(pi || ref)."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.25, 0.25, 0.3, 0.2])
    n = 200_000
    a = np.asarray(jax.random.categorical(jax.random.PRNGKey(0), jnp.log(jnp.asarray(p, jnp.float32)), shape=(n,)))
    old = np.log(p)[a].astype(np.float32)
    new = np.log(q)[a].astype(np.float32)
    kl = _categorical_kl(p, q)
    for name, est in (("k1", O.kl_k1(new, old)), ("k3", O.kl_k3(new, old))):
        est = np.asarray(est, np.float64)
        se = est.std() / np.sqrt(n)
        assert abs(est.mean() - kl) < 5 * se, (name, est.mean(), kl, se)
    # k3 has lower variance than k1 here (the point of the estimator).
    assert np.asarray(O.kl_k3(new, old)).std() < np.asarray(O.kl_k1(new, old)).std()
    # GRPO: samples from pi (= p), reference q -> KL(p || q).
    est = np.asarray(O.grpo_k3(old, new), np.float64)
    assert abs(est.mean() - kl) < 5 * est.std() / np.sqrt(n)


# ----------------------------------------------------------------------------------------------
# Adaptive KL coefficient.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kl,expected",
    [(0.5, 0.5), (0.999, 0.5), (1.0, 1.0), (1.5, 1.0), (2.25, 1.0), (2.26, 2.0), (10.0, 2.0), (0.0, 0.5)],
)
def test_adaptive_kl_beta_cases(kl, expected):
    # target 1.5: lower threshold 1.5 / 1.5 = 1, upper 1.5 * 1.5 = 2.25 (both exact in binary).
    np.testing.assert_allclose(O.adaptive_kl_beta(1.0, kl, 1.5), expected, rtol=1e-7)


def test_traced_hyperparameters_under_jit_and_vmap():
    lp, old, adv = f32(LP, OLD, ADV)
    eps = np.array([0.05, 0.1, 0.2, 0.3], np.float32)
    losses = jax.jit(jax.vmap(O.clipped_surrogate_loss, in_axes=(None, None, None, 0)))(lp, old, adv, eps)
    np.testing.assert_allclose(losses, [np_clipped(LP, OLD, ADV, e) for e in eps], rtol=1e-5)
    vlosses = jax.jit(jax.vmap(lambda e: O.value_loss(adv, lp, old, e)))(eps)
    np.testing.assert_allclose(vlosses, [np_value_loss(ADV, LP, OLD, e) for e in eps], rtol=1e-5)
    kl = np.abs(ADV).astype(np.float32)
    betas = np.array([0.0, 0.5, 2.0], np.float32)
    pen = jax.jit(jax.vmap(O.kl_penalty_loss, in_axes=(None, None, None, None, 0)))(lp, old, adv, kl, betas)
    np.testing.assert_allclose(pen, [np_surrogate(LP, OLD, ADV) + b * kl.mean() for b in betas], rtol=1e-5)
    steps = np.array([0.1, 1.0], np.float32)
    md = jax.jit(jax.vmap(O.mirror_descent_loss, in_axes=(None, None, None, None, 0)))(lp, old, adv, kl, steps)
    np.testing.assert_allclose(md, [np_surrogate(LP, OLD, ADV) + kl.mean() / s for s in steps], rtol=1e-5)
    # Adaptive beta with everything traced and batched.
    b = jax.jit(jax.vmap(O.adaptive_kl_beta))(
        jnp.array([1.0, 1.0, 4.0]), jnp.array([0.1, 1.2, 5.0]), jnp.array([1.5, 1.5, 1.5])
    )
    np.testing.assert_allclose(b, [0.5, 1.0, 8.0])
