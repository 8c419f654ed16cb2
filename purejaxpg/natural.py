"""Natural-gradient machinery: Fisher-vector products, conjugate gradient, trust-region steps.

Used by NPG, TRPO and natural actor-critic. Everything is a pure function on pytrees and works
under `jax.jit` and `jax.vmap`; the trust-region size ``max_kl`` (delta), the ``damping`` and the
line-search ``backtrack_coef`` may be traced scalars (vmapped hyperparameter sweeps), so they are
never used in Python control flow. Iteration counts (``cg_iters``, ``num_candidates``) are static
Python ints.

Formulas
--------
* Fisher-vector product (Gauss-Newton form). With ``phi(theta)`` the distribution parameters of a
  batch of ``N`` states (logits, or mean and log std), ``J = d phi / d theta`` and ``M_i`` the
  per-sample Fisher of the distribution in its own parameters
  (`purejaxpg.distributions.Categorical.fisher_matvec`, ``DiagGaussian.fisher_matvec``)::

      F v = (1/N) sum_i J_i^T M_i J_i v  (+ damping * v),

  which equals the Hessian at ``theta`` of the mean KL(stop_gradient(pi_theta) || pi_theta)
  (Schulman et al. 2015, TRPO, appendix C; Martens 2014, "New insights and perspectives on the
  natural gradient method"). The old policy must be held constant: the Hessian of
  KL(pi_theta || pi_theta) is identically zero. We compute ``J v`` with one forward-mode pass
  (`jax.linearize`, which evaluates the primal once) and ``J^T u`` by transposing that same
  linear map (`jax.linear_transpose`, reverse mode), never forming a matrix.
  `make_fisher_vector_product` builds the linearisation once and returns a closure, so the
  ``cg_iters`` products of conjugate gradient do not recompute the forward pass.
* Conjugate gradient (Hestenes & Stiefel 1952) for ``F x = g`` from ``x = 0`` with a fixed number
  of iterations; iterations after ``||r||^2 < tol`` are masked out (``jnp.where``) so shapes and
  trip counts stay static.
* Natural step under a KL trust region (TRPO eq. 14 / NPG): ``x ~= F^{-1} g``, and
  ``step = sqrt(2 delta / x^T F x) x`` so that the quadratic KL model
  ``0.5 step^T F step = delta``.
* Backtracking line search (TRPO section 6): candidates ``theta + c^k step``, ``k = 0..K-1``,
  all evaluated at once under `jax.vmap`; accept the first with ``mean KL <= delta`` and positive
  surrogate improvement, otherwise keep ``theta`` bit-for-bit.

Why our own CG rather than `jax.scipy.sparse.linalg.cg`
-------------------------------------------------------
``tests/test_natural.py::test_cg_vs_jax_scipy_cg`` compares the two on a random SPD system. They
agree to float32 precision (both are textbook CG on pytrees) and run at the same speed once
jitted (tens of microseconds for n = 20 on CPU; neither is consistently faster). We keep
our own because (1) ``cg_iters`` is a fixed iteration count as in TRPO; `jax.scipy`'s
``maxiter`` with a `lax.while_loop` stops early on a *relative* tolerance, and a while loop
under `jax.vmap` runs every lane until the slowest one stops anyway; (2) we report the final
residual norm ``||b - A x||`` (`jax.scipy`'s ``info`` is always ``None``), which is a useful
diagnostic for damping sweeps; (3) a ``fori_loop`` with a static trip count is reverse-mode
differentiable directly; (4) the tolerance is an absolute bound on ``||r||^2``, the convention of
the TRPO reference implementation; and (5) the explicit guards keep an indefinite or zero
operator from producing NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from optax import tree_utils as otu

PyTree = Any
MatVec = Callable[[PyTree], PyTree]

__all__ = [
    "backtracking_line_search",
    "conjugate_gradient",
    "fisher_vector_product",
    "make_fisher_vector_product",
    "natural_gradient_direction",
    "natural_step",
]


def _batch_size(dist: PyTree) -> int:
    """Number of samples of a distribution pytree: the size of its first leaf's batch shape."""
    leaf = jax.tree_util.tree_leaves(dist)[0]
    return math.prod(leaf.shape[:-1])


