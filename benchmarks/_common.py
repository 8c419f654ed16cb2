"""Shared helpers of the benchmark scripts: machine facts, timing purejaxpg, writing JSON."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
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


@dataclasses.dataclass
class Timed:
    """One compiled training call, compiled and run once already, ready to be timed.

    Attributes:
      name: label of the row it becomes.
      call: ``call() -> wall seconds`` of one more run of the compiled call (it blocks until done).
      steps: env steps one call takes (all seeds).
      compile_s: compile time (plus, where a library gives no split, its first run's overhead).
      report: ``report() -> dict`` of what the last call learned (final returns and the like).
      first_s: wall time of the first run, after compiling (``nan`` where it is not known).
      devices_used: devices the call's runs are split over.
      metrics: ``metrics() -> {name: [R, I]}``, the training metrics of the last call.
    """

    name: str
    call: Callable[[], float]
    steps: int
    compile_s: float
    report: Callable[[], dict[str, Any]]
    first_s: float = float("nan")
    devices_used: int = 1
    metrics: Callable[[], dict[str, np.ndarray]] = dict


def interleave(timed: list[Timed], rounds: int) -> dict[str, dict[str, np.ndarray]]:
    """Run every call in turn, ``rounds`` times, so that all share the machine's noise.

    Returns ``{name: {"seconds": [rounds], "cpu_seconds": [rounds]}}``: each call's wall time and
    the process's CPU time (user + system) during it.
    """
    out = {t.name: {"seconds": [], "cpu_seconds": []} for t in timed}
    for _ in range(rounds):
        for t in timed:
            cpu0 = time.process_time()
            out[t.name]["seconds"].append(t.call())
            out[t.name]["cpu_seconds"].append(time.process_time() - cpu0)
    return {name: {k: np.asarray(v) for k, v in d.items()} for name, d in out.items()}


def timing_fields(timed: Timed, measured: dict[str, np.ndarray]) -> dict[str, Any]:
    """Row fields of one `Timed` from its `interleave` times: best and median steps/s, and CPU use
    (None when ``measured`` has no ``cpu_seconds``)."""
    seconds = measured["seconds"]
    cpu = measured.get("cpu_seconds")
    return {
        "train_s": float(seconds.min()), "train_times_s": seconds.tolist(), "rounds": len(seconds),
        "steps_per_second": timed.steps / float(seconds.min()),
        "steps_per_second_median": timed.steps / float(np.median(seconds)),
        # CPU seconds of the process per wall second over the timed calls (1.0: one busy core)
        "cpu_per_wall": float(cpu.sum() / seconds.sum()) if cpu is not None else None,
        "compile_s": timed.compile_s,
    }


def round_ratios(numerator: np.ndarray, denominator: np.ndarray) -> dict[str, float]:
    """Per-round ratios of two interleaved series of wall times (``numerator[i] / denominator[i]``,
    e.g. the peer's time over ours: how many times faster we ran in round i): median, min, max."""
    r = np.asarray(numerator) / np.asarray(denominator)
    return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}


def prepare_purejaxpg(algo_name: str, env_id: str, overrides: dict[str, Any], num_seeds: int, seed: int = 0,
                      name: str = "purejaxpg") -> Timed:
    """Build and compile ``num_seeds`` vmapped seeds of an algorithm and run them once: a `Timed`.

    The call is `purejaxpg.train.run_chunked` in one chunk (its ``run_seconds`` are the wall
    time, compilation excluded). With several devices the seeds are split over them when they
    divide evenly, as the command line does (`purejaxpg.devices.runs_shard`).
    """
    import jax

    from purejaxpg import devices, experiment, results, train

    algo, config, hparams = experiment.build(algo_name, env_id, overrides)
    trainer = train.make_train(algo, config, hparams)
    keys = train.seed_keys(seed, num_seeds)
    shard = devices.runs_shard(num_seeds)
    devices_used = len(jax.devices()) if shard == "runs" else 1
    last = [train.run_chunked(trainer, keys, hparams, shard=shard)]

    def call() -> float:
        last[0] = train.run_chunked(trainer, keys, hparams, shard=shard)
        return last[0].run_seconds

    def report() -> dict[str, Any]:
        finals = results.final_returns(last[0].metrics)
        return {
            "library": "purejaxpg", "algo": algo_name, "env_id": env_id, "num_seeds": num_seeds,
            "devices_used": devices_used,
            "timesteps_per_seed": config.num_iterations * config.batch_size,
            "num_envs": config.num_envs, "num_steps": config.num_steps,
            "final_return": [float(x) for x in finals],
            "final_return_mean": float(np.nanmean(finals)), "final_return_worst": float(np.nanmin(finals)),
            "final_return_definition": "mean return of the episodes that ended in the last 10% of iterations",
        }

    steps = num_seeds * config.num_iterations * config.batch_size
    return Timed(name, call, steps, last[0].compile_seconds, report, last[0].run_seconds, devices_used,
                 lambda: last[0].metrics)


def time_purejaxpg(algo_name: str, env_id: str, overrides: dict[str, Any], num_seeds: int, seed: int = 0,
                   repeats: int = 1, keep_metrics: bool = False) -> dict[str, Any]:
    """Train ``num_seeds`` vmapped seeds of an algorithm; compile time, steady steps/s, final returns.

    ``repeats`` runs in all: `prepare_purejaxpg`'s first (its time excludes compiling) and
    ``repeats - 1`` more of the compiled call. ``steps_per_second`` is from the best of them,
    ``steps_per_second_median`` from the median, ``cpu_per_wall`` the process's CPU seconds per
    wall second over the runs after the first (None with one run). ``keep_metrics`` adds the last
    run's training metrics under ``"metrics"``.
    """
    timed = prepare_purejaxpg(algo_name, env_id, overrides, num_seeds, seed)
    measured = interleave([timed], repeats - 1)[timed.name] if repeats > 1 else None
    seconds = np.concatenate([[timed.first_s], measured["seconds"] if measured else []])
    row = {**timed.report(), **timing_fields(timed, {"seconds": seconds})}  # the first run's CPU time is unknown
    if measured:
        row["cpu_per_wall"] = timing_fields(timed, measured)["cpu_per_wall"]
    if keep_metrics:
        row["metrics"] = timed.metrics()
    return row


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

    timed = []
    for name, trainer, keys, hparams in variants:
        compile_seconds = train.run_chunked(trainer, keys, hparams).compile_seconds
        print(f"compiled {name} ({compile_seconds:.1f} s)", flush=True)
        call = (lambda tr=trainer, k=keys, h=hparams: train.run_chunked(tr, k, h).run_seconds)
        timed.append(Timed(name, call, 0, compile_seconds, dict))
    measured = interleave(timed, rounds)
    return {t.name: t.compile_s for t in timed}, {t.name: measured[t.name]["seconds"] for t in timed}


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
