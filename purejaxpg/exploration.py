"""Exploration noise of the deterministic-policy algorithms (DDPG, TD3): Gaussian and Ornstein-Uhlenbeck.

Pure functions. The Ornstein-Uhlenbeck process keeps a state per environment, which the rollout
carries in ``EnvLoopState.actor`` from step to step and across iterations (`purejaxpg.train.Algorithm.init_actor`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_noise(key: jax.Array, shape: tuple[int, ...], std) -> jax.Array:
    """Independent N(0, std^2) noise of ``shape`` (TD3's exploration, Fujimoto et al. 2018, sec. 6.1)."""
    return std * jax.random.normal(key, shape)


def ou_step(state: jax.Array, key: jax.Array, theta, sigma, dt=1e-2, mu=0.0) -> jax.Array:
    """One Euler-Maruyama step of the Ornstein-Uhlenbeck process dx = theta (mu - x) dt + sigma dW
    (Uhlenbeck & Ornstein 1930), DDPG's temporally correlated exploration (Lillicrap et al. 2016):

        x_{t+1} = x_t + theta (mu - x_t) dt + sigma sqrt(dt) eps,  eps ~ N(0, I)

    The stationary law is N(mu, sigma^2 / (2 theta)) per coordinate (for small dt), and
    consecutive values correlate as (1 - theta dt)^k at lag k.

    Args:
      state: ``[..., D]`` the current x_t (the noise added to the action at step t).
      key: PRNG key; theta, sigma, dt, mu: scalars (may be traced).
    Returns:
      ``[..., D]`` x_{t+1}.
    """
    eps = jax.random.normal(key, state.shape, state.dtype)
    return state + theta * (mu - state) * dt + sigma * jnp.sqrt(dt) * eps
