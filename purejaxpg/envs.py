"""Environments: gymnax, brax and jaxmarl by id, or your own object; vectorised stepping, episode statistics, observation normalisation.

An id picks its backend by prefix: ``"CartPole-v1"`` is gymnax, ``"brax/inverted_pendulum"`` brax
and ``"jaxmarl/MPE_simple_spread_v3"`` jaxmarl (`purejaxpg.backends`; each adapter presents the
gymnax interface). `from_env` takes any object with the gymnax interface, e.g. one you wrote.

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

from purejaxpg import backends
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
      num_agents: A, the agents of a multi-agent env (1 for a single-agent env). A multi-agent
        env's observation shape is ``(A, obs_dim)`` and its action one per agent (joint view).
      share_agents: True when the learner sees the A agents of each of the N envs as N * A
        environments of one shared policy (`shared_agents_view`): observations ``(obs_dim,)``,
        one reward and one action per agent stream.
    """

    env_id: str
    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int = 0
    action_dim: int = 0
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    max_episode_steps: int = 0
    num_agents: int = 1
    share_agents: bool = False

    @property
    def obs_size(self) -> int:
        return int(np.prod(self.obs_shape))

    @property
    def joint_agents(self) -> bool:
        """True for the joint view of a multi-agent env (per-agent leading axis in obs, action, reward)."""
        return self.num_agents > 1 and not self.share_agents

    def streams(self, num_envs: int) -> int:
        """Environments the learner sees: N, or N * A when the agents are shared streams."""
        return num_envs * self.num_agents if self.share_agents else num_envs


def shared_agents_view(spec: EnvSpec) -> EnvSpec:
    """The spec of a multi-agent env seen as N * A single-agent streams of one shared policy
    (parameter sharing; no new algorithm code). A single-agent spec is returned unchanged."""
    if spec.num_agents <= 1 or spec.share_agents:
        return spec
    return dataclasses.replace(spec, obs_shape=spec.obs_shape[1:], share_agents=True)


def registered_env_ids(backend: str | None = None) -> list[str]:
    """Environment ids: gymnax's (``backend=None``), or a backend's with its prefix (``"brax"``, ``"jaxmarl"``)."""
    if backend is None:
        return list(gymnax.registered_envs)
    return [f"{backend}/{name}" for name in backends.load(backend).names()]


def check_env_id(env_id: str) -> None:
    """Raise a ConfigError naming the closest ids when ``env_id`` is not an id a backend can make."""
    if not isinstance(env_id, str):
        raise ConfigError(f"env_id={env_id!r} must be a string id; to train on an env object, pass it as "
                          "make_train(algo, config, env=my_env, env_params=my_params).")
    prefix, name = backends.split_id(env_id)
    known = registered_env_ids(prefix)
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if prefix is None:
            raise ConfigError(
                f"env_id={env_id!r} is not a gymnax environment.{hint} "
                f"Pass one of gymnax.registered_envs, e.g. 'CartPole-v1' or 'Pendulum-v1', or a "
                f"'brax/<name>' or 'jaxmarl/<name>' id."
            )
        raise ConfigError(f"env_id={env_id!r}: {prefix} has no environment {name!r}.{hint} "
                          f"It has: {', '.join(known)}.")


def make(env_id: str) -> tuple[Any, Any, EnvSpec]:
    """Make an environment by id (gymnax, or ``brax/<name>``, ``jaxmarl/<name>``).

    Returns:
      ``(env, env_params, spec)``; raises ``ConfigError`` for an unknown id or a missing backend.
    """
    check_env_id(env_id)
    prefix, name = backends.split_id(env_id)
    if prefix is None:
        env, env_params = gymnax.make(env_id)
    else:
        env, env_params = backends.load(prefix).make(name)
    return env, env_params, _spec(env_id, env, env_params)


