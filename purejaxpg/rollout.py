"""Collect T steps of N environments with one ``lax.scan``: the library's only rollout loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from flax import struct

from purejaxpg import envs


@struct.dataclass
class Transition:
    """A time-major batch, every leaf ``[T, N, ...]``.

    Attributes:
      obs: observations the policy acted on (normalised when the run normalises observations).
      action: sampled actions (``[T, N]`` int or ``[T, N, D]`` float, before clipping).
      reward: ``[T, N]`` rewards.
      terminated: ``[T, N]`` bool, the episode reached a terminal state at t (no bootstrap).
      truncated: ``[T, N]`` bool, the episode hit its time limit at t (bootstrap from next_obs).
      next_obs: the true next observation of step t (the final observation when the episode
        ended at t, before the auto-reset), normalised like ``obs``.
      extras: what the algorithm's ``act`` returned besides the action (e.g. ``log_prob``).
      done: ``[T, N]`` terminated | truncated.
      finished_return, finished_length: ``[T, N]`` statistics of the episode that ended at t,
        0 where none ended.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    extras: Any
    done: jax.Array
    finished_return: jax.Array
    finished_length: jax.Array

    @property
    def num_steps(self) -> int:
        return self.reward.shape[0]

    @property
    def num_envs(self) -> int:
        return self.reward.shape[1]


@dataclasses.dataclass(frozen=True)
class RolloutOptions:
    """What an algorithm asks of the rollout, as data (`purejaxpg.train.Trainer.step` reads it).

    Attributes:
      episodic_groups: 0 (default): the environments run on across iterations, auto-resetting.
        G > 0: every iteration starts from a fresh reset in which each group of G consecutive
        environments shares a reset key, so a group starts from one state (GRPO's groups).
      joint_agents: False (default): a multi-agent env's A agents are A environments of one shared
        policy (`purejaxpg.envs.shared_agents_view`). True: the algorithm sees the agents jointly
        (observations ``[N, A, ...]``, actions ``[N, A, ...]``, rewards ``[N, A]``; MADDPG).
    """

    episodic_groups: int = 0
    joint_agents: bool = False


#: ``act(obs [N, ...], key, actor_state) -> (action, extras, actor_state)``.
ActFn = Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, Any, Any]]


def stateless(policy: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]]) -> ActFn:
    """An `ActFn` from ``policy(obs, key) -> (action, extras)`` that keeps no exploration state."""
    return lambda obs, key, actor_state: (*policy(obs, key), actor_state)


def collect(act: ActFn, env, env_params, spec: envs.EnvSpec, loop: envs.EnvLoopState, key: jax.Array,
            num_steps: int, normalize_obs: bool = False, unroll: int = 1, reward_scale_gamma: float | None = None,
            env_states: bool = False):
    """Run ``num_steps`` steps of the vectorised environments under a policy.

    Observation statistics are frozen for the whole rollout (so every observation in the batch
    is normalised the same way as when the policy saw it) and merged with the batch afterwards.

    ``act`` threads ``loop.actor``, the actors' exploration state (e.g. gSDE's noise matrices),
    from step to step; it persists across calls in the returned loop state.

    Args:
      act: ``act(obs [N, *obs_shape], key, actor_state) -> (action, extras, actor_state)``
        (`stateless` wraps a policy that keeps no state).
      env, env_params, spec: from `purejaxpg.envs.make`.
      loop: the environments' state.
      key: PRNG key for the whole rollout.
      num_steps: T (static).
      normalize_obs: whether the policy sees normalised observations (static).
      unroll: ``lax.scan`` unroll factor (static; a speed knob, results are identical).
      reward_scale_gamma: when set (static), the batch's rewards are divided by the running std of
        the discounted return with this discount (`purejaxpg.envs.scale_rewards`); the episode
        statistics stay in raw rewards.
      env_states: also return the env states each step acted in (static; for drawing an episode).
    Returns:
      ``(new_loop, Transition)`` with leaves ``[T, N, ...]``; with ``env_states``,
      ``(new_loop, Transition, states)`` with the env state's leaves ``[T, N, ...]``.
    """
    stats = loop.obs_stats

    def view(obs: jax.Array) -> jax.Array:
        return stats.normalize(obs) if normalize_obs else obs

    def one_step(loop, xs):
        act_key, env_keys = xs
        seen = view(loop.obs)
        action, extras, actor = act(seen, act_key, loop.actor)
        raw_obs, before = loop.obs, loop.env_state
        loop, out = envs.step(env, env_params, spec, loop.replace(actor=actor), action, env_keys)
        transition = Transition(seen, action, out.reward, out.terminated, out.truncated, out.next_obs, extras,
                                out.done, out.finished_return, out.finished_length)
        # raw observations are kept only to merge them into the statistics after the rollout
        return loop, (transition, raw_obs if normalize_obs else None, before if env_states else None)

    # row t holds the policy's key and the N env keys of step t
    num_envs = loop.obs.shape[0]
    step_keys = jax.random.split(key, (num_steps, num_envs + 1))
    loop, (traj, raw_obs, states) = jax.lax.scan(one_step, loop, (step_keys[:, 0], step_keys[:, 1:]), unroll=unroll)
    if normalize_obs:
        loop = loop.replace(obs_stats=stats.update(raw_obs))
        traj = traj.replace(next_obs=stats.normalize(traj.next_obs))
    if reward_scale_gamma is not None:
        loop, scaled = envs.scale_rewards(loop, traj.reward, traj.done, reward_scale_gamma)
        traj = traj.replace(reward=scaled)
    return (loop, traj, states) if env_states else (loop, traj)
