"""Tests for purejaxpg.natural: Fisher-vector products, CG, natural steps, line search.

References are independent of the implementation: `jax.hessian` of the mean KL, exact sums over
actions, dense `numpy.linalg.solve`, closed forms.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from purejaxpg import natural
from purejaxpg.distributions import Categorical, DiagGaussian

OBS_DIM, HIDDEN, N_ACTIONS, ACT_DIM, BATCH = 4, 24, 3, 2, 32


# --------------------------------------------------------------------------------------------
# Small hand-written policies
# --------------------------------------------------------------------------------------------
def init_mlp(rng, out_dim, gaussian=False):
    """Parameters of a 2-layer tanh MLP (numpy init, so no device work at collection)."""

    def normal(shape, scale):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)

    params = {
        "w1": normal((OBS_DIM, HIDDEN), 1 / np.sqrt(OBS_DIM)),
        "b1": normal((HIDDEN,), 0.1),
        "w2": normal((HIDDEN, out_dim), 1 / np.sqrt(HIDDEN)),
        "b2": normal((out_dim,), 0.1),
    }
    if gaussian:
        params["log_std"] = normal((out_dim,), 0.3)
    return params


def mlp(params, obs):
    h = jnp.tanh(obs @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def categorical_policy(obs):
    return lambda params: Categorical(logits=mlp(params, obs))


def gaussian_policy(obs):
    def dist_fn(params):
        mean = mlp(params, obs)
        return DiagGaussian(mean=mean, log_std=jnp.broadcast_to(params["log_std"], mean.shape))

    return dist_fn


@functools.lru_cache(maxsize=None)
def setup(kind):
    """(params, dist_fn) for a tiny tanh MLP policy on a fixed batch of states (cached)."""
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.standard_normal((BATCH, OBS_DIM)), jnp.float32)
    if kind == "categorical":
        return init_mlp(rng, N_ACTIONS), categorical_policy(obs)
    return init_mlp(rng, ACT_DIM, gaussian=True), gaussian_policy(obs)


@functools.lru_cache(maxsize=None)
def kl_hessian(kind, hold_old_constant=True):
    """Dense Hessian of the mean KL(old || pi_theta) w.r.t. the flattened parameters.

    ``old`` is ``stop_gradient(pi_theta)`` (the correct form) or, with
    ``hold_old_constant=False``, ``pi_theta`` itself (the buggy form). Returns ``(H, unravel)``.
    """
    params, dist_fn = setup(kind)
    flat, unravel = ravel_pytree(params)

    def mean_kl(f):
        new = dist_fn(unravel(f))
        old = jax.lax.stop_gradient(new) if hold_old_constant else new
        return jnp.mean(old.kl(new))

    return np.asarray(jax.jit(jax.hessian(mean_kl))(flat), np.float64), unravel


def randn(seed, n):
    """Reference random float32 vector drawn with numpy."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n), jnp.float32)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def random_spd(rng, n, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.geomspace(1.0, cond, n)
    return (q * eig) @ q.T


# --------------------------------------------------------------------------------------------
# Fisher-vector products
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fvp_matches_hessian_of_mean_kl(kind, damping):
    params, dist_fn = setup(kind)
    hess, unravel = kl_hessian(kind)
    n = hess.shape[0]
    assert 100 <= n <= 400
    v_flat = randn(7, n)
    expected = hess @ np.asarray(v_flat) + damping * np.asarray(v_flat)

    fvp = jax.jit(natural.fisher_vector_product, static_argnums=0)
    got = ravel_pytree(fvp(dist_fn, params, unravel(v_flat), damping))[0]
    assert rel_err(got, expected) < 1e-4

    # The closure used by the algorithms gives the same products, including for a second vector.
    @jax.jit
    def two_products(params, v, w):
        matvec = natural.make_fisher_vector_product(dist_fn, params, damping)
        return matvec(v), matvec(w)

    w_flat = randn(8, n)
    got_v, got_w = two_products(params, unravel(v_flat), unravel(w_flat))
    got_v, got_w = ravel_pytree(got_v)[0], ravel_pytree(got_w)[0]
    assert rel_err(got_v, expected) < 1e-4
    assert rel_err(got_w, hess @ np.asarray(w_flat) + damping * np.asarray(w_flat)) < 1e-4


