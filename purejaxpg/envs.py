"""Environments: gymnax by name, vectorised stepping, episode statistics, observation normalisation.

gymnax 1.x environments auto-reset inside ``env.step`` and return
``obs, state, reward, terminated, truncated, info`` with ``info["final_observation"]`` the
observation *before* the reset. This module keeps that distinction all the way to the learner:
``terminated`` ends the bootstrap, ``truncated`` (a time limit) bootstraps from V(final obs).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxpg.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment's interface (hashable, usable as a jit static arg).

    Attributes:
      env_id: the gymnax id.
      obs_shape: shape of one observation.
      discrete: True for a Discrete action space, False for a Box.
      num_actions: number of discrete actions (0 for Box).
      action_dim: size of a continuous action (0 for Discrete).
      action_low, action_high: Box bounds as tuples of floats (empty for Discrete).
      max_episode_steps: the env's own time limit.
    """

    env_id: str
    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int = 0
    action_dim: int = 0
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    max_episode_steps: int = 0

    @property
    def obs_size(self) -> int:
        return int(np.prod(self.obs_shape))


def registered_env_ids() -> list[str]:
    """All environment ids gymnax can make."""
    return list(gymnax.registered_envs)


def check_env_id(env_id: str) -> None:
    """Raise a ConfigError naming the closest ids when ``env_id`` is not a gymnax id."""
    known = registered_env_ids()
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"env_id={env_id!r} is not a gymnax environment.{hint} "
            f"Pass one of gymnax.registered_envs, e.g. 'CartPole-v1' or 'Pendulum-v1'."
        )


def make(env_id: str) -> tuple[Any, Any, EnvSpec]:
    """Make a gymnax environment by id.

    Returns:
      ``(env, env_params, spec)``; raises ``ConfigError`` for an unknown id.
    """
    check_env_id(env_id)
    env, env_params = gymnax.make(env_id)
    return env, env_params, _spec(env_id, env, env_params)


def _spec(env_id: str, env, env_params) -> EnvSpec:
    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    max_steps = int(getattr(env_params, "max_steps_in_episode", 0))
    obs_shape = tuple(int(d) for d in obs_space.shape)
    if isinstance(act_space, spaces.Discrete):
        return EnvSpec(env_id, obs_shape, True, num_actions=int(act_space.n), max_episode_steps=max_steps)
    if isinstance(act_space, spaces.Box):
        shape = tuple(act_space.shape) or (1,)
        low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).reshape(-1)
        return EnvSpec(
            env_id,
            obs_shape,
            False,
            action_dim=int(np.prod(shape)),
            action_low=tuple(float(x) for x in low),
            action_high=tuple(float(x) for x in high),
            max_episode_steps=max_steps,
        )
    raise ConfigError(f"env_id={env_id!r} has an action space of type {type(act_space).__name__}; "
                      "purejaxpg supports Discrete and Box action spaces.")


def env_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """Map a policy action ``[N, ...]`` to what the env takes.

    Continuous actions ``[N, D]`` are clipped to the env's own Box bounds; the learner keeps the
    sampled, unclipped action, so its log-prob is that of what the policy actually drew.
    """
    if spec.discrete:
        return action
    low = jnp.asarray(spec.action_low, action.dtype)
    high = jnp.asarray(spec.action_high, action.dtype)
    return jnp.clip(action, low, high)


# --------------------------------------------------------------------------------------------
# Observation normalisation
# --------------------------------------------------------------------------------------------