def make_fisher_vector_product(
    dist_fn: Callable[[PyTree], Any], params: PyTree, damping: jax.typing.ArrayLike = 0.0
) -> MatVec:
    """Damped Fisher-vector product closure ``v -> F v + damping v`` at ``params``, linearised once.

    ``F v = (1/N) sum_i J_i^T M_i J_i v`` (Gauss-Newton form of the Fisher information), where
    ``J`` is the Jacobian of the distribution parameters returned by ``dist_fn`` with respect to
    ``params`` and ``M_i`` the per-sample Fisher of the distribution in its own parameters
    (``dist.fisher_matvec``). This equals the Hessian at ``params`` of the mean
    KL(stop_gradient(pi_theta) || pi_theta) (TRPO, Schulman et al. 2015, appendix C).

    The forward pass is linearised once here (`jax.linearize`, one primal evaluation) and the
    linear map is transposed once (`jax.linear_transpose`); each call of the returned closure is
    one JVP and one VJP of that stored linearisation, with no forward recomputation. Use it as the
    ``matvec`` of `conjugate_gradient` / `natural_step`.

    Args:
      dist_fn: ``params -> distribution`` (a `Categorical` with logits ``[..., A]`` or a
        `DiagGaussian` with mean/log_std ``[..., D]``) for a fixed batch of ``N`` states, ``N``
        the number of elements of the batch shape ``[...]``.
      params: pytree of float arrays, the point ``theta`` at which the Fisher is taken.
      damping: scalar ``>= 0`` (may be traced), Tikhonov damping added as ``damping * v``.

    Returns:
      ``matvec(v) -> F v + damping v`` mapping a pytree shaped like ``params`` to one shaped like
      ``params``.
    """
    dist, jvp_fn = jax.linearize(dist_fn, params)
    transpose_fn = jax.linear_transpose(jvp_fn, params)
    inv_n = 1.0 / _batch_size(dist)

    def matvec(v: PyTree) -> PyTree:
        jv = jvp_fn(v)  # J v, a tangent in the distribution's parameter space
        mjv = jax.tree_util.tree_map(lambda t: t * inv_n, dist.fisher_matvec(jv))
        (jtmjv,) = transpose_fn(mjv)  # J^T M J v / N
        return otu.tree_add_scale(jtmjv, damping, v)

    return matvec


def fisher_vector_product(
    dist_fn: Callable[[PyTree], Any],
    params: PyTree,
    v: PyTree,
    damping: jax.typing.ArrayLike = 0.0,
) -> PyTree:
    """Damped Fisher-vector product ``(1/N) sum_i J_i^T M_i J_i v + damping v`` at ``params``.

    Equals ``(nabla^2_theta mean_i KL(stop_gradient(pi_theta)(s_i) || pi_theta(s_i))) v +
    damping v`` (Gauss-Newton form, TRPO appendix C), computed with one JVP and one VJP and no
    matrix. One-shot convenience wrapper of `make_fisher_vector_product`; prefer that inside CG.

    Args:
      dist_fn: ``params -> distribution`` for a fixed batch of ``N`` states (see
        `make_fisher_vector_product`).
      params: pytree of float arrays, the point at which the Fisher is taken.
      v: pytree shaped like ``params``, the vector to multiply.
      damping: scalar ``>= 0`` (may be traced).

    Returns:
      pytree shaped like ``params``: ``F v + damping v``.
    """
    return make_fisher_vector_product(dist_fn, params, damping)(v)


def _cg_solve(
    matvec: MatVec, b: PyTree, iters: int, tol: jax.typing.ArrayLike
) -> tuple[PyTree, PyTree]:
    """CG from ``x = 0``; returns ``(x, A x)``, ``A x`` from one extra matvec.

    The iteration runs on one flat vector (``ravel_pytree``): the vector updates and the masks
    are then one kernel each rather than one per parameter leaf, which is most of CG's cost for
    small policies. ``matvec`` is still called on the caller's pytree layout.
    """
    flat_b, unravel = ravel_pytree(b)

    def flat_matvec(v):
        return ravel_pytree(matvec(unravel(v)))[0].astype(flat_b.dtype)

    def body(_, state):
        x, r, p, rs = state
        ap = flat_matvec(p)
        pap = jnp.vdot(p, ap)
        # Update only while the residual is still above tolerance and the curvature along p is
        # usable; otherwise carry the state unchanged (a masked no-op keeps the trip count static).
        active = (rs >= tol) & (rs > 0) & jnp.isfinite(rs) & (pap != 0) & jnp.isfinite(pap)
        alpha = rs / jnp.where(active, pap, 1.0)
        x_new = x + alpha * p
        r_new = r - alpha * ap
        rs_new = jnp.vdot(r_new, r_new)
        beta = rs_new / jnp.where(active, rs, 1.0)
        p_new = r_new + beta * p
        return (
            jnp.where(active, x_new, x),
            jnp.where(active, r_new, r),
            jnp.where(active, p_new, p),
            jnp.where(active, rs_new, rs),
        )

    state = (jnp.zeros_like(flat_b), flat_b, flat_b, jnp.vdot(flat_b, flat_b))
    x, _, _, _ = jax.lax.fori_loop(0, iters, body, state)
    x = unravel(x)
    return x, matvec(x)