def test_fvp_damping_traced_under_vmap():
    params, dist_fn = setup("gaussian")
    hess, unravel = kl_hessian("gaussian")
    v_flat = randn(3, hess.shape[0])
    dampings = jnp.array([0.0, 1e-2, 1.0])

    @jax.jit
    @jax.vmap
    def sweep(damping):
        return natural.fisher_vector_product(dist_fn, params, unravel(v_flat), damping)

    out = sweep(dampings)
    for i, d in enumerate(np.asarray(dampings)):
        got = ravel_pytree(jax.tree_util.tree_map(lambda x: x[i], out))[0]
        assert rel_err(got, hess @ np.asarray(v_flat) + d * np.asarray(v_flat)) < 1e-4


def test_old_policy_must_be_held_constant():
    """The library FVP is the Fisher; the Hessian of KL(pi_theta || pi_theta) is identically 0."""
    params, dist_fn = setup("categorical")
    buggy_hess, unravel = kl_hessian("categorical", hold_old_constant=False)
    right_hess, _ = kl_hessian("categorical", hold_old_constant=True)
    v_flat = randn(1, buggy_hess.shape[0])

    fvp_fn = jax.jit(lambda p, v: natural.fisher_vector_product(dist_fn, p, v))
    fvp = fvp_fn(params, unravel(v_flat))
    fvp = ravel_pytree(fvp)[0]
    assert np.linalg.norm(fvp) > 1e-2 * np.linalg.norm(v_flat)
    assert rel_err(fvp, right_hess @ np.asarray(v_flat)) < 1e-4
    assert np.linalg.norm(right_hess) > 1e-2  # the correct Hessian is far from zero ...
    np.testing.assert_allclose(buggy_hess, 0.0, atol=1e-7)  # ... the buggy one vanishes
    assert np.linalg.norm(buggy_hess @ np.asarray(v_flat)) < 1e-6 * np.linalg.norm(fvp)


def test_fvp_equals_exact_score_outer_product_tabular():
    """F = E_{s, a~pi}[score score^T], summed exactly over actions, for a softmax table."""
    n_states, n_actions = 5, 4
    rng = np.random.default_rng(0)
    table = rng.standard_normal((n_states, n_actions)).astype(np.float32)
    v = rng.standard_normal((n_states, n_actions)).astype(np.float32)

    p = np.exp(table.astype(np.float64))
    p /= p.sum(-1, keepdims=True)
    dim = n_states * n_actions
    fisher = np.zeros((dim, dim))
    for s in range(n_states):
        for a in range(n_actions):
            score = np.zeros((n_states, n_actions))  # d log pi(a|s) / d table
            score[s] = -p[s]
            score[s, a] += 1.0
            g = score.ravel()
            fisher += p[s, a] * np.outer(g, g) / n_states
    expected = (fisher @ v.ravel().astype(np.float64)).reshape(n_states, n_actions)

    got = natural.fisher_vector_product(lambda t: Categorical(logits=t), jnp.asarray(table), v)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-6)


def test_matvec_closure_does_not_recompute_forward_pass():
    """Inside CG the only tanh is the single forward pass done by the linearisation."""
    params, dist_fn = setup("categorical")
    grad = jax.tree_util.tree_map(jnp.ones_like, params)

    def step(params, grad):
        matvec = natural.make_fisher_vector_product(dist_fn, params, 0.1)
        return natural.natural_step(grad, matvec, 0.01, 10)

    jaxpr = str(jax.make_jaxpr(step)(params, grad))
    assert jaxpr.count("tanh") == 1


# --------------------------------------------------------------------------------------------
# Conjugate gradient
# --------------------------------------------------------------------------------------------
def test_cg_matches_dense_solve_flat():
    rng = np.random.default_rng(0)
    n = 20
    a = random_spd(rng, n)
    b = rng.standard_normal(n)
    a32 = jnp.asarray(a, jnp.float32)
    x, res = jax.jit(lambda b: natural.conjugate_gradient(lambda v: a32 @ v, b, n))(
        jnp.asarray(b, jnp.float32)
    )
    expected = np.linalg.solve(a, b)
    assert rel_err(x, expected) < 1e-4
    assert np.isfinite(res) and res < 1e-4 * np.linalg.norm(b)


