"""Finite-difference policy gradients and Monte-Carlo returns with common random numbers.

The oldest policy-gradient estimator needs no score function at all: perturb each parameter,
measure the return, difference (e.g. Kohl & Stone 2004, the AIBO gait; Peters & Schaal 2008,
"Reinforcement learning of motor skills with policy gradients", sec. 2.1). With central differences

    dJ/dtheta_i ~= (J(theta + h e_i) - J(theta - h e_i)) / (2 h),   error O(h^2),

over all P parameters: 2P evaluations of J, done here in one ``jax.vmap`` (or in chunks).

J is estimated by Monte-Carlo episodes (:func:`make_return_objective`). Its noise would swamp the
O(h) differences unless every evaluation uses the SAME random numbers (common random numbers):
the same start states, the same environment noise and the same policy noise. With a Gaussian
policy sampled by reparameterisation, a = mu_theta(s) + sigma_theta * eps with eps fixed, the
estimate is then a smooth function of theta and its finite differences are (up to O(h^2)) the
pathwise gradient of the same episodes. A categorical policy's sampled actions are piecewise
constant in theta (Gumbel-max with fixed noise), so its CRN return is a step function: finite
differences there need a large h and many episodes, and are mostly a teaching device.

Use it as a gradient check: on a smooth objective it agrees with ``jax.grad`` to O(h^2), and on a
small control problem with the REINFORCE estimate within Monte-Carlo error
(``tests/test_finite_difference.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from purejaxpg import envs, rollout

__all__ = ["episode_returns", "finite_difference_gradient", "make_return_objective"]


def finite_difference_gradient(objective: Callable[[Any], jax.Array], params: Any, h: jax.typing.ArrayLike,
                               *, chunk_size: int | None = None) -> Any:
    """Central finite-difference gradient of ``objective`` at ``params`` (a pytree).

    g_i = (J(theta + h e_i) - J(theta - h e_i)) / (2 h) for every scalar theta_i of the flattened
    pytree; the 2P perturbed parameter vectors are evaluated under ``jax.vmap`` (or
    ``jax.lax.map`` in chunks of ``chunk_size`` when they do not fit in memory at once).

    Args:
      objective: ``params -> J``, a scalar, or an array of shape ``S`` (e.g. per-episode returns,
        to get per-episode differences for a standard error). Make it deterministic (fix its
        random keys inside) so that all evaluations share common random numbers.
      params: pytree of float arrays theta (P scalars in all).
      h: scalar perturbation size (may be traced).
      chunk_size: evaluate the 2P perturbations in batches of this size (static; None: all at once).
    Returns:
      a pytree shaped like ``params`` (scalar objective), or with leaves ``[*S, *leaf.shape]``.
    """
    flat, unravel = ravel_pytree(params)
    num_params = flat.shape[0]
    h = jnp.asarray(h, flat.dtype)
    offsets = h * jnp.eye(num_params, dtype=flat.dtype)
    perturbed = jnp.concatenate([flat + offsets, flat - offsets], axis=0)  # [2P, P]
    evaluate = lambda f: jnp.asarray(objective(unravel(f)))  # noqa: E731
    if chunk_size is None:
        values = jax.vmap(evaluate)(perturbed)
    else:
        values = jax.lax.map(evaluate, perturbed, batch_size=chunk_size)
    diffs = (values[:num_params] - values[num_params:]) / (2.0 * h)  # [P, *S]
    out_shape = diffs.shape[1:]
    per_output = jnp.moveaxis(diffs, 0, -1).reshape((-1, num_params))  # [prod(S), P]
    grads = jax.vmap(unravel)(per_output)
    return jax.tree.map(lambda leaf: leaf.reshape(out_shape + leaf.shape[1:]), grads)


def episode_returns(policy: Any, params: Any, env, env_params, spec: envs.EnvSpec, key: jax.Array,
                    num_episodes: int, num_steps: int, gamma: jax.typing.ArrayLike = 1.0) -> jax.Array:
    """Discounted returns of ``num_episodes`` independent episodes, each cut after ``num_steps``.

    G_j = sum_{t < min(L_j, num_steps)} gamma^t r_{j,t}: the first episode of each of
    ``num_episodes`` parallel environments (`purejaxpg.rollout.collect`; steps after its end are
    masked out). The same ``key`` gives the same start states, env noise and policy noise
    (common random numbers) for any ``params``.

    Args:
      policy: a flax policy module, ``policy.apply(params, obs) -> distribution`` with ``sample``.
      params: its parameters.
      env, env_params, spec: from `purejaxpg.envs.make`.
      key: PRNG key, fixed across the parameter vectors to compare.
      num_episodes: number of episodes E (static).
      num_steps: horizon H (static); use the env's time limit for full episodes.
      gamma: discount (may be traced).
    Returns:
      ``[E]`` returns.
    """
    reset_key, rollout_key = jax.random.split(key)
    loop = envs.reset(env, env_params, spec, reset_key, num_episodes)

    def act(obs, action_key):
        return policy.apply(params, obs).sample(action_key), ()

    _, batch = rollout.collect(rollout.stateless(act), env, env_params, spec, loop, rollout_key, num_steps)
    done = batch.done.astype(jnp.int32)
    in_first_episode = (jnp.cumsum(done, axis=0) - done) == 0  # [H, E]: no episode end before t
    discounts = jnp.asarray(gamma, jnp.float32) ** jnp.arange(num_steps, dtype=jnp.float32)
    return jnp.sum(jnp.where(in_first_episode, batch.reward, 0.0) * discounts[:, None], axis=0)


def make_return_objective(policy: Any, env_id: str, key: jax.Array, num_episodes: int, num_steps: int,
                          gamma: float = 1.0, per_episode: bool = False) -> Callable[[Any], jax.Array]:
    """``J(params)``: the Monte-Carlo mean return of ``policy`` on ``env_id`` with fixed random numbers.

    Every call replays the same ``key`` (common random numbers), so differences J(theta') - J(theta)
    reflect the parameters, not the noise; pass it to :func:`finite_difference_gradient`.

    Args:
      policy: flax policy module (e.g. ``networks.make_policy(spec, hidden=())``, a linear policy).
      env_id: gymnax id.
      key: the fixed PRNG key.
      num_episodes, num_steps: E episodes cut at H steps (static).
      gamma: discount.
      per_episode: return the ``[E]`` vector of episode returns instead of their mean.
    Returns:
      ``objective(params) -> scalar`` (or ``[E]``).
    """
    env, env_params, spec = envs.make(env_id)

    def objective(params):
        values = episode_returns(policy, params, env, env_params, spec, key, num_episodes, num_steps, gamma)
        return values if per_episode else jnp.mean(values)

    return objective
