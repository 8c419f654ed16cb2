"""Save and restore the whole state of a (vmapped) training run between chunks.

A checkpoint holds everything needed to continue a run exactly where it stopped:

* the batched `purejaxpg.train.RunnerState` of all R runs: learner (parameters, optimiser
  state), environment state, observation statistics, PRNG key and iteration counter;
* the per-iteration metrics so far, ``{name: [R, I_done]}``;
* the hyperparameters as the runs used them (float32 scalars or ``[R]`` arrays);
* the settings: a JSON description (`purejaxpg.experiment.describe`: algorithm name,
  ``TrainConfig``, the algorithm's static fields, hyperparameters; plus seeds, chunking, ...).

Format: ``flax.serialization.to_state_dict`` of the state, packed with
``flax.serialization.msgpack_serialize``, behind a header (magic bytes + SHA-256 of the payload)
so that a damaged file is detected instead of restored. Restoring uses
``flax.serialization.from_state_dict`` onto a template from ``jax.eval_shape`` of the trainer's
vmapped ``init``: the template supplies the tree structure and every static (non-pytree) field,
such as the flax modules inside `purejaxpg.algorithms.common.ActorCriticState`, and every leaf's
shape and dtype is checked against it.

Crash safety: a checkpoint is written to a temporary file in the same folder, flushed and
``fsync``-ed, then renamed over its final name with ``os.replace`` (atomic on POSIX and Windows),
and the folder is ``fsync``-ed. The newest ``keep`` checkpoints are kept
(``ckpt-<iteration>.msgpack``), so a process killed at any point leaves the previous checkpoint
intact; :func:`latest` skips leftovers and damaged files and falls back to the newest good one.
One writer per folder.

Because the compiled chunk is the same function whatever the chunking, a run restored from a
checkpoint and continued gives bit-identical metrics to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import secrets
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from purejaxpg import train
from purejaxpg.config import ConfigError, hparams_to_arrays

MAGIC = b"PUREJAXPG-CHECKPOINT\x00v1\n"
FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)\.msgpack$")


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or does not match the trainer it is restored into."""


@dataclasses.dataclass
class Checkpoint:
    """A restored checkpoint.

    Attributes:
      runner: the batched ``RunnerState`` (leaves ``[R, ...]``), ready for
        ``train.run_chunked(trainer, keys, hparams, runner=runner)``.
      metrics: ``{name: [R, I_done]}`` metrics of the iterations run so far.
      hparams: the ``HParams`` the runs used (float32 scalars or ``[R]`` arrays).
      settings: the JSON settings saved with the run.
      iteration: iterations done (I_done).
      path: the file it came from.
      trainer: the trainer it was restored for (built from ``settings`` unless one was given).
    """

    runner: Any
    metrics: dict[str, np.ndarray]
    hparams: Any
    settings: dict[str, Any]
    iteration: int
    path: str
    trainer: train.Trainer


