"""Returns, advantages, off-policy (Retrace) targets and score normalisation for time-major rollouts.

All rollout arrays are time-major ``[T, N]`` (T steps of N environments; further trailing batch
dimensions are allowed as long as every input has the same shape). Step ``t`` is the transition
``(s_t, a_t, r_t, s_{t+1})`` and the episode-end flags refer to ``s_{t+1}``:

* ``terminated[t]``: ``s_{t+1}`` is terminal, its value is 0, so nothing is ever bootstrapped;
* ``truncated[t]``: the episode was cut by a time limit; ``s_{t+1}`` (the final observation) still
  has a value, so targets bootstrap from ``next_values[t] = V(s_{t+1})``;
* either flag stops every backward chain at ``t`` (the next row belongs to a new episode).

``next_values[t]`` is always V of the true next state of step ``t``: the final observation when
the episode ended at ``t``, otherwise ``values[t + 1]``. The last row ``t = T - 1`` of a batch is
treated like a truncation when the episode has not ended there.

Flags may be bool or float (non-zero means set). ``gamma``, ``lam`` are scalars that may be traced
(e.g. vmapped over in a hyperparameter sweep); they never enter Python control flow. Backward
recursions use ``jax.lax.scan(..., reverse=True)``.
"""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp


def _float_dtype(x: jax.Array):
    return jnp.result_type(jnp.asarray(x).dtype, jnp.float32)


def _flag(x: jax.Array) -> jax.Array:
    """Bool view of a bool-or-float flag array (non-zero means set)."""
    x = jnp.asarray(x)
    return x if x.dtype == jnp.bool_ else x != 0


def _scalar(x, dtype) -> jax.Array:
    x = jnp.asarray(x, dtype=dtype)
    chex.assert_rank(x, 0)
    return x


def reward_to_go(
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: chex.Numeric,
    next_values: Optional[jax.Array] = None,
) -> jax.Array:
    """Discounted reward-to-go inside each episode (the causality trick of REINFORCE).

    G_t = r_t + gamma * G_{t+1} while the episode continues; the sum stops at the end of the
    episode. Where the episode is truncated at t, or at the last row t = T - 1 when it has not
    ended, the tail is bootstrapped with gamma * next_values[t] (0 if ``next_values`` is None);
    a termination never bootstraps:

      G_t = r_t + gamma * (1 - terminated_t) * (truncated_t ? next_values_t : G_{t+1}),
      G_T := next_values_{T-1}.

    Args:
      rewards: ``[T, N]`` rewards r_t.
      terminated: ``[T, N]`` bool/float, s_{t+1} is terminal.
      truncated: ``[T, N]`` bool/float, the episode was cut after step t.
      gamma: scalar discount (may be traced).
      next_values: optional ``[T, N]`` V(s_{t+1}) used for bootstrapping.

    Returns:
      ``[T, N]`` reward-to-go G_t.
    """
    rewards = jnp.asarray(rewards)
    dtype = _float_dtype(rewards)
    rewards = rewards.astype(dtype)
    chex.assert_rank(rewards, {1, 2, 3, 4, 5})
    chex.assert_equal_shape([rewards, terminated, truncated])
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    else:
        chex.assert_equal_shape([rewards, next_values])
        next_values = jnp.asarray(next_values, dtype)
    gamma = _scalar(gamma, dtype)
    term, trunc = _flag(terminated), _flag(truncated)

    def body(g_next, xs):
        r, te, tr, v = xs
        tail = jnp.where(tr, v, g_next)
        g = r + gamma * jnp.where(te, jnp.zeros_like(tail), tail)
        return g, g

    _, returns = jax.lax.scan(
        body, next_values[-1], (rewards, term, trunc, next_values), reverse=True
    )
    return returns