def test_cg_matches_dense_solve_nested_pytree():
    rng = np.random.default_rng(1)
    tree = {
        "a": np.zeros((2, 3), np.float32),
        "b": {"c": np.zeros((5,), np.float32), "d": np.zeros((3, 3), np.float32)},
    }
    _, unravel = ravel_pytree(tree)
    n = 20
    a = random_spd(rng, n)
    a32 = jnp.asarray(a, jnp.float32)
    b_flat = rng.standard_normal(n)

    def matvec(v):
        return unravel(a32 @ ravel_pytree(v)[0])

    x, res = natural.conjugate_gradient(matvec, unravel(jnp.asarray(b_flat, jnp.float32)), n)
    assert jax.tree_util.tree_structure(x) == jax.tree_util.tree_structure(tree)
    assert rel_err(ravel_pytree(x)[0], np.linalg.solve(a, b_flat)) < 1e-4
    assert res < 1e-4 * np.linalg.norm(b_flat)


def test_cg_reports_true_residual_when_unconverged():
    rng = np.random.default_rng(2)
    n = 20
    a = random_spd(rng, n, cond=100.0)
    b = rng.standard_normal(n)
    a32 = jnp.asarray(a, jnp.float32)
    x, res = natural.conjugate_gradient(lambda v: a32 @ v, jnp.asarray(b, jnp.float32), 3)
    x64 = np.asarray(x, np.float64)
    true_res = np.linalg.norm(b - a @ x64)
    assert true_res > 1e-2  # really unconverged, so the comparison below is meaningful
    np.testing.assert_allclose(float(res), true_res, rtol=1e-4)
    # and fewer iterations than n do not solve the system
    assert rel_err(x64, np.linalg.solve(a, b)) > 1e-3


def test_cg_masking_after_convergence_and_tolerance():
    b = jnp.array([1.0, -2.0, 3.0])
    # Identity converges in one iteration; the remaining 9 must be masked, not 0/0 = NaN.
    x, res = natural.conjugate_gradient(lambda v: v, b, 10)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(b))
    assert float(res) == 0.0
    # A tolerance above ||b||^2 means no update at all: x = 0 and residual = ||b||.
    x, res = natural.conjugate_gradient(lambda v: 2.0 * v, b, 10, tol=100.0)
    np.testing.assert_array_equal(np.asarray(x), 0.0)
    np.testing.assert_allclose(float(res), np.linalg.norm(np.asarray(b)), rtol=1e-6)
    # Zero right-hand side: x = 0, no NaN.
    x, res = natural.conjugate_gradient(lambda v: 2.0 * v, jnp.zeros(3), 10)
    np.testing.assert_array_equal(np.asarray(x), 0.0)
    assert float(res) == 0.0


def test_cg_jit_and_vmap_over_right_hand_sides():
    rng = np.random.default_rng(3)
    n, k = 20, 6
    a = random_spd(rng, n)
    bs = rng.standard_normal((k, n))
    a32 = jnp.asarray(a, jnp.float32)
    solve = jax.jit(jax.vmap(lambda b: natural.conjugate_gradient(lambda v: a32 @ v, b, n)))
    xs, res = solve(jnp.asarray(bs, jnp.float32))
    assert xs.shape == (k, n) and res.shape == (k,)
    expected = np.linalg.solve(a, bs.T).T
    for i in range(k):
        assert rel_err(xs[i], expected[i]) < 1e-4
        np.testing.assert_allclose(
            float(res[i]), np.linalg.norm(bs[i] - a @ np.asarray(xs[i], np.float64)), atol=1e-4
        )


