"""Shared helpers of the benchmark scripts: machine facts, timing purejaxpg, writing JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing


def use_cpu_devices(count: int) -> None:
    """Start JAX with ``count`` CPU devices (`purejaxpg.devices.use_cpu_cores`); before any JAX work."""
    from purejaxpg import devices

    if devices.use_cpu_cores(count) != count:
        raise SystemExit(f"--cpu-devices {count}: XLA_FLAGS sets another device count; unset it")


def start_jax_cpu_backend(num_threads: int | None) -> None:
    """Start JAX's CPU backend with XLA's intra-op thread pool sized to ``num_threads``.

    XLA sizes that pool (the threads that run a compiled program's kernels) from the CPUs the
    process may use when the backend starts. With ``num_threads``, the process is restricted to
    its first ``num_threads`` CPUs while the backend starts and then given all of them back:
    XLA runs kernels on that many threads while Python and JAX's dispatch thread use the rest.
    Everything timed afterwards in the process, every library alike, runs on that pool.
    Must run before the first JAX computation; Linux only (``os.sched_setaffinity``).
    ``None`` does nothing: the backend starts as usual, with one thread per CPU.
    """
    if num_threads is None:
        return
    import jax

    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("--xla-cpu-threads needs os.sched_setaffinity (Linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if not 1 <= num_threads <= len(cpus):
        raise SystemExit(f"--xla-cpu-threads={num_threads}: pick 1 to {len(cpus)} (this process may use "
                         f"{len(cpus)} CPUs)")
    os.sched_setaffinity(0, set(cpus[:num_threads]))
    try:
        jax.devices("cpu")
    finally:
        os.sched_setaffinity(0, set(cpus))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import importlib.metadata as md

    import jax

    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "gymnax", "rejax", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "versions": versions,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }


def write_json(name: str, payload: dict[str, Any]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as fh:
        json.dump({"machine": machine(), **payload}, fh, indent=2, default=_default)
    return path


def _default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def time_purejaxpg(algo_name: str, env_id: str, overrides: dict[str, Any], num_seeds: int, seed: int = 0,
                   repeats: int = 1) -> dict[str, Any]:
    """Train ``num_seeds`` vmapped seeds of an algorithm; compile time, steady steps/s, final returns.

    The run is one compiled call (no chunks); with ``repeats > 1`` the same compiled executable
    runs again, the best wall time counts, and ``cpu_per_wall`` is the process's CPU seconds per
    wall second over the calls after the first. With several devices the seeds are split over
    them when they divide evenly, as the command line does (`purejaxpg.devices.runs_shard`).
    """
    import jax

    from purejaxpg import devices, experiment, results, train

    algo, config, hparams = experiment.build(algo_name, env_id, overrides)
    trainer = train.make_train(algo, config, hparams)
    keys = train.seed_keys(seed, num_seeds)
    shard = devices.runs_shard(num_seeds)
    best, compile_seconds, out = None, None, None
    cpu_seconds, run_seconds = 0.0, 0.0
    for i in range(repeats):
        cpu0 = time.process_time()
        out = train.run_chunked(trainer, keys, hparams, shard=shard)
        if i > 0:  # the first call compiles
            cpu_seconds, run_seconds = cpu_seconds + time.process_time() - cpu0, run_seconds + out.run_seconds
        compile_seconds = out.compile_seconds if compile_seconds is None else compile_seconds
        best = out.run_seconds if best is None else min(best, out.run_seconds)
    finals = results.final_returns(out.metrics)
    steps = num_seeds * config.num_iterations * config.batch_size
    return {
        "library": "purejaxpg", "algo": algo_name, "env_id": env_id, "num_seeds": num_seeds,
        "devices_used": len(jax.devices()) if shard == "runs" else 1,
        "timesteps_per_seed": config.num_iterations * config.batch_size,
        "num_envs": config.num_envs, "num_steps": config.num_steps,
        "compile_s": compile_seconds, "train_s": best, "steps_per_second": steps / best,
        # CPU seconds of the process per wall second over the calls after the first (1.0: one busy core)
        "cpu_per_wall": cpu_seconds / run_seconds if run_seconds else None,
        "final_return": [float(x) for x in finals],
        "final_return_mean": float(np.nanmean(finals)), "final_return_worst": float(np.nanmin(finals)),
        "final_return_definition": "mean return of the episodes that ended in the last 10% of iterations",
    }


def interleaved_run_seconds(variants: list[tuple[str, Any, Any, Any]], rounds: int
                            ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compile every trainer first, then run them in turn ``rounds`` times, so they share the noise.

    Args:
      variants: ``(name, trainer, keys, hparams)``, one per thing to time (``train.make_train``).
      rounds: timed runs of each.
    Returns:
      ``({name: compile seconds}, {name: [rounds] wall seconds of the run, compilation excluded})``.
    """
    from purejaxpg import train

    compile_seconds = {}
    for name, trainer, keys, hparams in variants:
        compile_seconds[name] = train.run_chunked(trainer, keys, hparams).compile_seconds
        print(f"compiled {name} ({compile_seconds[name]:.1f} s)", flush=True)
    seconds = {name: [] for name, *_ in variants}
    for _ in range(rounds):
        for name, trainer, keys, hparams in variants:
            seconds[name].append(train.run_chunked(trainer, keys, hparams).run_seconds)
    return compile_seconds, {name: np.asarray(t) for name, t in seconds.items()}


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A fixed-width text table; columns are (header, key, format)."""
    head = " | ".join(h for h, _, _ in columns)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for header, key, fmt in columns:
            value = row.get(key, "")
            cells.append(format(value, fmt).rjust(len(header)) if value not in ("", None) else "".rjust(len(header)))
        lines.append(" | ".join(cells))
    return "\n".join(lines)