@struct.dataclass
class RunningMeanStd:
    """Running mean and variance of observations, shaped like ONE observation (not per env).

    Updated with the parallel-variance merge of Chan et al. (1979):
    delta = m_b - m_a, m = m_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, obs_shape: tuple[int, ...]) -> "RunningMeanStd":
        return cls(jnp.zeros(obs_shape, jnp.float32), jnp.ones(obs_shape, jnp.float32), jnp.asarray(1e-4, jnp.float32))

    def update(self, batch: jax.Array) -> "RunningMeanStd":
        """Merge a batch ``[..., *obs_shape]`` whose trailing dims are one observation."""
        obs_ndim = self.mean.ndim
        flat = batch.reshape((-1,) + batch.shape[batch.ndim - obs_ndim:]).astype(jnp.float32)
        n_b = flat.shape[0]
        mean_b = flat.mean(axis=0)
        var_b = flat.var(axis=0)
        delta = mean_b - self.mean
        total = self.count + n_b
        mean = self.mean + delta * n_b / total
        m2 = self.var * self.count + var_b * n_b + delta**2 * self.count * n_b / total
        return RunningMeanStd(mean, m2 / total, total)

    def normalize(self, obs: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
        """(obs - mean) / sqrt(var + eps), clipped to [-clip, clip]; a constant feature maps to ~0, never inf."""
        return jnp.clip((obs - self.mean) / jnp.sqrt(self.var + eps), -clip, clip)


# --------------------------------------------------------------------------------------------
# Vectorised stepping with episode statistics
# --------------------------------------------------------------------------------------------


@struct.dataclass
class EnvLoopState:
    """Everything about the N parallel environments that persists across iterations.

    Attributes:
      env_state: gymnax state, leaves ``[N, ...]``.
      obs: ``[N, *obs_shape]`` current raw observations.
      episode_return: ``[N]`` undiscounted return of the episode in progress.
      episode_length: ``[N]`` steps taken in the episode in progress.
      obs_stats: running observation statistics (shape of one observation).
      return_stats: running statistics (scalar) of the discounted return, for reward scaling.
      discounted_return: ``[N]`` discounted return of the episode in progress, for return_stats.
      actor: the actors' exploration state (the algorithm's ``init_actor``; ``()`` for none), kept
        from step to step and across iterations by `purejaxpg.rollout.collect`.
    """

    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    obs_stats: RunningMeanStd
    return_stats: RunningMeanStd
    discounted_return: jax.Array
    actor: Any = ()


@struct.dataclass
class StepOutput:
    """One vectorised env step, leaves ``[N, ...]``.

    ``next_obs`` is the true next observation (``info["final_observation"]``), i.e. the last
    observation of the episode when it ended at this step; ``finished_return`` and
    ``finished_length`` are the completed episode's statistics where ``done`` and 0 elsewhere.
    """

    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    done: jax.Array
    finished_return: jax.Array
    finished_length: jax.Array


def reset(env, env_params, spec: EnvSpec, key: jax.Array, num_envs: int, group_size: int = 1,
          previous: EnvLoopState | None = None) -> EnvLoopState:
    """Reset ``num_envs`` environments.

    Args:
      key: one key; split into one reset key per group.
      num_envs: N (static).
      group_size: G (static, divides N): envs ``[g*G, (g+1)*G)`` share a reset key and so start
        from the same state (GRPO's groups); their later step keys differ. 1 = independent envs.
      previous: a loop state whose normalisation statistics and actor state are kept (default:
        fresh statistics, no actor state).
    """
    group_keys = jax.random.split(key, num_envs // group_size)
    keys = jnp.repeat(group_keys, group_size, axis=0)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    if previous is None:
        obs_stats, return_stats, actor = RunningMeanStd.create(spec.obs_shape), RunningMeanStd.create(()), ()
    else:
        obs_stats, return_stats, actor = previous.obs_stats, previous.return_stats, previous.actor
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return EnvLoopState(env_state, obs.astype(jnp.float32), zeros, zeros.astype(jnp.int32), obs_stats,
                        return_stats, zeros, actor)


def scale_rewards(loop: EnvLoopState, reward: jax.Array, done: jax.Array, gamma: float):
    """Divide rewards by the running std of the discounted return (as SB3's VecNormalize does).

    The running discounted return R_t = gamma R_{t-1} + r_t (reset after an episode ends) is
    computed over the batch with a scan over T, merged into ``loop.return_stats``, and the batch's
    rewards are divided by sqrt(var(R) + 1e-8). Returns ``(new_loop, scaled_reward [T, N])``.
    """

    def accumulate(running, step):
        r, d = step
        running = running * gamma + r
        return jnp.where(d, 0.0, running), running

    last, discounted = jax.lax.scan(accumulate, loop.discounted_return, (reward, done))
    stats = loop.return_stats.update(discounted)
    return loop.replace(return_stats=stats, discounted_return=last), reward / jnp.sqrt(stats.var + 1e-8)


def step(env, env_params, spec: EnvSpec, loop: EnvLoopState, action: jax.Array, key: jax.Array):
    """Step N environments once (auto-reset inside gymnax) and track episode statistics.

    Args:
      loop: the current ``EnvLoopState``.
      action: ``[N]`` int actions or ``[N, D]`` float actions as sampled by the policy.
      key: one key, split into N step keys, or ``[N]`` step keys already split.
    Returns:
      ``(new_loop, StepOutput)``.
    """
    num_envs = loop.obs.shape[0]
    chex.assert_shape(action, (num_envs,) + (() if spec.discrete else (spec.action_dim,)))
    keys = key if key.shape[:1] == (num_envs,) else jax.random.split(key, num_envs)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        keys, loop.env_state, env_action(spec, action), env_params)
    reward = reward.astype(jnp.float32)
    done = jnp.logical_or(terminated, truncated)
    ep_return = loop.episode_return + reward
    ep_length = loop.episode_length + 1
    out = StepOutput(
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        next_obs=info["final_observation"].astype(jnp.float32),
        done=done,
        finished_return=jnp.where(done, ep_return, 0.0),
        finished_length=jnp.where(done, ep_length, 0),
    )
    new_loop = loop.replace(
        env_state=env_state,
        obs=obs.astype(jnp.float32),
        episode_return=jnp.where(done, 0.0, ep_return),
        episode_length=jnp.where(done, 0, ep_length),
    )
    return new_loop, out