def n_step_targets(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: chex.Numeric,
    n: int,
) -> jax.Array:
    """n-step bootstrapped return targets, cut at episode and batch ends.

    G_t = sum_{k<m} gamma^k r_{t+k} + gamma^m * V_boot, where m = min(n, number of steps from t to
    the end of the episode or of the batch, inclusive) and V_boot = next_values[t+m-1], or 0 if
    the episode terminated at t+m-1. Computed by n - 1 vectorised applications of
    G^(k)_t = r_t + gamma * (continues_t ? G^(k-1)_{t+1} : (1 - terminated_t) next_values_t),
    starting from G^(1)_t = r_t + gamma (1 - terminated_t) next_values_t.

    Args:
      rewards: ``[T, N]`` rewards r_t.
      next_values: ``[T, N]`` V(s_{t+1}) (the final observation's value where the episode ended).
      terminated: ``[T, N]`` bool/float, s_{t+1} is terminal.
      truncated: ``[T, N]`` bool/float, the episode was cut after step t.
      gamma: scalar discount (may be traced).
      n: static Python int >= 1, the number of steps.

    Returns:
      ``[T, N]`` n-step targets.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a Python int >= 1, got {n!r}")
    rewards = jnp.asarray(rewards)
    dtype = _float_dtype(rewards)
    rewards = rewards.astype(dtype)
    chex.assert_rank(rewards, {1, 2, 3, 4, 5})
    chex.assert_equal_shape([rewards, next_values, terminated, truncated])
    next_values = jnp.asarray(next_values, dtype)
    gamma = _scalar(gamma, dtype)
    term, trunc = _flag(terminated), _flag(truncated)

    boot = jnp.where(term, jnp.zeros_like(next_values), next_values)
    # continues[t]: step t + 1 belongs to the same episode and lies inside the batch.
    continues = jnp.logical_not(term | trunc).at[-1].set(False)
    one_step = rewards + gamma * boot

    def extend(_, g):
        g_next = jnp.concatenate([g[1:], jnp.zeros_like(g[:1])], axis=0)
        return rewards + gamma * jnp.where(continues, g_next, boot)

    return jax.lax.fori_loop(0, n - 1, extend, one_step)


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: chex.Numeric,
    lam: chex.Numeric,
) -> jax.Array:
    """Generalized advantage estimation, GAE(gamma, lambda).

    Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
    Estimation":

      delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t,
      A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1},  A_T = 0,  done = terminated | truncated.

    Termination stops the bootstrap, truncation bootstraps from next_values, both stop the
    lambda-chain.

    Args:
      rewards: ``[T, N]`` rewards r_t.
      values: ``[T, N]`` V(s_t).
      next_values: ``[T, N]`` V(s_{t+1}) (the final observation's value where the episode ended).
      terminated: ``[T, N]`` bool/float, s_{t+1} is terminal.
      truncated: ``[T, N]`` bool/float, the episode was cut after step t.
      gamma: scalar discount (may be traced).
      lam: scalar GAE lambda (may be traced).

    Returns:
      ``[T, N]`` advantages A_t.
    """
    rewards = jnp.asarray(rewards)
    dtype = _float_dtype(rewards)
    rewards = rewards.astype(dtype)
    chex.assert_rank(rewards, {1, 2, 3, 4, 5})
    chex.assert_equal_shape([rewards, values, next_values, terminated, truncated])
    values = jnp.asarray(values, dtype)
    next_values = jnp.asarray(next_values, dtype)
    gamma = _scalar(gamma, dtype)
    lam = _scalar(lam, dtype)
    term, trunc = _flag(terminated), _flag(truncated)

    deltas = rewards + gamma * jnp.where(term, jnp.zeros_like(next_values), next_values) - values
    done = term | trunc
    decay = gamma * lam

    def body(a_next, xs):
        delta, d = xs
        a = delta + decay * jnp.where(d, jnp.zeros_like(a_next), a_next)
        return a, a

    _, advantages = jax.lax.scan(body, jnp.zeros_like(deltas[0]), (deltas, done), reverse=True)
    return advantages


def lambda_returns(rewards: jax.Array, values: jax.Array, next_values: jax.Array, terminated: jax.Array,
                   truncated: jax.Array, gamma: chex.Numeric, lam: chex.Numeric) -> jax.Array:
    """TD(lambda) critic targets, G^lambda_t = A^GAE_t + V(s_t) (Schulman et al. 2016).

    Args:
      rewards, values, next_values, terminated, truncated: ``[T, N]`` each, as for :func:`gae`.
      gamma, lam: scalar discount and lambda (may be traced).

    Returns:
      ``[T, N]`` lambda-returns ``gae(...) + values``.
    """
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    return advantages + jnp.asarray(values, advantages.dtype)


def standardize(x: jax.Array, eps: chex.Numeric = 1e-8, axis=None) -> jax.Array:
    """Standard score (x - mean) / (std + eps) over ``axis`` (all axes if None).

    The population std (ddof = 0) is used. The data are first shifted by one of their own
    elements along the reduced axes (an exact no-op for the standard score), so a single sample
    or all-equal values give exactly zeros, never NaN or rounding noise.

    Args:
      x: array of any shape, e.g. ``[T, N]`` advantages.
      eps: small positive scalar added to the std.
      axis: None, an int or a tuple of ints: the axes to normalise over.

    Returns:
      array of the shape of ``x``, standardised along ``axis``.
    """
    x = jnp.asarray(x)
    x = x.astype(_float_dtype(x))
    chex.assert_rank(eps, 0)
    if axis is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axis, int):
        axes = (axis % x.ndim,) if x.ndim else ()
    else:
        axes = tuple(a % x.ndim for a in axis)
    if x.ndim == 0:
        return jnp.zeros_like(x)
    ref = x[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
    centred = x - ref
    centred = centred - jnp.mean(centred, axis=axes, keepdims=True)
    var = jnp.mean(centred**2, axis=axes, keepdims=True)
    positive = var > 0
    # Double-where keeps the gradient finite at var == 0 (sqrt has an infinite slope there).
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
    return centred / (std + eps)


def group_standardize(returns: jax.Array, eps: chex.Numeric = 1e-8) -> jax.Array:
    """Group-relative advantages of GRPO (Shao et al. 2024, "DeepSeekMath").

    Outcome supervision: A_i = (R_i - mean(R)) / (std(R) + eps) within each group of G samples
    (population std, ddof = 0).

    Args:
      returns: ``[G, ...]`` returns; axis 0 is the group axis (G completions of one prompt), any
        trailing axes are independent groups.
      eps: small positive scalar added to the (population) std.

    Returns:
      ``[G, ...]`` standard scores along axis 0; a group of equal returns gives zeros.
    """
    returns = jnp.asarray(returns)
    chex.assert_rank(returns, {1, 2, 3, 4, 5})
    return standardize(returns, eps=eps, axis=0)


def retrace(
    rewards: jax.Array,
    q_values: jax.Array,
    next_values: jax.Array,
    importance_weights: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: chex.Numeric,
    lam: chex.Numeric,
) -> jax.Array:
    """Retrace targets Q^ret for the actions taken, computed backwards over a segment.

    Munos et al. 2016, "Safe and Efficient Off-Policy Reinforcement Learning", in the recursive
    form of Wang et al. 2017 ("Sample Efficient Actor-Critic with Experience Replay", ACER,
    eq. 5) with traces c_t = lambda * min(1, rho_t), rho_t = pi(a_t|s_t) / mu(a_t|s_t):

      Q^ret_t = r_t + gamma * (1 - terminated_t) * [V(s_{t+1}) + c_{t+1} (Q^ret_{t+1} - Q(s_{t+1}, a_{t+1}))],

    where the correction term is present only while the episode continues inside the segment: a
    termination gives Q^ret_t = r_t, a truncation (or the last row t = T - 1) gives
    r_t + gamma * V(s_{t+1}) with ``next_values[t]`` the value of the true next observation.

    Args:
      rewards: ``[T, N]`` rewards r_t.
      q_values: ``[T, N]`` Q(s_t, a_t) of the actions taken (treated as constants by callers).
      next_values: ``[T, N]`` V(s_{t+1}) = sum_a pi(a|s_{t+1}) Q(s_{t+1}, a) of the true next
        observation (the final observation where the episode ended).
      importance_weights: ``[T, N]`` rho_t = pi(a_t|s_t) / mu(a_t|s_t), mu the behaviour policy.
      terminated: ``[T, N]`` bool/float, s_{t+1} is terminal.
      truncated: ``[T, N]`` bool/float, the episode was cut after step t.
      gamma: scalar discount (may be traced).
      lam: scalar trace coefficient lambda (may be traced); lam = 1 is ACER's Retrace.

    Returns:
      ``[T, N]`` Q^ret_t.
    """
    rewards = jnp.asarray(rewards)
    dtype = _float_dtype(rewards)
    rewards = rewards.astype(dtype)
    chex.assert_rank(rewards, {1, 2, 3, 4, 5})
    chex.assert_equal_shape([rewards, q_values, next_values, importance_weights, terminated, truncated])
    q_values = jnp.asarray(q_values, dtype)
    next_values = jnp.asarray(next_values, dtype)
    gamma = _scalar(gamma, dtype)
    lam = _scalar(lam, dtype)
    term, trunc = _flag(terminated), _flag(truncated)
    traces = lam * jnp.minimum(1.0, jnp.asarray(importance_weights, dtype))

    def body(correction_next, xs):
        r, q, v_next, c, te, tr = xs
        # correction_next = c_{t+1} (Q^ret_{t+1} - Q_{t+1}); it belongs to the next episode after an end
        tail = v_next + jnp.where(te | tr, jnp.zeros_like(correction_next), correction_next)
        q_ret = r + gamma * jnp.where(te, jnp.zeros_like(tail), tail)
        return c * (q_ret - q), q_ret

    _, q_ret = jax.lax.scan(body, jnp.zeros_like(rewards[0]),
                            (rewards, q_values, next_values, traces, term, trunc), reverse=True)
    return q_ret