def from_env(env: Any, env_params: Any = None, name: str | None = None) -> tuple[Any, Any, EnvSpec]:
    """``(env, env_params, spec)`` for an environment object with the gymnax interface (e.g. a
    subclass of ``gymnax.environments.environment.Environment`` you wrote).

    Args:
      env: has ``reset(key, params)``, ``step(key, state, action, params)`` returning
        ``(obs, state, reward, terminated, truncated, info)`` with auto-reset and
        ``info["final_observation"]``, ``observation_space(params)`` and ``action_space(params)``
        (a gymnax ``Discrete`` or ``Box``).
      env_params: its params (default ``env.default_params``).
      name: the run's ``env_id`` label (default: the class name).
    Raises:
      ConfigError: a missing method, or an action space other than Discrete / Box.
    """
    missing = [m for m in ("reset", "step", "observation_space", "action_space") if not callable(getattr(env, m, None))]
    if missing:
        raise ConfigError(f"{type(env).__name__} has no {', '.join(missing)}: an env object needs the gymnax "
                          "interface (subclass gymnax.environments.environment.Environment and implement "
                          "reset_env, step_env, observation_space and action_space).")
    if env_params is None:
        env_params = getattr(env, "default_params", None)
    if name is None:
        label = getattr(env, "name", None)
        name = label if isinstance(label, str) and label else type(env).__name__
    return env, env_params, _spec(name, env, env_params)


def _spec(env_id: str, env, env_params) -> EnvSpec:
    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    max_steps = int(getattr(env_params, "max_steps_in_episode", 0))
    obs_shape = tuple(int(d) for d in obs_space.shape)
    num_agents = int(getattr(env, "num_agents", 1))
    if isinstance(act_space, spaces.Discrete):
        return EnvSpec(env_id, obs_shape, True, num_actions=int(act_space.n), max_episode_steps=max_steps,
                       num_agents=num_agents)
    if isinstance(act_space, spaces.Box):
        shape = tuple(act_space.shape) or (1,)  # a multi-agent env's space is one agent's
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
            num_agents=num_agents,
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


def _env_keys(key: jax.Array, copies: int) -> jax.Array:
    """``[copies]`` step keys from one key, or the first ``copies`` of keys already split."""
    batched = key.ndim == (1 if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else 2)
    return key[:copies] if batched else jax.random.split(key, copies)


def _agent_streams(spec: EnvSpec, x: jax.Array) -> jax.Array:
    """``[N, A, ...] -> [N * A, ...]`` when the agents are shared streams (identity otherwise)."""
    return x.reshape((-1,) + x.shape[2:]) if spec.share_agents else x


def _per_agent_flag(spec: EnvSpec, flag: jax.Array) -> jax.Array:
    """An env's ``[N]`` end-of-episode flag repeated for its A agent streams when they are shared."""
    return jnp.repeat(flag, spec.num_agents, axis=0) if spec.share_agents else flag


