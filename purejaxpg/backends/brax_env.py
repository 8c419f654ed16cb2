"""brax environments (``brax/<name>``) behind the gymnax 1.x interface the loop drives.

``make("inverted_pendulum")`` returns ``(env, env_params)`` where ``env`` is a
``gymnax.environments.environment.Environment``: gymnax's own ``step`` then does the auto-reset
(with a fresh reset key, unlike brax's ``AutoResetWrapper``, which returns to the episode's first
state) and fills ``info["final_observation"]``. The raw brax env is stepped here WITHOUT brax's
training wrappers; their two jobs are done as follows:

* time limit (brax's ``EpisodeWrapper``): the state counts steps, and ``truncated`` is
  ``time >= max_steps_in_episode and not terminated``, which is the wrapper's
  ``info["truncation"]``; ``terminated`` is the raw env's ``done`` (a fallen pendulum, a hopper
  that left its healthy range), i.e. the wrapper's ``done`` without the time limit. The learner
  bootstraps from V(final observation) on truncation only.
* auto-reset: gymnax's ``Environment.step``.

Actions: every brax env takes actions in [-1, 1] (the Box returned here; `purejaxpg.envs`
clips the policy's samples to it). Each env maps them to its actuators itself:
``inverted_pendulum`` rescales [-1, 1] linearly to its motor's ``ctrlrange`` [-3, 3], and the
motor's gear 100 turns that into a force of up to 300 N on the cart; the MJCF-based envs
(hopper, ant, ...) pass the action as the control, which the actuator clips to its ``ctrlrange``
(hopper's is [-1, 1]) and multiplies by its gear (200). Observations are flat float32 vectors.

Physics: brax offers four pipelines ('generalized', 'positional', 'spring', 'mjx').
`DEFAULT_BACKEND` is 'generalized' (``benchmarks/brax_speed.py``, whose table is in
``benchmarks/results/brax_speed.json``). 'spring' steps fastest on this CPU (about 3x
'generalized' on inverted_pendulum, 5x on hopper) and compiles fastest, but brax runs it (and
'positional') with a 0.02 s control step instead of 0.04 s for inverted_pendulum, a different
task from MuJoCo's InvertedPendulum: SAC that learns the 'generalized' pendulum (1000) in 2e4 steps
stayed below 250 on 'spring' and 'positional'. 'generalized' has MuJoCo's physics formulation
(generalized coordinates) and control step. 'mjx' (MuJoCo itself) is as slow here and compiles
no faster. Another pipeline is one call away, through the env-object path of
`purejaxpg.train.make_train`::

    env, env_params = brax_env.make("hopper", backend="spring")
    trainer = make_train(algo, TrainConfig(env_id="brax/hopper", ...), env=env, env_params=env_params)
"""

from __future__ import annotations

import contextlib
import functools
import io
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

with contextlib.redirect_stdout(io.StringIO()):
    # brax imports mujoco.mjx, which prints "Failed to import warp" when the optional NVIDIA Warp
    # package (GPU kernels, unused here) is absent; keep that line off the command line's output
    import brax.envs

from purejaxpg.errors import ConfigError

#: The physics pipeline `make` uses unless told otherwise (see the module docstring).
DEFAULT_BACKEND = "generalized"
#: The pipelines brax 0.14 provides.
BACKENDS = ("generalized", "positional", "spring", "mjx")


@struct.dataclass
class EnvParams:
    """Static-size parameters of a brax env: its time limit (brax's own default episode length)."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class EnvState:
    """The brax state of one env and the steps taken in its episode.

    Attributes:
      brax: a ``brax.envs.State`` (physics state, observation, reward, done, metrics, info),
        reward and done as float32 scalars.
      time: int32 steps taken in this episode.
    """

    brax: Any
    time: jax.Array


def names() -> list[str]:
    """The environment names brax has registered (``brax.envs.register_environment`` adds to them)."""
    return sorted(brax.envs._envs)  # brax has no public accessor for its registry


class BraxEnv(Environment):
    """A brax env with the gymnax 1.x interface (see the module docstring).

    Args:
      env: a raw (unwrapped) ``brax.envs.Env``, e.g. ``brax.envs.get_environment("hopper")``.
      name: the brax name, for messages.
    """

    def __init__(self, env: Any, name: str):
        super().__init__()
        self.brax_env = env
        self.env_name = name
        state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        if not hasattr(state.obs, "shape") or state.obs.ndim != 1:
            raise ConfigError(f"brax/{name} has observations of structure {jax.tree.map(lambda x: x.shape, state.obs)}; "
                              "purejaxpg takes flat vector observations.")
        self._obs_size = int(state.obs.shape[0])
        self._action_size = int(env.action_size)

    @property
    def name(self) -> str:
        return f"brax/{self.env_name}"

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    @staticmethod
    def _canonical(state: Any) -> Any:
        """The brax state with float32 reward and done, so that a reset and a stepped state have
        the same leaves (brax envs set e.g. ``reward=1.0``, a Python float)."""
        return state.replace(obs=jnp.asarray(state.obs, jnp.float32),
                             reward=jnp.asarray(state.reward, jnp.float32),
                             done=jnp.asarray(state.done, jnp.float32))

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """``brax_env.reset(key)``: observation ``[obs_size]`` float32 and the state at time 0."""
        state = self._canonical(self.brax_env.reset(key))
        return state.obs, EnvState(state, jnp.asarray(0, jnp.int32))

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        """One brax step (brax envs are deterministic given the action: ``key`` is unused).

        Args:
          state: the env's state; action: ``[action_size]`` in [-1, 1].
        Returns:
          ``(obs [obs_size], state, reward, terminated, info)``; ``terminated`` is brax's ``done``
          (never the time limit, see `is_truncated`).
        """
        del key
        next_state = self._canonical(self.brax_env.step(state.brax, jnp.asarray(action, jnp.float32)))
        terminated = next_state.done > 0.5
        return next_state.obs, EnvState(next_state, state.time + 1), next_state.reward, terminated, {}

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """The time limit reached without a termination: brax ``EpisodeWrapper``'s ``info["truncation"]``."""
        return jnp.logical_and(state.time >= params.max_steps_in_episode, state.brax.done <= 0.5)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self._obs_size,), jnp.float32)

    def action_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self._action_size,), jnp.float32)


@functools.lru_cache(maxsize=None)
def _env(name: str, backend: str) -> BraxEnv:
    return BraxEnv(brax.envs.get_environment(name, backend=backend), name)


def make(name: str, backend: str = DEFAULT_BACKEND, max_steps_in_episode: int = 1000) -> tuple[BraxEnv, EnvParams]:
    """The brax env ``name`` with the gymnax 1.x interface, and its params.

    Args:
      name: a brax name (`names`), e.g. ``"inverted_pendulum"``, ``"hopper"``.
      backend: the physics pipeline, one of `BACKENDS` (default `DEFAULT_BACKEND`).
      max_steps_in_episode: the time limit (brax's default episode length, 1000).
    Returns:
      ``(env, env_params)``; one env object per (name, backend) in a process.
    Raises:
      ConfigError: an unknown name (listing brax's) or backend.
    """
    if name not in names():
        raise ConfigError(f"brax has no environment {name!r}; it has: {', '.join(names())}.")
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not a brax physics pipeline; use one of {', '.join(BACKENDS)}.")
    if not isinstance(max_steps_in_episode, int) or max_steps_in_episode < 1:
        raise ConfigError(f"max_steps_in_episode={max_steps_in_episode!r} must be a positive integer.")
    return _env(name, backend), EnvParams(max_steps_in_episode=max_steps_in_episode)
