"""jaxmarl environments (``jaxmarl/<name>``) in the gymnax interface, with a leading agent axis.

jaxmarl's ``MultiAgentEnv`` takes and returns one entry per agent in dictionaries keyed by agent
name. :class:`JaxMARLEnv` stacks them in the order of ``env.agents``: observations ``[A, obs_dim]``
(agents whose observations are shorter are zero-padded to the longest), rewards ``[A]``, actions
``[A]`` (discrete) or ``[A, D]``. The episode ends for all agents at once, on jaxmarl's
``dones["__all__"]``: an end once the env's step counter reached ``max_steps`` is a time limit
(``truncated``, so learners bootstrap), any other a termination. On MPE every episode ends at its
time limit (26 steps: jaxmarl ends it on the step after the counter reaches ``max_steps = 25``).

`purejaxpg.envs` shows this env to MADDPG jointly and to any other algorithm as N * A streams of
one shared policy (`purejaxpg.envs.shared_agents_view`). Agents must share one action space.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxpg.errors import ConfigError



@contextlib.contextmanager
def _quiet_stdout():
    """Silence file descriptor 1 (jaxmarl prints about optional submodules through a console that
    ``contextlib.redirect_stdout`` does not reach)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


with _quiet_stdout():
    import jaxmarl
    from jaxmarl.environments import spaces as marl_spaces


@struct.dataclass
class EnvParams:
    """``max_steps_in_episode``: the env's time limit (0 when it has none)."""

    max_steps_in_episode: int = 0


def names() -> list[str]:
    """jaxmarl's registered environment names."""
    return list(jaxmarl.registered_envs)


def make(name: str, **kwargs: Any) -> tuple["JaxMARLEnv", EnvParams]:
    """``(env, params)`` for ``jaxmarl.make(name, **kwargs)`` wrapped in :class:`JaxMARLEnv`."""
    try:
        with _quiet_stdout():
            marl = jaxmarl.make(name, **kwargs)
    except (TypeError, ValueError, ImportError, ModuleNotFoundError) as err:
        raise ConfigError(f"jaxmarl could not make {name!r} ({type(err).__name__}: {err}); it may need "
                          "arguments or packages purejaxpg does not pass; MPE environments work as they are.") from err
    env = JaxMARLEnv(marl, name)
    return env, env.default_params


class JaxMARLEnv(Environment):
    """A jaxmarl ``MultiAgentEnv`` as a gymnax environment over stacked per-agent arrays.

    Attributes:
      marl: the wrapped jaxmarl env; agents: its agent names (the order of the agent axis);
      num_agents: A; obs_dim: length of the (padded) per-agent observation.
    """

    def __init__(self, marl: Any, name: str = ""):
        self.marl = marl
        self.agents = tuple(marl.agents)
        self.num_agents = len(self.agents)
        self._name = name or type(marl).__name__
        obs_sizes = [int(np.prod(marl.observation_space(a).shape)) for a in self.agents]
        self.obs_dim = max(obs_sizes)
        self._obs_sizes = tuple(obs_sizes)
        self._action_space = self._common_action_space()

    def _common_action_space(self):
        converted = []
        for agent in self.agents:
            space = self.marl.action_space(agent)
            if isinstance(space, marl_spaces.Discrete):
                converted.append(("discrete", int(space.n)))
            elif isinstance(space, marl_spaces.Box):
                shape = tuple(space.shape)
                low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
                high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
                converted.append(("box", shape, tuple(low.reshape(-1)), tuple(high.reshape(-1))))
            else:
                raise ConfigError(f"jaxmarl/{self._name}: agent {agent!r} has an action space of type "
                                  f"{type(space).__name__}; purejaxpg supports Discrete and Box.")
        if len(set(converted)) != 1:
            raise ConfigError(f"jaxmarl/{self._name}: its agents have different action spaces ({converted}); "
                              "purejaxpg's multi-agent adapter needs one action space shared by all agents.")
        kind = converted[0]
        if kind[0] == "discrete":
            return spaces.Discrete(kind[1])
        return spaces.Box(np.asarray(kind[2], np.float32).reshape(kind[1]),
                          np.asarray(kind[3], np.float32).reshape(kind[1]), kind[1], jnp.float32)

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=int(getattr(self.marl, "max_steps", 0) or 0))

    # ---- stacking -----------------------------------------------------------------------------
    def stack_obs(self, obs: dict) -> jax.Array:
        """``{agent: obs} -> [A, obs_dim]`` float32, each agent's observation flattened and zero-padded."""
        rows = []
        for agent, size in zip(self.agents, self._obs_sizes):
            flat = jnp.reshape(obs[agent], (-1,)).astype(jnp.float32)
            rows.append(jnp.pad(flat, (0, self.obs_dim - size)))
        return jnp.stack(rows)

    def unstack_actions(self, action: jax.Array) -> dict:
        """``[A]`` or ``[A, D]`` -> ``{agent: action}``."""
        return {agent: action[i] for i, agent in enumerate(self.agents)}

    # ---- the gymnax interface -----------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: EnvParams):
        obs, state = self.marl.reset(key)
        return self.stack_obs(obs), state

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: EnvParams | None = None):
        """One step of all agents with auto-reset: ``(obs [A, obs_dim], state, reward [A], terminated,
        truncated, info)`` with ``info["final_observation"]`` the observation before the reset.

        The key is split as jaxmarl's own ``step`` splits it, so the two give the same episodes.
        The episode ends on ``dones["__all__"]``; it is a truncation when the env's step counter has
        reached ``max_steps_in_episode`` (jaxmarl's MPE ends an episode on the step after its counter
        reaches ``max_steps``, so its episodes are ``max_steps + 1`` = 26 steps long).
        """
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, truncated = self._transition(key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        info = {"terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: EnvParams):
        """gymnax's per-step hook (without reset): ``(obs, state, reward, terminated, info)``."""
        obs, next_state, reward, terminated, _ = self._transition(key, state, action, params)
        return obs, next_state, reward, terminated, {}

    def _transition(self, key: jax.Array, state: Any, action: jax.Array, params: EnvParams):
        """jaxmarl's step without reset, stacked: ``(obs [A, obs_dim], state, reward [A], terminated,
        truncated)``; the episode's end on ``dones["__all__"]`` is a truncation once the step counter
        reached the time limit, a termination otherwise."""
        obs, next_state, rewards, dones, _ = self.marl.step_env(key, state, self.unstack_actions(action))
        reward = jnp.stack([jnp.asarray(rewards[a], jnp.float32) for a in self.agents])
        done = jnp.asarray(dones["__all__"], bool)
        truncated = jnp.logical_and(done, self.time_limit_reached(next_state, params))
        return self.stack_obs(obs), next_state, reward, jnp.logical_and(done, jnp.logical_not(truncated)), truncated

    def time_limit_reached(self, state: Any, params: EnvParams) -> jax.Array:
        """Whether the env's step counter has reached ``max_steps_in_episode`` (never without one)."""
        step = getattr(state, "step", None)
        if step is None:
            return jnp.asarray(False)
        limit = jnp.asarray(params.max_steps_in_episode)
        return jnp.logical_and(limit > 0, step >= limit)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """``Box [A, obs_dim]``: the stacked per-agent observations."""
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_agents, self.obs_dim), jnp.float32)

    def action_space(self, params: EnvParams):
        """ONE agent's action space (shared by all agents)."""
        return self._action_space
