"""Stein variational gradient descent and the soft value, the two formulas of soft Q-learning's sampler and target.

Pure functions of arrays, knowing no network, no buffer and no loop:

* :func:`rbf_kernel` and :func:`median_bandwidth`: the RBF kernel k(x, y) = exp(-||x - y||^2 / h)
  with the median heuristic h = med^2 / log(K + 1) of Liu & Wang (2016, sec. 5);
* :func:`svgd_direction`: the SVGD update direction of K particles towards a density p given
  its score grad log p at the particles (Liu & Wang 2016, eq. 8);
* :func:`soft_value`: soft Q-learning's importance-sampled soft value
  V(s) = alpha log E_{a ~ q}[exp(Q(s, a) / alpha) / q(a)] (Haarnoja et al. 2017, eq. 10),
  and :func:`uniform_log_density`, the log density of the paper's uniform proposal on [-1, 1]^D.

Soft Q-learning (`purejaxpg.algorithms.sql`) moves the particles a_i = f_phi(s, xi_i) of its
sampling network along ``svgd_direction`` with score grad_a Q(s, a) / alpha: the amortised SVGD of
Wang & Liu (2016) and Haarnoja et al. (2017, eq. 13-14). Every function works on one set of
particles; ``jax.vmap`` it over a batch of states.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np


def pairwise_sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``[K, L]`` squared Euclidean distances ||x_i - y_j||^2 of ``x [K, D]`` and ``y [L, D]``.

    Computed from differences (not ||x||^2 + ||y||^2 - 2 x.y), so they are exactly 0 on equal
    points and never negative.
    """
    chex.assert_rank([x, y], 2)
    return jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1)


def median_bandwidth(particles: jax.Array, min_bandwidth: float = 1e-6) -> jax.Array:
    """The median heuristic of Liu & Wang (2016, sec. 5): h = med^2 / log(K + 1).

    med^2 is the median of the squared distances ||x_i - x_j||^2 over the K (K - 1) / 2 pairs
    i < j, so that sum_j k(x_i, x_j) ~ 1 + K exp(-med^2 / h) = 1 + K / (K + 1) ~ 2: a particle's own
    gradient and the others' weigh about the same. The bandwidth carries no gradient.

    Args:
      particles: ``[K, D]``, K >= 2.
      min_bandwidth: lower bound of h (particles that have all collapsed to one point give
        med = 0; the bound keeps the kernel's gradient finite).
    Returns:
      scalar h > 0.
    """
    chex.assert_rank(particles, 2)
    num = particles.shape[0]
    if num < 2:
        raise ValueError(f"the median heuristic needs at least 2 particles, got {num}.")
    rows, cols = np.triu_indices(num, k=1)  # static: K is a shape
    sq = pairwise_sq_distances(particles, particles)[rows, cols]
    h = jnp.median(sq) / math.log(num + 1.0)
    return jax.lax.stop_gradient(jnp.maximum(h, min_bandwidth))


def rbf_kernel(x: jax.Array, y: jax.Array, bandwidth) -> jax.Array:
    """``[K, L]`` the RBF kernel k(x_i, y_j) = exp(-||x_i - y_j||^2 / h) of ``x [K, D]`` and ``y [L, D]``.

    Args:
      x, y: particle sets ``[K, D]`` and ``[L, D]``.
      bandwidth: h > 0, scalar (e.g. :func:`median_bandwidth`).
    """
    return jnp.exp(-pairwise_sq_distances(x, y) / bandwidth)


def svgd_direction(particles: jax.Array, score: jax.Array, bandwidth=None) -> jax.Array:
    """The SVGD direction of K particles towards a density p (Liu & Wang 2016, eq. 8):

        phi(x_i) = (1/K) sum_j [ k(x_j, x_i) grad log p(x_j)  +  grad_{x_j} k(x_j, x_i) ]

    with the RBF kernel, for which grad_{x_j} k(x_j, x_i) = (2/h) (x_i - x_j) k(x_j, x_i). The first
    term drives the particles up the (kernel-smoothed) log density; the second, the repulsive
    term, pushes them apart, so that they spread over p instead of collapsing onto its modes.
    x_i + epsilon phi(x_i) is the step of steepest descent of KL(q || p) for the particles'
    distribution q in the kernel's Hilbert space. Soft Q-learning passes
    ``score = grad_a Q(s, a) / alpha`` at a state's actions (Haarnoja et al. 2017, eq. 13).

    Args:
      particles: ``[K, D]`` the particles x_1..x_K (treated as constants: no gradient flows).
      score: ``[K, D]`` grad log p(x_j) at the particles (p need not be normalised).
      bandwidth: h > 0 (scalar); None: :func:`median_bandwidth` of the particles.
    Returns:
      ``[K, D]`` phi(x_i).
    """
    chex.assert_rank(particles, 2)
    chex.assert_equal_shape([particles, score])
    particles = jax.lax.stop_gradient(particles)
    score = jax.lax.stop_gradient(score)
    h = median_bandwidth(particles) if bandwidth is None else bandwidth
    kernel = rbf_kernel(particles, particles, h)  # [K, K], symmetric: k(x_j, x_i) = k(x_i, x_j)
    num = particles.shape[0]
    driving = kernel @ score  # row i: sum_j k(x_i, x_j) score_j
    # sum_j (2/h) (x_i - x_j) k_ij = (2/h) [x_i sum_j k_ij - sum_j k_ij x_j]
    repulsive = (2.0 / h) * (particles * jnp.sum(kernel, axis=1, keepdims=True) - kernel @ particles)
    return (driving + repulsive) / num


def uniform_log_density(action_dim: int, low: float = -1.0, high: float = 1.0) -> float:
    """log q(a) = -D log(high - low) of the uniform law on [low, high]^D, the proposal of
    Haarnoja et al. (2017, sec. 3.2 and appendix C) for actions in [-1, 1]^D (= -D log 2)."""
    return -action_dim * math.log(high - low)


def soft_value(q_values: jax.Array, log_proposal: jax.Array | float, alpha) -> jax.Array:
    """The importance-sampled soft value of soft Q-learning (Haarnoja et al. 2017, eq. 10):

        V(s) = alpha log E_{a ~ q}[ exp(Q(s, a) / alpha) / q(a) ]
             ~ alpha [ logsumexp_j (Q(s, a_j) / alpha - log q(a_j)) - log M ],   a_1..a_M ~ q

    a consistent estimate (biased for finite M, as the log of a mean) of
    alpha log int exp(Q(s, a) / alpha) da, the soft maximum of Q over the actions. With the
    uniform proposal on [-1, 1]^D, log q = -D log 2 (:func:`uniform_log_density`).

    Args:
      q_values: ``[..., M]`` Q(s, a_j) of M actions drawn from the proposal, on the last axis.
      log_proposal: log q(a_j), ``[..., M]`` or anything broadcastable to it (a scalar for a uniform q).
      alpha: temperature > 0, scalar.
    Returns:
      ``[...]`` V(s).
    """
    log_weights = q_values / alpha - log_proposal
    num = q_values.shape[-1]
    return alpha * (jax.nn.logsumexp(log_weights, axis=-1) - math.log(num))
