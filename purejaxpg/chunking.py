"""Row-wise batch computations in chunks of bounded size: one knob for XLA:CPU's threading.

A whole-batch computation outside the per-step loops (the critic over a batch's ``T x N``
observations, the ``T x N`` presampled resets) compiles to a few large kernels. On the
CPU, XLA splits a large kernel over its intra-op thread pool and hands the rest of the program on
to whichever thread finished last. For a single run of PPO at the classic config (4 envs x 128
steps) those hand-offs cost more than the kernels: the run moved between the threads several times
per iteration, spent 1.15-1.36 CPU seconds per wall second and was slower than on a one-thread pool
(README, Results).
Computing the same rows in chunks of at most :data:`CPU_MAX_ROWS` keeps every kernel small enough
to run inline on one thread; the numbers do not change (each row is computed by the same
arithmetic; tests check it), only where they are computed. On GPU and TPU the default is no
chunking: there a larger kernel is simply better.

``benchmarks/ppo_cartpole.py`` measures the effect; the README gives the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxpg.config import ConfigError

#: Rows per chunk on the CPU: the minibatch size of the classic PPO config, whose kernels XLA runs
#: on one thread.
CPU_MAX_ROWS = 128

MaxRows = int | str | None


def resolve_max_rows(max_rows: MaxRows = "auto") -> int | None:
    """The row limit ``max_rows`` stands for.

    Args:
      max_rows: ``"auto"`` (:data:`CPU_MAX_ROWS` when JAX's default backend is the CPU, else
        ``None``), ``None`` (no limit), or a positive int.
    Returns:
      A positive int, or ``None`` for no chunking.
    """
    if max_rows == "auto":
        return CPU_MAX_ROWS if jax.default_backend() == "cpu" else None
    if max_rows is None:
        return None
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"max_rows={max_rows!r} must be a positive int, None (no chunking) or 'auto'.")
    return max_rows


def map_rows(fn: Callable[[Any], Any], xs: Any, max_rows: MaxRows = "auto") -> Any:
    """``fn(xs)`` for a row-wise ``fn``, computed on at most ``max_rows`` rows at a time.

    ``R`` rows split into ``R // m`` chunks of ``m = max_rows`` rows, run by one ``lax.map``
    (a loop, so each chunk's kernels see ``m`` rows), plus one call on the last ``R mod m`` rows.

    Args:
      fn: a function of a pytree whose leaves share the leading axis ``[R, ...]``, returning a
        pytree with the same leading axis, where output row i depends only on input row i (a
        network applied to a batch of observations, a ``vmap`` over keys).
      xs: the pytree of ``[R, ...]`` leaves (arrays or PRNG key arrays).
      max_rows: see :func:`resolve_max_rows`.
    Returns:
      ``fn(xs)``: the same pytree ``fn`` returns on all rows at once, leaves ``[R, ...]``.
    """
    limit = resolve_max_rows(max_rows)
    rows = jax.tree.leaves(xs)[0].shape[0]
    if limit is None or rows <= limit:
        return fn(xs)
    chunks, rest = divmod(rows, limit)
    cut = chunks * limit
    head = jax.tree.map(lambda x: x[:cut].reshape((chunks, limit) + x.shape[1:]), xs)
    out = jax.tree.map(lambda y: y.reshape((cut,) + y.shape[2:]), jax.lax.map(fn, head))
    if rest:
        tail = fn(jax.tree.map(lambda x: x[cut:], xs))
        out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, tail)
    return out
