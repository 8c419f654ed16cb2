"""Asynchronous advantage actor-critic (A3C), serialised so that one compiled loop runs it reproducibly.

A3C (Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", Algorithm S3):
K actor-learner threads share one set of parameters theta and one RMSProp statistic. Each thread
loops: copy theta' <- theta; act for t_max steps with theta'; compute the n-step actor-critic
gradient at theta' (returns R_t = sum_{i<t_max-t} gamma^i r_{t+i} + gamma^{t_max-t} V(s_{t_max}));
apply it to theta, without locks, while the other threads do the same. A gradient therefore lands
on parameters that other threads have moved since it was read: it is *stale*.

**The serialised model built here.** The ``[T, N]`` batch of an iteration is split into K workers
of N/K environments each (worker k owns environments k N/K .. (k+1) N/K - 1). Updates to the
shared parameters are numbered: version v is the shared parameters after v applied gradients.

* Acting: worker k acts for T steps on its environments with ITS copy ``workers[k]`` of the
  parameters (one vmap over the K stacked copies; actions are drawn with one key for all N envs,
  so K workers holding equal copies act exactly as A2C's single policy).
* Learning: in turn k = 0 .. K-1 (one ``lax.scan``) worker k's gradient -- A2C's gradient, reused
  (`purejaxpg.algorithms.a2c.A2C.gradient`; by default GAE with lambda = 1, which on a segment of T
  steps is A3C's n-step return R_t above) -- is computed at its copy on its slice of the batch and
  applied to the shared parameters with the shared optimiser state (the statistics of Adam or
  RMSProp are shared, as A3C's "shared RMSProp"; gradient clipping is per worker gradient).
  Worker k's gradient is applied when the shared parameters are at version v0 + k, v0 the version
  before the iteration; its staleness is (v0 + k) - (the version its copy was read at).
* Reading: after the iteration's K updates (version v = v0 + K), each worker reads its copy for
  the next iteration from a ring of the last S + 1 versions: worker k reads version
  max(v + k - s_k, 0), so that its next gradient, landing at version v + k, is s_k updates stale.
  Acting comes before any update of an iteration, so a copy is at least k updates old when worker
  k's gradient lands (s_k >= k); the ring bounds it by S: s_k in [k, S], which needs S >= K - 1.

  ``delays="fixed"`` (default): s_k = S for every worker. With S = K - 1 (the default) this is
  exactly A3C's round robin of K equally fast threads in its steady state: each thread reads the
  shared parameters right after its own update, and the K - 1 other threads update before it
  does again. A larger S models slower reads (each gradient exactly S updates stale).
  ``delays="uniform"``: s_k drawn uniformly from {k, ..., S} per worker and iteration from the
  run's key: the bounded random delays of the analyses of asynchronous SGD (Recht et al. 2011,
  "Hogwild!"; Lian et al. 2015), reproducible because the key is the run's.

  In the first iterations the versions before 0 do not exist and a copy is version 0: staleness
  is at most S ("up to S updates stale"), and with fixed delays exactly S once S updates are done.
* K = 1, S = 0 is A2C's update exactly (same parameters, optimiser state and metrics for the
  same key; ``tests/test_a3c.py`` checks it).

What this keeps of A3C: stale gradients (bounded, reproducible delays), in-turn lock-step updates
of shared parameters and shared optimiser statistics by many small per-worker gradients (K times
as many optimiser steps per env step as A2C on the same batch), per-worker exploration with
different policy copies. What it does not keep: wall-clock asynchrony and the speed-up of parallel
CPU threads (the K gradients run one after another), the non-determinism of races, and Hogwild's
torn updates (a gradient here is applied to all parameters at once, never interleaved with another).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg import envs
from purejaxpg.algorithms import common
from purejaxpg.algorithms.a2c import A2C, A2CHParams
from purejaxpg.config import ConfigError

DELAYS = ("fixed", "uniform")


@struct.dataclass
class A3CState:
    """The learner state of A3C.

    Attributes:
      shared: the shared parameters and the shared optimiser state (an `common.ActorCriticState`).
      history: ring of the last S + 1 versions of the shared parameters, leaves ``[S + 1, ...]``;
        version v is in slot v mod (S + 1).
      workers: the K workers' copies of the parameters, leaves ``[K, ...]`` (what they act with and
        compute their next gradients at).
      read_version: ``[K]`` int32, the version each copy was read at.
      version: int32, the number of gradients applied to the shared parameters so far.
    """

    shared: common.ActorCriticState
    history: Any
    workers: Any
    read_version: jax.Array
    version: jax.Array


def read_versions(version: jax.Array, staleness: jax.Array) -> jax.Array:
    """The versions the K workers read so that worker k's next gradient is ``staleness[k]`` updates stale.

    Worker k's next gradient lands at version ``version + k`` (the workers apply in turn), so it
    reads version + k - staleness_k, or version 0 when that is earlier than the first version.

    Args:
      version: int32 scalar, the shared parameters' current version (updates applied so far).
      staleness: ``[K]`` int32, s_k in [k, S].
    Returns:
      ``[K]`` int32 versions, each in [version - S, version] and >= 0.
    """
    workers = jnp.arange(staleness.shape[0], dtype=jnp.int32)
    return jnp.maximum(version + workers - staleness, 0)


def draw_staleness(key: jax.Array, num_workers: int, max_staleness: int, delays: str) -> jax.Array:
    """``[K]`` int32 staleness s_k of the workers' next gradients: S each ("fixed"), or uniform on
    {k, ..., S} ("uniform"); worker k cannot be less than k updates stale (see the module docstring)."""
    if delays == "fixed":
        return jnp.full((num_workers,), max_staleness, jnp.int32)
    return jax.random.randint(key, (num_workers,), jnp.arange(num_workers), max_staleness + 1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class A3C(A2C):
    """A3C as K workers applying stale n-step actor-critic gradients in turn (see the module docstring).

    Every A2C setting applies to each worker's gradient (`purejaxpg.algorithms.a2c.A2C`); its
    hyperparameters are A2C's (`A2CHParams`).

    Attributes:
      num_workers: K; the N environments split into K workers of N / K each (N % K == 0). The
        default 4 is one worker per environment of the default 4 environments.
      max_staleness: S, the most updates a worker's gradient may lag behind the shared parameters;
        at least K - 1 (the workers act before the iteration's K updates). -1 (default): K - 1,
        equal-speed workers each reading right after its own update.
      delays: "fixed" (every gradient S updates stale) or "uniform" (worker k's staleness drawn
        from {k, ..., S} each iteration).
    """

    name: ClassVar[str] = "a3c"
    HParams: ClassVar[type] = A2CHParams

    num_workers: int = 4
    max_staleness: int = -1
    delays: str = "fixed"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ConfigError(f"num_workers={self.num_workers!r} must be a positive integer (K workers).")
        if isinstance(self.max_staleness, bool) or not isinstance(self.max_staleness, int) \
                or self.max_staleness < -1:
            raise ConfigError(f"max_staleness={self.max_staleness!r} must be a non-negative integer, or -1 "
                              f"for num_workers - 1.")
        if self.staleness < self.num_workers - 1:
            raise ConfigError(
                f"max_staleness={self.max_staleness} is below num_workers - 1 = {self.num_workers - 1}: all "
                f"{self.num_workers} workers act before the iteration's updates, so the last worker's gradient "
                f"lands {self.num_workers - 1} updates after its copy was read. Set max_staleness >= "
                f"{self.num_workers - 1} (or -1 for that), or use fewer workers.")
        if self.delays not in DELAYS:
            raise ConfigError(f"delays={self.delays!r} is not an option of a3c; choose one of "
                              f"{', '.join(repr(d) for d in DELAYS)}.")

    @property
    def staleness(self) -> int:
        """S: ``max_staleness``, or K - 1 when it is -1."""
        return self.num_workers - 1 if self.max_staleness == -1 else self.max_staleness

    def validate(self, spec: envs.EnvSpec, config) -> None:
        super().validate(spec, config)
        if config.num_envs % self.num_workers:
            raise ConfigError(f"num_envs={config.num_envs} does not split into num_workers={self.num_workers} "
                              f"workers of equal size; make num_envs a multiple of num_workers.")

    # ---- state and acting ----

    def init(self, key, spec: envs.EnvSpec, hparams: A2CHParams) -> A3CState:
        shared = super().init(key, spec, hparams)
        stack = lambda n: jax.tree.map(lambda p: jnp.broadcast_to(p, (n,) + p.shape), shared.params)  # noqa: E731
        return A3CState(shared, stack(self.staleness + 1), stack(self.num_workers),
                        jnp.zeros((self.num_workers,), jnp.int32), jnp.zeros((), jnp.int32))

    def policy_state(self, learner_state: A3CState) -> common.ActorCriticState:
        return learner_state.shared

    def by_worker(self, x: jax.Array, axis: int = 0) -> jax.Array:
        """Split the env axis of ``x`` (at ``axis``) into ``[K, N / K]`` and move K to the front."""
        shape = x.shape[:axis] + (self.num_workers, x.shape[axis] // self.num_workers) + x.shape[axis + 1:]
        return jnp.moveaxis(x.reshape(shape), axis, 0)

    def act(self, learner_state: A3CState, obs: jax.Array, key: jax.Array, actor_state: Any = ()):
        """``obs [N, ...] -> (action, {"log_prob": [N]}, actor_state)``; worker k's envs act with its copy.

        The K copies give the distributions of their N / K envs (a vmap), merged back into one
        ``[N]`` distribution sampled with one key, as `common.PolicyAlgorithm.act` samples.
        """
        shared = learner_state.shared
        merge = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  [K, N / K, ...] -> [N, ...]
        if not self.use_sde:
            dists = jax.vmap(lambda params, o: shared.dist(o, params))(learner_state.workers, self.by_worker(obs))
            dist = jax.tree.map(merge, dists)
            action = dist.sample(key)
            return action, {"log_prob": dist.log_prob(action)}, actor_state
        fresh = actor_state["step"] % actor_state["period"] == 0
        noise = jnp.where(fresh, jax.random.normal(key, actor_state["noise"].shape), actor_state["noise"])
        apply = lambda params, o, z: shared.policy.apply(params["policy"], o, z)  # noqa: E731
        dists, actions = jax.vmap(apply)(learner_state.workers, self.by_worker(obs), self.by_worker(noise))
        dist, action = jax.tree.map(merge, dists), merge(actions)
        actor_state = {**actor_state, "noise": noise, "step": actor_state["step"] + 1}
        return action, {"log_prob": dist.log_prob(action)}, actor_state

    # ---- the update: K stale gradients applied in turn ----

    def update(self, state: A3CState, batch, key, hparams: A2CHParams, progress):
        """K worker gradients applied in turn, then the workers' next copies read from the ring.

        Args:
          state: an `A3CState`; batch: `purejaxpg.rollout.Transition` ``[T, N, ...]`` collected by
            `act` (worker k's envs are columns k N/K .. (k+1) N/K - 1); key: gradient keys (critic="q")
            and the draws of ``delays="uniform"``; hparams: `A2CHParams`; progress: for ``anneal_lr``.
        Returns:
          ``(state, metrics)``: A2C's metrics averaged over the K gradients, ``staleness`` (mean over
          them of the updates applied since their copy was read) and ``max_staleness``.
        """
        K, slots = self.num_workers, self.staleness + 1
        batches = jax.tree.map(lambda x: self.by_worker(x, axis=1), batch)  # [K, T, N / K, ...]
        # K = 1 passes the update's key on unchanged: the same numbers as A2C's update in every variant
        gradient_keys = key[None] if K == 1 else jax.random.split(key, K)

        def apply_in_turn(carry, xs):
            shared, history, version = carry
            params, worker_batch, worker_key, read = xs
            grads, metrics = self.gradient(shared.replace(params=params), worker_batch, worker_key, hparams)
            shared, step_metrics = self.apply_gradient(shared, grads, hparams, progress)
            metrics = {**metrics, **step_metrics, "staleness": (version - read).astype(jnp.float32)}
            version = version + 1
            history = jax.tree.map(lambda ring, p: ring.at[version % slots].set(p), history, shared.params)
            return (shared, history, version), metrics

        (shared, history, version), metrics = jax.lax.scan(
            apply_in_turn, (state.shared, state.history, state.version),
            (state.workers, batches, gradient_keys, state.read_version))
        staleness = draw_staleness(jax.random.fold_in(key, K), K, self.staleness, self.delays)
        read = read_versions(version, staleness)
        workers = jax.tree.map(lambda ring: ring[read % slots], history)
        metrics = {**{name: jnp.mean(values) for name, values in metrics.items()},
                   "max_staleness": jnp.max(metrics["staleness"])}
        return A3CState(shared, history, workers, read, version), metrics