def test_cg_vs_jax_scipy_cg():
    """Accuracy and (informational) speed against jax.scipy.sparse.linalg.cg."""
    rng = np.random.default_rng(4)
    n = 20
    a = random_spd(rng, n)
    b = rng.standard_normal(n)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    ours = jax.jit(lambda b: natural.conjugate_gradient(lambda v: a32 @ v, b, n)[0])
    theirs = jax.jit(
        lambda b: jax.scipy.sparse.linalg.cg(lambda v: a32 @ v, b, tol=1e-7, maxiter=n)[0]
    )
    expected = np.linalg.solve(a, b)
    err_ours, err_theirs = rel_err(ours(b32), expected), rel_err(theirs(b32), expected)
    assert err_ours < 1e-4 and err_theirs < 1e-4
    assert err_ours < 10 * err_theirs + 1e-6

    def bench(f, reps=200):
        f(b32).block_until_ready()
        t0 = time.perf_counter()
        for _ in range(reps):
            out = f(b32)
        out.block_until_ready()
        return (time.perf_counter() - t0) / reps

    t_ours, t_theirs = bench(ours), bench(theirs)
    print(f"CG n={n}: ours {t_ours * 1e6:.1f} us (err {err_ours:.2e}), "
          f"jax.scipy {t_theirs * 1e6:.1f} us (err {err_theirs:.2e})")


# --------------------------------------------------------------------------------------------
# Natural step
# --------------------------------------------------------------------------------------------
def test_natural_step_zero_gradient_gives_zero_step():
    params, dist_fn = setup("categorical")
    matvec = natural.make_fisher_vector_product(dist_fn, params, 0.1)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    step, info = jax.jit(lambda g: natural.natural_step(g, matvec, 0.01, 10))(zero)
    for leaf in jax.tree_util.tree_leaves(step):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    for value in info.values():
        assert np.isfinite(value)
    assert float(info["step_norm"]) == 0.0


def test_natural_step_non_positive_curvature_and_nan_give_zero_step():
    g = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(-0.5)}
    step, info = natural.natural_step(g, lambda v: jax.tree_util.tree_map(jnp.negative, v), 0.01, 5)
    assert float(info["xFx"]) < 0
    for leaf in jax.tree_util.tree_leaves(step):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    assert float(info["step_norm"]) == 0.0
    # Zero operator: x^T F x = 0.
    step, _ = natural.natural_step(g, lambda v: jax.tree_util.tree_map(jnp.zeros_like, v), 0.01, 5)
    for leaf in jax.tree_util.tree_leaves(step):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)
    # NaN gradient: zero step, no NaN in the step.
    g_nan = {"w": jnp.array([jnp.nan, 2.0]), "b": jnp.array(-0.5)}
    step, _ = natural.natural_step(g_nan, lambda v: v, 0.01, 5)
    for leaf in jax.tree_util.tree_leaves(step):
        np.testing.assert_array_equal(np.asarray(leaf), 0.0)


def test_natural_step_hits_the_kl_boundary():
    rng = np.random.default_rng(5)
    n = 12
    a = random_spd(rng, n)
    g = rng.standard_normal(n)
    a32 = jnp.asarray(a, jnp.float32)
    deltas = jnp.array([1e-3, 1e-2, 0.05])
    steps, info = jax.jit(
        jax.vmap(lambda d: natural.natural_step(jnp.asarray(g, jnp.float32), a32.__matmul__, d, n))
    )(deltas)
    direction = np.linalg.solve(a, g)
    for i, delta in enumerate(np.asarray(deltas, np.float64)):
        s = np.asarray(steps[i], np.float64)
        np.testing.assert_allclose(0.5 * s @ a @ s, delta, rtol=1e-4)
        expected = np.sqrt(2 * delta / (direction @ a @ direction)) * direction
        assert rel_err(s, expected) < 1e-4
        np.testing.assert_allclose(float(info["step_norm"][i]), np.linalg.norm(expected), rtol=1e-4)
        np.testing.assert_allclose(float(info["xFx"][i]), direction @ a @ direction, rtol=1e-4)


