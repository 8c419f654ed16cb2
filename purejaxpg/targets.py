"""Bellman targets of the off-policy actor-critics and the target networks they bootstrap from.

Pure functions of arrays: they know no buffer, no network and no loop. Every target bootstraps
unless the step *terminated*: a time limit (truncation) is not a terminal state, so

    y = r + gamma (1 - terminated) * (value of the true next observation)

with the next observation the final one of a truncated episode (`purejaxpg.rollout.Transition.next_obs`).
Treating truncation as termination (as a single ``done`` flag does) biases every value near a
time limit towards 0; ``tests/test_offpolicy_math.py`` fails on that version.
"""

from __future__ import annotations

from typing import Any

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
