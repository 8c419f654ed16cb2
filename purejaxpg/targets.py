"""Bellman targets of the off-policy actor-critics and the target networks they bootstrap from.

Pure functions of arrays: they know no buffer, no network and no loop. Every target bootstraps
unless the step *terminated*: a time limit (truncation) is not a terminal state, so

    y = r + gamma (1 - terminated) * (value of the true next observation)

with the next observation the final one of a truncated episode (`purejaxpg.rollout.Transition.next_obs`).
Treating truncation as termination (as a single ``done`` flag does) biases every value near a
time limit towards 0; ``tests/test_offpolicy_math.py`` fails on that version.

The distributional targets of D4PG (Barth-Maron et al. 2018) are here too: the N-step return of
a replayed window that stops at the first episode end (:func:`n_step_window_return`), and the
projection of the shifted and scaled return distribution onto a fixed support
(:func:`categorical_projection`, the C51 projection of Bellemare et al. 2017).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp


def _not_terminal(terminated: jax.Array, dtype) -> jax.Array:
    return 1.0 - jnp.asarray(terminated).astype(dtype)


def td_target(reward: jax.Array, terminated: jax.Array, next_value: jax.Array, gamma) -> jax.Array:
    """One-step TD target y = r + gamma (1 - terminated) v', the target of DDPG's critic (Lillicrap et al. 2016).

    Args:
      reward, terminated, next_value: ``[B]`` (any common shape); ``next_value`` is the target
        critic's value of the true next observation (Q'(s', mu'(s')) for DDPG).
      gamma: discount, scalar.
    Returns:
      ``[B]`` targets, to be treated as constants (wrap in ``stop_gradient`` or compute from target networks).
    """
    return reward + gamma * _not_terminal(terminated, reward.dtype) * next_value


def clipped_double_q_target(reward: jax.Array, terminated: jax.Array, next_q: jax.Array, gamma) -> jax.Array:
    """TD3's clipped double-Q target y = r + gamma (1 - terminated) min_k Q'_k(s', a~') (Fujimoto et al. 2018, eq. 10).

    Args:
      reward, terminated: ``[B]``.
      next_q: ``[K, B]``, K >= 1 target critics at (s', a~'), where a~' is the smoothed target
        action of :func:`smoothed_target_action` (TD3) or a' ~ pi(.|s') (SAC). K = 1 is DDPG's target.
      gamma: discount, scalar.
    Returns:
      ``[B]`` targets.
    """
    return td_target(reward, terminated, jnp.min(next_q, axis=0), gamma)


def soft_bellman_target(reward: jax.Array, terminated: jax.Array, next_q: jax.Array, next_log_prob: jax.Array,
                        alpha, gamma) -> jax.Array:
    """SAC's soft Bellman target (Haarnoja et al. 2018b, eqs. 3 and 5 with a' sampled from the current policy):

        y = r + gamma (1 - terminated) [ min_k Q'_k(s', a') - alpha log pi(a'|s') ],  a' ~ pi(.|s')

    Args:
      reward, terminated, next_log_prob: ``[B]``; ``next_log_prob`` = log pi(a'|s').
      next_q: ``[K, B]`` target critics at (s', a').
      alpha: temperature, scalar >= 0 (alpha = 0 gives the clipped double-Q target).
      gamma: discount, scalar.
    Returns:
      ``[B]`` targets.
    """
    soft_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return td_target(reward, terminated, soft_value, gamma)


def smoothed_target_action(target_action: jax.Array, key: jax.Array, noise_std, noise_clip,
                           low: jax.Array | float = -1.0, high: jax.Array | float = 1.0) -> jax.Array:
    """TD3's target policy smoothing (Fujimoto et al. 2018, eq. 14):

        a~' = clip(mu'(s') + clip(eps, -c, c), low, high),  eps ~ N(0, sigma^2)

    Args:
      target_action: ``[B, D]`` the target actor's actions mu'(s').
      key: PRNG key for eps.
      noise_std: sigma, scalar >= 0; noise_clip: c, scalar >= 0 (both in action units).
      low, high: action bounds (scalars or ``[D]``).
    Returns:
      ``[B, D]`` smoothed actions within [low, high].
    """
    eps = noise_std * jax.random.normal(key, target_action.shape, target_action.dtype)
    return jnp.clip(target_action + jnp.clip(eps, -noise_clip, noise_clip), low, high)


def polyak_update(target: Any, online: Any, tau) -> Any:
    """Soft target-network update theta' <- tau theta + (1 - tau) theta' on every leaf (Lillicrap et al. 2016).

    Args:
      target, online: pytrees of one structure (target and online parameters).
      tau: scalar in [0, 1] (may be traced); 1 copies the online parameters, 0 keeps the target.
    Returns:
      the new target pytree.
    """
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def n_step_window_return(reward: jax.Array, terminated: jax.Array, truncated: jax.Array, gamma):
    """N-step return of a replayed window of one env, stopped at the first episode end (truncation-correct).

    Sutton & Barto (2018, eq. 7.1); D4PG's N-step target (Barth-Maron et al. 2018, eq. 7). With
    ``e`` the first step k of the window at which the episode ended (terminated or truncated), or
    ``n - 1`` when none did:

        G        = sum_{k <= e} gamma^k r_k
        discount = 0 if terminated_e else gamma^(e + 1)
        the value bootstraps from next_obs[e]  (the true final observation on a truncation)

    so the target is ``G + discount * V(next_obs[e])``. A time limit (truncated) is not a terminal
    state: the return bootstraps through it, but never past it into the next episode.

    Args:
      reward: ``[B, n]`` rewards r_0 .. r_{n-1} of n consecutive steps of one env (window b).
      terminated, truncated: ``[B, n]`` bool/float flags of those steps.
      gamma: discount, scalar (may be traced).
    Returns:
      ``(G [B], discount [B], end [B] int32)``: the return, the factor of the bootstrap value, and
      the index ``e`` of the step whose ``next_obs`` is the bootstrap observation.
    """
    chex.assert_rank(reward, 2)
    chex.assert_equal_shape([reward, terminated, truncated])
    dtype = reward.dtype
    n = reward.shape[1]
    terminated, truncated = jnp.asarray(terminated).astype(bool), jnp.asarray(truncated).astype(bool)
    ended = terminated | truncated
    # steps k with no episode end before k are part of the return (the end step itself included)
    ended_before = jnp.cumsum(ended, axis=1) - ended.astype(jnp.int32)
    included = (ended_before == 0).astype(dtype)
    end = jnp.where(jnp.any(ended, axis=1), jnp.argmax(ended, axis=1), n - 1).astype(jnp.int32)
    powers = jnp.asarray(gamma, dtype) ** jnp.arange(n + 1, dtype=dtype)
    ret = jnp.sum(included * powers[:n] * reward, axis=1)
    end_terminated = jnp.take_along_axis(terminated, end[:, None], axis=1)[:, 0]
    discount = jnp.where(end_terminated, 0.0, powers[end + 1]).astype(dtype)
    return ret, discount, end


def categorical_projection(support: jax.Array, probs: jax.Array, reward: jax.Array, discount: jax.Array) -> jax.Array:
    """Project the distribution of r + discount * Z onto the fixed support: the C51 / D4PG projection.

    Bellemare et al. (2017, eq. 7 and Algorithm 1); Barth-Maron et al. (2018, sec. 3). The target
    atoms T z_j = clip(r + discount z_j, v_min, v_max) (v_min, v_max the ends of the support) carry
    the probabilities p_j; each is split between its two neighbouring atoms of the support by
    linear interpolation:

        m_i = sum_j p_j * max(0, 1 - |T z_j - z_i| / dz),    dz = z_1 - z_0

    (the hat-function form, which also keeps all of p_j when T z_j falls exactly on an atom).
    ``discount = 0`` (a terminal step) puts all the mass on the two atoms around r.

    Args:
      support: ``[K]`` atoms z_0 < ... < z_{K-1}, evenly spaced (``jnp.linspace(v_min, v_max, K)``).
      probs: ``[B, K]`` probabilities p_j of the next state's return distribution on the support.
      reward: ``[B]`` (N-step) rewards r.
      discount: ``[B]`` factor of Z, e.g. gamma^N (1 - terminated) (:func:`n_step_window_return`).
    Returns:
      ``[B, K]`` the projected probabilities (each row sums to the row of ``probs``).
    """
    chex.assert_rank([support, probs, reward, discount], [1, 2, 1, 1])
    chex.assert_equal_shape_prefix([probs, reward, discount], 1)
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.shape[0] - 1)
    shifted = jnp.clip(reward[:, None] + discount[:, None] * support[None, :], v_min, v_max)  # [B, K] T z_j
    # weight[b, i, j] of target atom j on support atom i
    weight = jnp.clip(1.0 - jnp.abs(shifted[:, None, :] - support[None, :, None]) / delta, 0.0, 1.0)
    return jnp.einsum("bij,bj->bi", weight, probs)


def categorical_cross_entropy(target_probs: jax.Array, logits: jax.Array) -> jax.Array:
    """Cross-entropy -sum_i m_i log softmax(logits)_i of a predicted categorical against a target, per sample.

    The distributional critic loss of C51 / D4PG (Bellemare et al. 2017, Algorithm 1; Barth-Maron
    et al. 2018, eq. 4 with the KL's constant entropy of m dropped). D4PG's prioritised replay
    uses it as the priority of the sample.

    Args:
      target_probs: ``[B, K]`` the projected target m (constant: computed from target networks).
      logits: ``[B, K]`` the critic's logits at (s, a).
    Returns:
      ``[B]`` per-sample losses.
    """
    chex.assert_equal_shape([target_probs, logits])
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
