"""The replay buffer of the off-policy algorithms: a fixed-size ring of transitions held in the learner state.

flashbax's item buffer (``flashbax.make_item_buffer``) underneath: ``init``, ``add`` and ``sample``
are pure functions of a pytree of fixed-shape arrays, so every run of a vmapped sweep holds its
own buffer, and sharding, checkpoints and resume treat the buffer like any other state. Sampling
is uniform with replacement over the transitions stored so far (``TrajectoryBufferState.current_index``
and ``is_full`` say how many). A ``[T, N]`` batch is added time-major, so when the ring is full the
oldest steps are overwritten first.

Stored per transition: the observation, the action, the reward, ``terminated`` and the true next
observation (the final observation on truncation), which is all a one-step target needs
(`purejaxpg.targets`). Observations are stored as the env gave them; the off-policy algorithms
reject observation and reward normalisation (a running normaliser would make stored data stale).
"""

from __future__ import annotations

import flashbax
import jax
import jax.numpy as jnp
from flashbax.buffers.trajectory_buffer import TrajectoryBufferState
from flax import serialization, struct

from purejaxpg.rollout import Transition


@struct.dataclass
class Experience:
    """One stored transition (leaves without a batch axis in the buffer's definition).

    Attributes:
      obs: ``[*obs_shape]``; action: ``[D]`` (in the algorithm's own action space); reward: ``[]``;
      terminated: ``[]`` bool; next_obs: ``[*obs_shape]`` the true next observation.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array


def make(buffer_size: int, batch_size: int):
    """A flashbax item buffer of ``buffer_size`` transitions that samples ``batch_size`` at a time.

    Returns:
      the buffer (static functions ``init``, ``add``, ``sample``); use :func:`init`, :func:`add`
      and :func:`sample` below.
    """
    return flashbax.make_item_buffer(max_length=buffer_size, min_length=1, sample_batch_size=batch_size,
                                     add_sequences=True, add_batches=True)


def init(buffer, example: Experience) -> TrajectoryBufferState:
    """An empty buffer state with room for the buffer's ``max_length`` transitions shaped like ``example``."""
    return buffer.init(example)


def from_batch(batch: Transition, action: jax.Array) -> Experience:
    """The ``[T, N]`` experience of a rollout batch, with ``action`` ``[T, N, D]`` as the algorithm stores it."""
    return Experience(batch.obs, action, batch.reward, batch.terminated, batch.next_obs)


def add(buffer, state: TrajectoryBufferState, experience: Experience) -> TrajectoryBufferState:
    """Write a ``[T, N]`` experience batch into the ring (T N transitions, time-major)."""
    return buffer.add(state, experience)


def sample(buffer, state: TrajectoryBufferState, key: jax.Array) -> Experience:
    """``[batch_size]`` transitions drawn uniformly with replacement from those stored so far.

    An empty buffer returns its zero-initialised slots (callers train only once it holds data).
    """
    return buffer.sample(state, key).experience


def size(state: TrajectoryBufferState) -> jax.Array:
    """Number of transitions stored (int32 scalar)."""
    capacity = jax.tree.leaves(state.experience)[0].shape[1]
    return jnp.where(state.is_full, capacity, state.current_index).astype(jnp.int32)


# flax.serialization (checkpoints) needs to know flashbax's state class
def _to_state_dict(state: TrajectoryBufferState) -> dict:
    return {"experience": serialization.to_state_dict(state.experience),
            "current_index": state.current_index, "is_full": state.is_full}


def _from_state_dict(target: TrajectoryBufferState, d: dict) -> TrajectoryBufferState:
    return target.replace(experience=serialization.from_state_dict(target.experience, d["experience"]),
                          current_index=d["current_index"], is_full=d["is_full"])


serialization.register_serialization_state(TrajectoryBufferState, _to_state_dict, _from_state_dict, override=True)