def reset(env, env_params, spec: EnvSpec, key: jax.Array, num_envs: int, group_size: int = 1,
          previous: EnvLoopState | None = None) -> EnvLoopState:
    """Reset ``num_envs`` environments.

    Args:
      key: one key; split into one reset key per group.
      num_envs: N (static). With a multi-agent env seen as shared streams (``spec.share_agents``)
        the loop state holds N * A streams of observations and episode statistics.
      group_size: G (static, divides N): envs ``[g*G, (g+1)*G)`` share a reset key and so start
        from the same state (GRPO's groups); their later step keys differ. 1 = independent envs.
      previous: a loop state whose normalisation statistics and actor state are kept (default:
        fresh statistics, no actor state).
    """
    group_keys = jax.random.split(key, num_envs // group_size)
    keys = jnp.repeat(group_keys, group_size, axis=0)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    obs = _agent_streams(spec, obs)
    if previous is None:
        obs_stats, return_stats, actor = RunningMeanStd.create(spec.obs_shape), RunningMeanStd.create(()), ()
    else:
        obs_stats, return_stats, actor = previous.obs_stats, previous.return_stats, previous.actor
    streams = spec.streams(num_envs)
    zeros = jnp.zeros((streams,), jnp.float32)
    # the discounted return for reward scaling follows the reward's shape: [N, A] in the joint view
    discounted = jnp.zeros((num_envs, spec.num_agents), jnp.float32) if spec.joint_agents else zeros
    return EnvLoopState(env_state, obs.astype(jnp.float32), zeros, zeros.astype(jnp.int32), obs_stats,
                        return_stats, discounted, actor)


def scale_rewards(loop: EnvLoopState, reward: jax.Array, done: jax.Array, gamma: float):
    """Divide rewards by the running std of the discounted return (as SB3's VecNormalize does).

    The running discounted return R_t = gamma R_{t-1} + r_t (reset after an episode ends) is
    computed over the batch with a scan over T, merged into ``loop.return_stats``, and the batch's
    rewards are divided by sqrt(var(R) + 1e-8). Returns ``(new_loop, scaled_reward [T, N])``
    (``[T, N, A]`` per-agent rewards in a multi-agent env's joint view, with ``done [T, N]``).
    """

    def accumulate(running, step):
        r, d = step
        running = running * gamma + r
        d = d.reshape(d.shape + (1,) * (running.ndim - d.ndim))
        return jnp.where(d, 0.0, running), running

    last, discounted = jax.lax.scan(accumulate, loop.discounted_return, (reward, done))
    stats = loop.return_stats.update(discounted)
    return loop.replace(return_stats=stats, discounted_return=last), reward / jnp.sqrt(stats.var + 1e-8)


def step(env, env_params, spec: EnvSpec, loop: EnvLoopState, action: jax.Array, key: jax.Array):
    """Step N environments once (auto-reset inside the env) and track episode statistics.

    Args:
      loop: the current ``EnvLoopState``.
      action: ``[N]`` int actions or ``[N, D]`` float actions as sampled by the policy; for a
        multi-agent env ``[N, A]`` / ``[N, A, D]`` (joint view) or ``[N * A]`` / ``[N * A, D]``
        (shared streams).
      key: one key, split into N step keys, or step keys already split (the first N are used).
    Returns:
      ``(new_loop, StepOutput)``. For a multi-agent env in the joint view ``reward`` is ``[N, A]``
      and the episode statistics are the mean over agents of each agent's return; with shared
      streams every leaf is per agent stream, ``[N * A]``.
    """
    streams = loop.obs.shape[0]
    per_action = () if spec.discrete else (spec.action_dim,)
    agents = (spec.num_agents,) if spec.joint_agents else ()
    chex.assert_shape(action, (streams,) + agents + per_action)
    copies = streams // spec.num_agents if spec.share_agents else streams
    if spec.share_agents:
        action = action.reshape((copies, spec.num_agents) + per_action)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        _env_keys(key, copies), loop.env_state, env_action(spec, action), env_params)
    reward = _agent_streams(spec, reward.astype(jnp.float32))
    terminated, truncated = _per_agent_flag(spec, terminated), _per_agent_flag(spec, truncated)
    done = jnp.logical_or(terminated, truncated)
    ep_return = loop.episode_return + (jnp.mean(reward, axis=-1) if spec.joint_agents else reward)
    ep_length = loop.episode_length + 1
    out = StepOutput(
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        next_obs=_agent_streams(spec, info["final_observation"]).astype(jnp.float32),
        done=done,
        finished_return=jnp.where(done, ep_return, 0.0),
        finished_length=jnp.where(done, ep_length, 0),
    )
    new_loop = loop.replace(
        env_state=env_state,
        obs=_agent_streams(spec, obs).astype(jnp.float32),
        episode_return=jnp.where(done, 0.0, ep_return),
        episode_length=jnp.where(done, 0, ep_length),
    )
    return new_loop, out