def conjugate_gradient(
    matvec: MatVec, b: PyTree, iters: int, tol: jax.typing.ArrayLike = 1e-10
) -> tuple[PyTree, jax.Array]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` by conjugate gradient on pytrees.

    Hestenes-Stiefel CG from ``x_0 = 0``: ``alpha = r.r / p.Ap``, ``x += alpha p``,
    ``r -= alpha Ap``, ``p = r + (r'.r' / r.r) p``. Runs exactly ``iters`` iterations
    (`lax.fori_loop`); once ``||r||^2 < tol`` (or the curvature ``p.Ap`` is zero or non-finite)
    later iterations are masked out, so the result is stable and NaN-free when ``iters`` exceeds
    what convergence needs. Costs ``iters + 1`` matvecs (the last one gives the true residual).

    Args:
      matvec: ``v -> A v`` on pytrees shaped like ``b`` (e.g. `make_fisher_vector_product`).
      b: pytree right-hand side.
      iters: static Python int, number of CG iterations.
      tol: scalar, stop updating once the squared residual norm ``||r||^2 < tol``.

    Returns:
      ``(x, residual_norm)``: ``x`` shaped like ``b``, and the scalar ``||b - A x||`` evaluated
      with one final matvec (not the recursively updated residual).
    """
    x, ax = _cg_solve(matvec, b, iters, tol)
    return x, otu.tree_norm(otu.tree_sub(b, ax))


def natural_gradient_direction(
    grad: PyTree, matvec: MatVec, cg_iters: int, *, cg_tol: jax.typing.ArrayLike = 1e-10
) -> tuple[PyTree, dict[str, jax.Array]]:
    """Natural-gradient direction ``x ~= F^{-1} g`` by conjugate gradient, with ``x^T F x``.

    The NPG / natural actor-critic direction (Kakade 2001): the fixed-step natural update is
    ``theta + eta x``. ``x^T F x`` uses the same (damped) ``matvec`` as the solve and costs no
    extra product (it reuses CG's final residual matvec).

    Args:
      grad: pytree ``g`` shaped like the parameters, the (surrogate) policy gradient.
      matvec: ``v -> F v`` (already including damping), e.g. `make_fisher_vector_product`.
      cg_iters: static Python int, number of CG iterations.
      cg_tol: CG stops updating once ``||g - F x||^2 < cg_tol`` (absolute). A gradient with
        ``||g||^2 < cg_tol`` therefore gives ``x = 0``; lower it for tiny-gradient problems.

    Returns:
      ``(x, info)``: ``x`` shaped like ``grad``; ``info`` with scalars ``xFx`` (``x^T F x``) and
      ``cg_residual`` (``||g - F x||``).
    """
    x, fx = _cg_solve(matvec, grad, cg_iters, cg_tol)
    info = {
        "xFx": otu.tree_vdot(x, fx),
        "cg_residual": otu.tree_norm(otu.tree_sub(grad, fx)),
    }
    return x, info


def natural_step(
    grad: PyTree,
    matvec: MatVec,
    max_kl: jax.typing.ArrayLike,
    cg_iters: int,
    *,
    cg_tol: jax.typing.ArrayLike = 1e-10,
) -> tuple[PyTree, dict[str, jax.Array]]:
    """Largest natural-gradient step whose quadratic KL model equals ``max_kl`` (TRPO / NPG).

    ``x ~= F^{-1} g`` by CG, then ``step = sqrt(2 delta / x^T F x) x``, so that
    ``0.5 step^T F step = delta`` (Schulman et al. 2015, TRPO appendix C). If ``x^T F x`` is not
    a positive finite number (zero gradient, indefinite or broken ``matvec``, NaN inputs) the step
    is exactly zero; neither branch of the selection produces NaN.

    Args:
      grad: pytree ``g`` shaped like the parameters, the surrogate gradient to ascend.
      matvec: ``v -> F v`` (already including damping), e.g. `make_fisher_vector_product`.
      max_kl: scalar ``delta > 0`` (may be traced), the KL trust-region radius.
      cg_iters: static Python int, number of CG iterations.
      cg_tol: absolute tolerance on ``||g - F x||^2`` (see `natural_gradient_direction`).

    Returns:
      ``(step, info)``: ``step`` shaped like ``grad``; ``info`` with scalars ``xFx``
      (``x^T F x``), ``cg_residual`` (``||g - F x||``) and ``step_norm`` (``||step||``).
    """
    x, info = natural_gradient_direction(grad, matvec, cg_iters, cg_tol=cg_tol)
    xfx = info["xFx"]
    ok = jnp.isfinite(xfx) & (xfx > 0)
    scale = jnp.sqrt(jnp.maximum(2.0 * max_kl, 0.0) / jnp.where(ok, xfx, 1.0))
    step = jax.tree_util.tree_map(
        lambda leaf: jnp.where(ok, scale * leaf, jnp.zeros_like(leaf)).astype(leaf.dtype), x
    )
    return step, {**info, "step_norm": otu.tree_norm(step)}


def backtracking_line_search(
    evaluate: Callable[[PyTree], tuple[jax.Array, jax.Array]],
    params: PyTree,
    step: PyTree,
    max_kl: jax.typing.ArrayLike,
    backtrack_coef: jax.typing.ArrayLike,
    num_candidates: int,
) -> tuple[PyTree, dict[str, jax.Array]]:
    """Backtracking line search of a trust-region step (TRPO, Schulman et al. 2015, section 6).

    Candidates ``theta_k = params + backtrack_coef**k * step`` for ``k = 0..K-1`` are all
    evaluated in one `jax.vmap`-ed call of ``evaluate`` (no Python loop, no host round trip). The
    first ``k`` with ``mean_kl_k <= max_kl`` and ``improvement_k > 0`` (both finite) is accepted;
    if none qualifies ``params`` is returned unchanged, selected leaf-wise with `jnp.where` so it
    is bit-identical (values and dtypes).

    Args:
      evaluate: ``candidate_params -> (surrogate_improvement, mean_kl)``, two scalars;
        ``candidate_params`` is shaped like ``params``. It is vmapped over candidates.
      params: pytree, current parameters ``theta``.
      step: pytree shaped like ``params``, the full proposed step (e.g. from `natural_step`).
      max_kl: scalar ``delta`` (may be traced), the KL constraint.
      backtrack_coef: scalar in ``(0, 1)`` (may be traced), step shrink factor per candidate.
      num_candidates: static Python int ``K >= 1``.

    Returns:
      ``(new_params, info)``: ``new_params`` shaped like ``params``; ``info`` with
      ``accepted_index`` (int32 ``k``, ``-1`` when none), ``kl`` and ``improvement`` (float
      scalars of the accepted candidate, ``0`` when none) and ``failed`` (bool, ``True`` when
      no candidate qualified).
    """
    coefs = jnp.asarray(backtrack_coef) ** jnp.arange(num_candidates)

    def candidate(c):
        return jax.tree_util.tree_map(lambda p, s: (p + c * s).astype(p.dtype), params, step)

    candidates = jax.vmap(candidate)(coefs)  # leaves [K, ...]
    improvement, kl = jax.vmap(evaluate)(candidates)  # [K], [K]
    ok = (kl <= max_kl) & (improvement > 0) & jnp.isfinite(kl) & jnp.isfinite(improvement)
    found = jnp.any(ok)
    idx = jnp.argmax(ok)  # first True (0 when none; masked below)
    new_params = jax.tree_util.tree_map(
        lambda cand, p: jnp.where(found, cand[idx], p), candidates, params
    )
    zero = jnp.zeros((), jnp.result_type(kl, improvement))
    info = {
        "accepted_index": jnp.where(found, idx, -1).astype(jnp.int32),
        "kl": jnp.where(found, kl[idx], zero).astype(kl.dtype),
        "improvement": jnp.where(found, improvement[idx], zero).astype(improvement.dtype),
        "failed": jnp.logical_not(found),
    }
    return new_params, info
