"""Collect T steps of N environments with one ``lax.scan``: the library's only rollout loop."""

from __future__ import annotations

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


ActFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]]


def collect(act: ActFn, env, env_params, spec: envs.EnvSpec, loop: envs.EnvLoopState, key: jax.Array,
            num_steps: int, normalize_obs: bool = False, unroll: int = 1, reward_scale_gamma: float | None = None,
            act_noise: Callable[[jax.Array, jax.Array], Any] | None = None):
    """Run ``num_steps`` steps of the vectorised environments under a policy.

    Observation statistics are frozen for the whole rollout (so every observation in the batch
    is normalised the same way as when the policy saw it) and merged with the batch afterwards.

    When ``act_noise`` is given, the policy's noise for all T steps is drawn the same way, before
    the loop, and ``act`` gets step t's noise in place of its key.

    What gymnax's auto-reset draws at every step (a key split and ``reset_env``) does not depend
    on the policy, so for envs that use gymnax's own ``step`` it is computed for all T steps
    before the loop, in vectorised calls (`purejaxpg.envs.presample_resets`), and the loop
    only selects; same keys, same resets, T x N reset states held in memory.

    Args:
      act: ``act(obs [N, *obs_shape], key) -> (action, extras)``.
      env, env_params, spec: from `purejaxpg.envs.make`.
      loop: the environments' state.
      key: PRNG key for the whole rollout.
      num_steps: T (static).
      normalize_obs: whether the policy sees normalised observations (static).
      unroll: ``lax.scan`` unroll factor (static; a speed knob, results are identical).
      reward_scale_gamma: when set (static), the batch's rewards are divided by the running std of
        the discounted return with this discount (`purejaxpg.envs.scale_rewards`); the episode
        statistics stay in raw rewards.
      act_noise: optional ``act_noise(obs [N, ...], key) -> noise``, the random part of ``act``
        (it may read only ``obs``'s shape); then ``act(obs, noise)`` is the deterministic rest.
    Returns:
      ``(new_loop, Transition)`` with leaves ``[T, N, ...]``.
    """
    stats = loop.obs_stats

    def view(obs: jax.Array) -> jax.Array:
        return stats.normalize(obs) if normalize_obs else obs

    def one_step(loop, xs):
        act_key, env_keys, resets = xs
        seen = view(loop.obs)
        action, extras = act(seen, act_key)
        raw_obs = loop.obs
        loop, out = envs.step(env, env_params, spec, loop, action, env_keys, resets)
        transition = Transition(seen, action, out.reward, out.terminated, out.truncated, out.next_obs, extras,
                                out.done, out.finished_return, out.finished_length)
        # raw observations are kept only to merge them into the statistics after the rollout
        return loop, (transition, raw_obs if normalize_obs else None)

    # every key of the rollout in one batched split: row t holds the policy's key and the N env
    # keys of step t (a split inside the loop body would be two more hash kernels per step);
    # likewise the env keys' own split and the resets, when the env allows it
    num_envs = loop.obs.shape[0]
    step_keys = jax.random.split(key, (num_steps, num_envs + 1))
    act_keys, env_keys = step_keys[:, 0], step_keys[:, 1:]
    if act_noise is not None:  # act_noise reads only the observations' shape
        act_keys = jax.vmap(lambda k: act_noise(loop.obs, k))(act_keys)
    if envs.can_presample_resets(env):
        resets, env_keys = envs.presample_resets(env, env_params, env_keys), None
    else:
        resets = None
    loop, (traj, raw_obs) = jax.lax.scan(one_step, loop, (act_keys, env_keys, resets), unroll=unroll)
    if normalize_obs:
        loop = loop.replace(obs_stats=stats.update(raw_obs))
        traj = traj.replace(next_obs=stats.normalize(traj.next_obs))
    if reward_scale_gamma is not None:
        loop, scaled = envs.scale_rewards(loop, traj.reward, traj.done, reward_scale_gamma)
        traj = traj.replace(reward=scaled)
    return loop, traj