def test_natural_step_with_policy_fisher_is_on_kl_boundary():
    """0.5 s^T F s = delta with the dense Hessian of the mean KL as F (damped as in the matvec)."""
    params, dist_fn = setup("gaussian")
    hess, unravel = kl_hessian("gaussian")
    g_flat = randn(11, hess.shape[0])
    damping, delta = 0.1, 0.01
    matvec = natural.make_fisher_vector_product(dist_fn, params, damping)
    step, _ = jax.jit(lambda g: natural.natural_step(g, matvec, delta, 10))(unravel(g_flat))
    s = np.asarray(ravel_pytree(step)[0], np.float64)
    f = np.asarray(hess, np.float64) + damping * np.eye(hess.shape[0])
    np.testing.assert_allclose(0.5 * s @ f @ s, delta, rtol=1e-3)
    assert s @ np.asarray(g_flat) > 0  # an ascent direction


# --------------------------------------------------------------------------------------------
# Backtracking line search
# --------------------------------------------------------------------------------------------
def _line_search_problem():
    params = {"w": jnp.array([0.3, -1.2, 2.0]), "b": jnp.array(0.7)}
    direction = {"w": jnp.array([0.6, 0.0, -0.8]), "b": jnp.array(0.0)}  # unit norm

    calls = []

    def evaluate(candidate):
        calls.append(1)
        # t = ||candidate - params||, the fraction of the full (unit) step taken.
        diff = jax.tree_util.tree_map(jnp.subtract, candidate, params)
        t = jnp.sqrt(sum(jnp.sum(d**2) for d in jax.tree_util.tree_leaves(diff)))
        improvement = (t - 0.1) * (0.4 - t)  # > 0 only for 0.1 < t < 0.4
        kl = t**2
        return improvement, kl

    return params, direction, evaluate, calls


def test_line_search_accepts_first_qualifying_candidate():
    params, step, evaluate, calls = _line_search_problem()
    # coef 0.5: t = 1, .5, .25, .125, .0625. kl <= 0.3 needs t <= 0.548 (k >= 1); improvement > 0
    # needs 0.1 < t < 0.4 (k = 2, 3). The first qualifying candidate is k = 2.
    search = jax.jit(natural.backtracking_line_search, static_argnums=(0, 5))
    new_params, info = search(evaluate, params, step, 0.3, 0.5, 5)
    assert len(calls) == 1  # one traced call: candidates are vmapped, not looped in Python
    assert int(info["accepted_index"]) == 2 and info["accepted_index"].dtype == jnp.int32
    assert not bool(info["failed"])
    np.testing.assert_allclose(float(info["kl"]), 0.25**2, rtol=1e-5)
    np.testing.assert_allclose(float(info["improvement"]), (0.25 - 0.1) * (0.4 - 0.25), rtol=1e-4)
    for p, s, n in zip(*(jax.tree_util.tree_leaves(t) for t in (params, step, new_params))):
        np.testing.assert_allclose(np.asarray(n), np.asarray(p) + 0.25 * np.asarray(s), rtol=1e-6)

    # Tighter KL bound: t = 0.25 has kl 0.0625 > 0.05, so k = 3 (t = 0.125) is the first.
    _, info = search(evaluate, params, step, 0.05, 0.5, 5)  # traced max_kl: no retrace
    assert int(info["accepted_index"]) == 3 and len(calls) == 1


def test_line_search_traced_hyperparameters_under_jit_vmap():
    params, step, evaluate, _ = _line_search_problem()

    @jax.jit
    @jax.vmap
    def sweep(max_kl, coef):
        return natural.backtracking_line_search(evaluate, params, step, max_kl, coef, 6)

    # coef 0.5 -> t = 1,.5,.25: k = 2; coef 0.3 -> t = 1,.3: k = 1; max_kl 1e-4 -> none (t >= .1
    # needed for improvement, kl = t^2 >= 1e-2).
    new_params, info = sweep(jnp.array([0.3, 0.3, 1e-4]), jnp.array([0.5, 0.3, 0.5]))
    np.testing.assert_array_equal(np.asarray(info["accepted_index"]), [2, 1, -1])
    np.testing.assert_array_equal(np.asarray(info["failed"]), [False, False, True])
    np.testing.assert_array_equal(np.asarray(new_params["w"][2]), np.asarray(params["w"]))
    np.testing.assert_allclose(
        np.asarray(new_params["w"][1]), np.asarray(params["w"] + 0.3 * step["w"]), rtol=1e-6
    )