def checkpoint_path(directory: str, iteration: int) -> str:
    """``directory/ckpt-<iteration, 9 digits>.msgpack``."""
    return os.path.join(directory, f"ckpt-{iteration:09d}.msgpack")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """``[(iteration, path)]`` of the checkpoint files in ``directory``, newest first (unverified)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found, reverse=True)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder; os.replace is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``.

    Temporary file in the same folder (same file system, so the rename is atomic), flush + fsync,
    ``os.replace``, fsync of the folder. On any exception (including KeyboardInterrupt) the
    temporary file is removed and ``path`` is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _pack(payload: dict) -> bytes:
    body = serialization.msgpack_serialize(payload)
    return MAGIC + hashlib.sha256(body).digest() + body


def _unpack(data: bytes, path: str) -> dict:
    head = len(MAGIC) + 32
    if len(data) < head or not data.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a purejaxpg checkpoint (bad header; truncated or another format).")
    body = data[head:]
    if hashlib.sha256(body).digest() != data[len(MAGIC):head]:
        raise CheckpointError(f"{path} is damaged (checksum mismatch; probably truncated by a crash).")
    payload = serialization.msgpack_restore(body)
    if payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {payload.get('format')!r}; this purejaxpg reads {FORMAT_VERSION}.")
    return payload


def read(path: str) -> dict:
    """The verified raw content of one checkpoint file: ``{format, iteration, settings (JSON text),
    hparams, runner (state dict), metrics}``. Raises CheckpointError when it is damaged."""
    with open(path, "rb") as fh:
        return _unpack(fh.read(), path)


def save(directory: str, runner: Any, *, metrics: dict[str, np.ndarray], settings: dict[str, Any],
         hparams: Any, keep: int = 2) -> str:
    """Write a checkpoint of ``runner`` to ``directory/ckpt-<iteration>.msgpack`` atomically.

    Args:
      directory: created if missing; one writer per folder.
      runner: a batched ``RunnerState`` (leaves ``[R, ...]``, one iteration counter for all runs).
      metrics: ``{name: [R, I_done]}`` metrics so far.
      settings: JSON-serialisable description of the run (see :func:`build_from_settings`).
      hparams: the ``HParams`` the runs use (scalars or ``[R]`` leaves).
      keep: how many of the newest checkpoints to keep (at least 1); older ones and leftover
        temporary files of killed writers are deleted after the new file is in place.
    Returns:
      the path written (in a run of several processes, `purejaxpg.distributed`, only process 0
      writes; the others return the path it writes).
    """
    if keep < 1:
        raise ConfigError(f"keep={keep} must be at least 1.")
    os.makedirs(directory, exist_ok=True)
    host_runner = jax.device_get(runner)
    iterations = np.unique(np.asarray(host_runner.iteration))
    if iterations.size != 1:
        raise CheckpointError(f"the runs are at different iterations {iterations.tolist()}; "
                              "a batched run advances all runs together.")
    iteration = int(iterations[0])
    hp = hparams_to_arrays(hparams)
    payload = {
        "format": FORMAT_VERSION,
        "iteration": iteration,
        "settings": json.dumps(settings),
        "hparams": {f.name: np.asarray(getattr(hp, f.name)) for f in dataclasses.fields(hp)},
        "runner": serialization.to_state_dict(host_runner),
        "metrics": {name: np.asarray(values) for name, values in metrics.items()},
    }
    path = checkpoint_path(directory, iteration)
    if jax.process_index() != 0:  # one writer per folder: process 0 of a multi-process run
        return path
    atomic_write(path, _pack(payload))
    for _, old in list_checkpoints(directory)[keep:]:
        os.unlink(old)
    for leftover in glob.glob(os.path.join(directory, ".ckpt-*.tmp")):
        os.unlink(leftover)
    return path


def latest(directory: str) -> str | None:
    """Path of the newest checkpoint in ``directory`` that reads back intact, or None.

    Damaged files (e.g. a disk that lost the end of the newest one) are skipped with a warning;
    temporary files of interrupted writes are never considered.
    """
    found = _latest_payload(directory)
    return found[0] if found else None


def _latest_payload(directory: str) -> tuple[str, dict] | None:
    for _, path in list_checkpoints(directory):
        try:
            return path, read(path)
        except (CheckpointError, OSError, ValueError) as err:
            warnings.warn(f"skipping checkpoint {path}: {err}", RuntimeWarning, stacklevel=3)
    return None


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples that frozen dataclass fields hold (hidden=(64, 64))."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def build_from_settings(settings: dict[str, Any]):
    """``(algo, config, hparams)`` from saved settings (`purejaxpg.experiment.describe` format:
    ``{"algo", "train", "algo_settings", "hparams"}``). ``hparams`` leaves may be lists ([R])."""
    from purejaxpg import algorithms
    from purejaxpg.config import TrainConfig

    try:
        algo_cls = algorithms.get(settings["algo"])
        config = TrainConfig(**settings["train"])
        algo = algo_cls(**{k: _tuples(v) for k, v in settings["algo_settings"].items()})
        hparams = algo_cls.HParams(**{k: np.asarray(v, np.float32) for k, v in settings["hparams"].items()})
    except KeyError as err:
        raise CheckpointError(f"the saved settings lack {err}; they must come from experiment.describe.") from None
    except TypeError as err:  # a field that this version of the algorithm no longer has
        raise CheckpointError(f"the saved settings do not fit this version of purejaxpg: {err}") from None
    return algo, config, hparams


def runner_template(trainer: train.Trainer, keys: Any, hparams: Any) -> Any:
    """Shapes, dtypes and static fields of a batched ``RunnerState`` for ``keys`` ``[R, ...]``,
    from ``jax.eval_shape`` of the vmapped ``trainer.init`` (nothing is computed or compiled)."""
    hparams = hparams_to_arrays(hparams)
    axes = jax.tree.map(lambda x: 0 if np.ndim(x) == 1 else None, hparams)
    return jax.eval_shape(jax.vmap(trainer.init, in_axes=(0, axes)), keys, hparams)


def restore_runner(template: Any, state: dict, path: str = "checkpoint") -> Any:
    """Put the arrays of a saved state dict onto ``template`` (see :func:`runner_template`),
    checking every leaf's shape and dtype; returns a runner of device arrays."""
    try:
        restored = serialization.from_state_dict(template, state)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} does not match this trainer's state: {err}") from None

    def check(key_path, want, got):
        got = np.asarray(got)
        if tuple(want.shape) != got.shape or np.dtype(want.dtype) != got.dtype:
            raise CheckpointError(
                f"{path}: state leaf {jax.tree_util.keystr(key_path)} is {got.dtype}{list(got.shape)}, this trainer "
                f"expects {np.dtype(want.dtype)}{list(want.shape)}; restore with the settings it was saved with.")
        return jnp.asarray(got)

    return jax.tree_util.tree_map_with_path(check, template, restored)


