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

:class:`SequenceReplay` (D4PG's N-step replay) keeps the same flat ring of single steps and
samples windows of ``length`` consecutive steps of one env, uniformly or prioritised
(Schaul et al. 2016) with flashbax's sum tree: see its docstring.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flashbax
import jax
import jax.numpy as jnp
from flashbax.buffers import sum_tree
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


# ---------------------------------------------------------------------------------------------
# N-step windows: D4PG's replay


@struct.dataclass
class Step:
    """One stored env step of a :class:`SequenceReplay` (leaves without a batch axis).

    Attributes:
      obs: ``[*obs_shape]``; action: ``[D]``; reward: ``[]``; terminated, truncated: ``[]`` bool;
      next_obs: ``[*obs_shape]`` the true next observation (the final one on a truncation).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array


def steps_from_batch(batch: Transition, action: jax.Array) -> Step:
    """The ``[T, N]`` steps of a rollout batch, with ``action`` ``[T, N, D]`` as the algorithm stores it."""
    return Step(batch.obs, action, batch.reward, batch.terminated, batch.truncated, batch.next_obs)


@struct.dataclass
class SequenceReplayState:
    """State of a :class:`SequenceReplay`.

    Attributes:
      items: flashbax's item-buffer state: the flat ring of `Step` s, written time-major.
      stride: int32, the number of envs N writing the ring: one env's consecutive steps sit N
        slots apart (set by every ``add`` from the batch's shape; 0 before the first).
      priorities: flashbax ``SumTreeState`` over window starts (one leaf per slot, priority^alpha;
        0 for a slot that does not start a complete window), or ``None`` for uniform sampling.
    """

    items: TrajectoryBufferState
    stride: jax.Array
    priorities: Any = None


@dataclasses.dataclass(frozen=True)
class SequenceReplay:
    """A ring of env steps sampled as windows of ``length`` consecutive steps of one env.

    The steps of a ``[T, N]`` batch are written time-major into a flat ring of ``buffer_size``
    slots (flashbax's item buffer), so the step after slot p of the same env is slot
    ``(p + N) mod buffer_size``, whatever the wrap-around. A window starting at slot p is the
    slots ``p, p + N, ..., p + (length - 1) N``; it may cross episode ends (the N-step return
    stops at the first: `purejaxpg.targets.n_step_window_return`). A window is *complete* once all
    its steps are written and none has been overwritten: the ``S - (length - 1) N`` oldest slots
    of the S stored ones start one.

    Uniform sampling draws complete windows uniformly with replacement. Prioritised sampling
    (Schaul et al. 2016, sec. 3.3) draws start slots with probability p_i^alpha / sum_k p_k^alpha from
    flashbax's sum tree (stratified, one draw per 1/B of the total); a window gets the largest
    priority seen so far when it becomes complete and 0 when a step of it is overwritten.

    Attributes:
      buffer_size: slots of the ring.
      batch_size: windows per sample.
      length: steps per window (D4PG's N).
      prioritised: prioritised instead of uniform sampling.
    """

    buffer_size: int
    batch_size: int
    length: int
    prioritised: bool = False

    def _items(self):  # flashbax's ring for storage only: the windows are drawn here
        return make(self.buffer_size, 1)

    def init(self, example: Step) -> SequenceReplayState:
        """An empty ring of ``buffer_size`` steps shaped like ``example``."""
        priorities = sum_tree.init(self.buffer_size) if self.prioritised else None
        return SequenceReplayState(self._items().init(example), jnp.zeros((), jnp.int32), priorities)

    def add(self, state: SequenceReplayState, steps: Step) -> SequenceReplayState:
        """Write a ``[T, N]`` batch of steps (time-major); with priorities, the windows completed by
        these steps get the largest priority recorded, those they break (overwrite or leave incomplete) 0."""
        num_steps, num_envs = steps.reward.shape[:2]
        items = self._items().add(state.items, steps)
        priorities = state.priorities
        if self.prioritised:
            written, reach = num_steps * num_envs, (self.length - 1) * num_envs
            # slots [c - reach, c + written): every window containing a new step starts here; the
            # first `written` of them are complete now (their last step is new)
            offset = jnp.arange(written + reach) - reach
            start = state.items.current_index + offset
            has_data = state.items.is_full | (start >= 0)
            value = jnp.where((offset < written - reach) & has_data, priorities.max_recorded_priority, 0.0)
            priorities = sum_tree.set_batch_scan(priorities, start % self.buffer_size, value)
        return state.replace(items=items, stride=jnp.asarray(num_envs, jnp.int32), priorities=priorities)

    def complete_windows(self, state: SequenceReplayState) -> jax.Array:
        """Number of complete windows (int32 scalar; <= 0 while fewer than ``length`` steps per env are in)."""
        return size(state.items) - (self.length - 1) * state.stride

    def sample(self, state: SequenceReplayState, key: jax.Array):
        """``(steps [B, length], start slots [B] int32, probabilities [B])`` of B windows.

        ``probabilities`` are the sampling probabilities of the start slots (for importance
        weights, :func:`importance_weights`); 1 / (number of complete windows) when uniform.
        Call only once :meth:`complete_windows` is positive.
        """
        if self.prioritised:
            start = sum_tree.stratified_sample(state.priorities, self.batch_size, key).astype(jnp.int32)
            probabilities = sum_tree.get_probability(state.priorities, start)
        else:
            count = jnp.maximum(self.complete_windows(state), 1)
            head = jnp.where(state.items.is_full, state.items.current_index, 0)
            logical = jax.random.randint(key, (self.batch_size,), 0, count)
            start = ((head + logical) % self.buffer_size).astype(jnp.int32)
            probabilities = jnp.full((self.batch_size,), 1.0, jnp.float32) / count
        slots = (start[:, None] + state.stride * jnp.arange(self.length)[None, :]) % self.buffer_size
        steps = jax.tree.map(lambda x: x[0, slots], state.items.experience)
        return steps, start, probabilities

    def set_priorities(self, state: SequenceReplayState, start: jax.Array, priorities: jax.Array,
                       exponent) -> SequenceReplayState:
        """Set the priorities of the windows at ``start`` slots ``[B]`` to ``priorities [B] ** exponent``
        (alpha of Schaul et al. 2016). A slot whose window is not complete (priority 0) stays 0;
        with duplicates the last wins (flashbax's ``set_batch_scan``)."""
        valid = sum_tree.get_batch(state.priorities, start) > 0
        value = jnp.where(valid, jnp.asarray(priorities, jnp.float32) ** exponent, 0.0)
        return state.replace(priorities=sum_tree.set_batch_scan(state.priorities, start, value))

    def size(self, state: SequenceReplayState) -> jax.Array:
        """Number of steps stored (int32 scalar)."""
        return size(state.items)


def importance_weights(probabilities: jax.Array, exponent) -> jax.Array:
    """Importance-sampling weights of prioritised replay, normalised by their maximum (Schaul et al. 2016, sec. 3.4):

        w_i = (S P(i))^-beta / max_j (S P(j))^-beta = (P(i) / min_j P(j))^-beta

    over the minibatch j (S, the number of items, cancels). A draw of probability 0 (possible
    only through rounding at the end of the sum tree) gets weight 0.

    Args:
      probabilities: ``[B]`` sampling probabilities P(i) of the drawn items.
      exponent: beta in [0, 1], scalar (may be traced); 0 gives weights 1.
    Returns:
      ``[B]`` weights in [0, 1].
    """
    positive = probabilities > 0
    smallest = jnp.min(jnp.where(positive, probabilities, jnp.inf))
    ratio = jnp.where(positive, probabilities / smallest, 1.0)
    return jnp.where(positive, ratio ** (-exponent), 0.0)


# flax.serialization (checkpoints) needs to know flashbax's state class
def _to_state_dict(state: TrajectoryBufferState) -> dict:
    return {"experience": serialization.to_state_dict(state.experience),
            "current_index": state.current_index, "is_full": state.is_full}


def _from_state_dict(target: TrajectoryBufferState, d: dict) -> TrajectoryBufferState:
    return target.replace(experience=serialization.from_state_dict(target.experience, d["experience"]),
                          current_index=d["current_index"], is_full=d["is_full"])


serialization.register_serialization_state(TrajectoryBufferState, _to_state_dict, _from_state_dict, override=True)