def test_line_search_none_qualifies_returns_params_bit_identical():
    rng = np.random.default_rng(6)
    params = {
        "w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),
        "h": jnp.asarray(rng.standard_normal(5), jnp.bfloat16),
        "s": jnp.asarray(np.pi, jnp.float32),
    }
    step = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1e-3), params)

    def evaluate(candidate):  # improvement always negative: nothing qualifies
        return -1.0 - jnp.sum(candidate["w"] ** 2), jnp.asarray(0.0)

    for ls in (natural.backtracking_line_search, jax.jit(natural.backtracking_line_search,
                                                          static_argnums=(0, 5))):
        new_params, info = ls(evaluate, params, step, 0.01, 0.8, 10)
        assert int(info["accepted_index"]) == -1
        assert bool(info["failed"])
        assert float(info["improvement"]) == 0.0 and float(info["kl"]) == 0.0
        for key in params:
            assert new_params[key].dtype == params[key].dtype
            assert new_params[key].shape == params[key].shape
            np.testing.assert_array_equal(np.asarray(new_params[key]), np.asarray(params[key]))


# --------------------------------------------------------------------------------------------
# Lecture notes Example 4.6.1: Bernoulli policy, J = 100 pi(1) + 1 pi(0)
# --------------------------------------------------------------------------------------------
def bernoulli_dist(theta):
    return Categorical(logits=jnp.stack([jnp.zeros_like(theta), theta]))


def bernoulli_return(theta):
    p = bernoulli_dist(theta).probs
    return 100.0 * p[1] + 1.0 * p[0]


def bernoulli_quantities(theta, cg_iters=3):
    """(dJ/dtheta, F(theta) * 1, F^{-1} dJ/dtheta by the library, CG residual) at one theta."""
    grad = jax.grad(bernoulli_return)(theta)
    matvec = natural.make_fisher_vector_product(bernoulli_dist, theta)
    direction, info = natural.natural_gradient_direction(grad, matvec, cg_iters)
    return grad, matvec(jnp.ones_like(theta)), direction, info["cg_residual"]


def test_bernoulli_natural_gradient_raises_theta_by_99_eta():
    eta = 0.01
    thetas = jnp.array([-5.0, -3.0, -1.0, 0.0, 0.7, 2.5, 5.0], jnp.float32)
    grad, fisher, direction, residual = jax.jit(jax.vmap(bernoulli_quantities))(thetas)
    sig = 1.0 / (1.0 + np.exp(-np.asarray(thetas, np.float64)))
    # Independent closed forms: dJ/dtheta = 99 s(1-s), Fisher = s(1-s).
    np.testing.assert_allclose(np.asarray(grad), 99.0 * sig * (1 - sig), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(fisher), sig * (1 - sig), rtol=1e-4)
    assert np.all(np.asarray(residual) <= 1e-4 * np.abs(np.asarray(grad)))

    natural_update = (thetas + eta * direction) - thetas
    np.testing.assert_allclose(np.asarray(natural_update), 99.0 * eta, rtol=1e-4)
    vanilla_update = eta * np.asarray(grad)
    np.testing.assert_allclose(vanilla_update, 99.0 * eta * sig * (1 - sig), rtol=1e-4)
    assert np.all(vanilla_update <= 0.25 * 99.0 * eta * (1 + 1e-6))
    assert np.all(vanilla_update[[0, -1]] < 0.01 * 99.0 * eta)  # |theta| = 5: under 1%


def test_bernoulli_vanilla_step_shrinks_with_abs_theta():
    thetas = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], jnp.float32)
    quantities = jax.jit(jax.vmap(bernoulli_quantities))
    for sign in (1.0, -1.0):
        grad, _, direction, _ = quantities(sign * thetas)
        assert np.all(np.diff(np.asarray(grad)) < 0)  # vanilla: monotonically vanishing
        np.testing.assert_allclose(np.asarray(direction), 99.0, rtol=1e-4)  # natural: constant