def restore(location: str, trainer: train.Trainer | None = None) -> Checkpoint:
    """Restore the newest good checkpoint in a folder (or one file).

    Args:
      location: a checkpoint folder (newest intact file wins) or a ``ckpt-*.msgpack`` path.
      trainer: the trainer to restore into; default: rebuilt from the saved settings with
        :func:`build_from_settings` and `purejaxpg.train.make_train`.
    Returns:
      a :class:`Checkpoint`.
    """
    if os.path.isdir(location):
        found = _latest_payload(location)
        if found is None:
            raise CheckpointError(f"no intact checkpoint in {location}.")
        path, payload = found
    elif os.path.isfile(location):
        path, payload = location, read(location)
    else:
        raise CheckpointError(f"{location} does not exist.")
    settings = json.loads(payload["settings"])
    if trainer is None:
        algo, config, _ = build_from_settings(settings)
        trainer = train.make_train(algo, config)
    fields = {f.name for f in dataclasses.fields(trainer.algo.HParams)}
    if set(payload["hparams"]) != fields:
        raise CheckpointError(f"{path} holds hyperparameters {sorted(payload['hparams'])}, but "
                              f"{trainer.algo.name} has {sorted(fields)}.")
    hparams = trainer.algo.HParams(**{k: np.asarray(v, np.float32) for k, v in payload["hparams"].items()})
    keys = np.asarray(payload["runner"]["key"])
    runner = restore_runner(runner_template(trainer, keys, hparams), payload["runner"], path)
    metrics = {k: np.asarray(v) for k, v in payload["metrics"].items()}
    return Checkpoint(runner, metrics, hparams, settings, int(payload["iteration"]), path, trainer)


@dataclasses.dataclass
class CheckpointedRun:
    """Result of :func:`run`.

    Attributes:
      metrics: ``{name: [R, I]}`` of ALL iterations so far, including those before a resume.
      runner: the batched ``RunnerState`` at the end (or at the stop).
      finished: False when ``stop_after_chunks`` stopped the run early.
      checkpoint: path of the last checkpoint written (None if none was).
      compile_seconds, run_seconds, steps_per_second: of this call's chunks.
    """

    metrics: dict[str, np.ndarray]
    runner: Any
    finished: bool
    checkpoint: str | None
    compile_seconds: float
    run_seconds: float
    steps_per_second: float


class _StopRequested(Exception):
    pass


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=1) for k in parts[0]}


def run(trainer: train.Trainer, keys: Any, hparams: Any, directory: str, settings: dict[str, Any], *,
        chunk_iterations: int | None = None, every: int = 1, keep: int = 2,
        callback: Callable[[dict, Any, float], None] | None = None, stop_after_chunks: int | None = None,
        resume: Checkpoint | None = None, shard: str = "auto") -> CheckpointedRun:
    """`purejaxpg.train.run_chunked` with a checkpoint every ``every`` chunks and at the end.

    Args:
      trainer, keys, hparams, chunk_iterations, callback, shard: as in ``run_chunked``.
      directory: checkpoint folder (see :func:`save`); settings: saved with every checkpoint.
      every: checkpoint after every ``every``-th chunk of this call (and always after the last).
      keep: newest checkpoints kept.
      stop_after_chunks: stop (after checkpointing) once this many chunks ran in this call; for
        tests and for splitting a run over jobs of limited wall time.
      resume: a :class:`Checkpoint` to continue from (its runner and earlier metrics).
    Returns:
      a :class:`CheckpointedRun`.
    """
    if every < 1:
        raise ConfigError(f"checkpoint every={every} chunks must be at least 1.")
    if stop_after_chunks is not None and stop_after_chunks < 1:
        raise ConfigError(f"stop_after_chunks={stop_after_chunks} must be at least 1.")
    earlier = dict(resume.metrics) if resume is not None else {}
    collected: list[dict[str, np.ndarray]] = []
    state = {"path": resume.path if resume is not None else None, "runner": resume.runner if resume else None,
             "seconds": 0.0}

    def on_chunk(metrics: dict, runner: Any, elapsed: float) -> None:
        collected.append(metrics)
        state["runner"], state["seconds"] = runner, state["seconds"] + elapsed
        if callback is not None:
            callback(metrics, runner, elapsed)
        done = int(np.asarray(runner.iteration).reshape(-1)[0]) >= trainer.num_iterations
        stop = stop_after_chunks is not None and len(collected) >= stop_after_chunks and not done
        if done or stop or len(collected) % every == 0:
            state["path"] = save(directory, runner, metrics=_merge([earlier, *collected]), settings=settings,
                                 hparams=hparams, keep=keep)
        if stop:
            raise _StopRequested

    try:
        out = train.run_chunked(trainer, keys, hparams, chunk_iterations=chunk_iterations,
                                runner=resume.runner if resume is not None else None, callback=on_chunk,
                                shard=shard)
    except _StopRequested:
        steps = len(keys) * sum(next(iter(m.values())).shape[1] for m in collected) * trainer.config.batch_size
        sps = steps / state["seconds"] if state["seconds"] > 0 else float("nan")
        return CheckpointedRun(_merge([earlier, *collected]), state["runner"], False, state["path"],
                               float("nan"), state["seconds"], sps)
    return CheckpointedRun(_merge([earlier, out.metrics]), out.runner, True, state["path"],
                           out.compile_seconds, out.run_seconds, out.steps_per_second)
