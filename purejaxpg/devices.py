"""CPU cores as JAX devices, so that seed and hyperparameter sweeps run on every core.

On a CPU, JAX shows one device by default, and XLA runs each compiled program on it with one
pool of intra-op threads. A training step of this library is a long chain of small kernels (MLPs
of 64 units, a few environments per run): XLA does not spread such a chain over the cores, so 8
vmapped PPO seeds on the 2-core benchmark machine ran no faster with two pool threads than with
one (``benchmarks/ppo_cartpole.py --xla-cpu-threads``). JAX can instead present the cores as
several CPU devices (``jax_num_cpu_devices``); ``train.run_chunked(..., shard="runs")`` then
gives each device its own share of the runs, the shares run at the same time on different
cores, and every run has the episodes it has on one device; its float diagnostics may differ in
the last bits, because a smaller vmapped batch of runs can round a mean differently
(``tests/test_devices.py``).

The device count is fixed when JAX starts its backends, so :func:`use_cpu_cores` must run before
the first JAX computation of the process. The command line calls it for you
(``python -m purejaxpg train --cpu-devices auto``, the default).
"""

from __future__ import annotations

import os
import re

from purejaxpg.errors import ConfigError


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def forced_host_device_count() -> int | None:
    """The count set by ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, else None."""
    match = re.search(r"--xla_force_host_platform_device_count=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(match.group(1)) if match else None


def use_cpu_cores(num_devices: int | None = None, *, num_runs: int | None = None, strict: bool = True) -> int:
    """Make JAX present ``num_devices`` CPU devices (default: one per usable core, or as many as
    ``num_runs`` runs split evenly over, :func:`devices_for_runs`).

    Call it right after ``import jax``, before any JAX computation. An explicit
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` wins and is left as it is, and so does
    ``JAX_NUM_CPU_DEVICES=N`` when ``num_devices`` is None. On a
    machine with an accelerator the default backend stays the accelerator; only the CPU
    client's device count changes.

    Args:
      num_devices: how many CPU devices; None for the default above.
      num_runs: with ``num_devices`` None, the number of runs to place (None: one device per core).
      strict: when JAX has already started, raise (True) or keep its current devices (False).
    Returns:
      the number of CPU devices JAX will use.
    Raises:
      ConfigError: ``num_devices < 1``, or JAX already started with another count and ``strict``.
    """
    import jax

    forced = forced_host_device_count()
    if forced is not None:
        return forced
    if num_devices is None and os.environ.get("JAX_NUM_CPU_DEVICES", "").strip():
        return len(jax.devices("cpu"))  # JAX read it when it was imported
    if num_devices is not None:
        count = int(num_devices)
    else:
        count = usable_cores() if num_runs is None else devices_for_runs(num_runs)
    if count < 1:
        raise ConfigError(f"cpu_devices={count}: give at least 1 CPU device (or 'auto', one per core).")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as err:  # backends already initialised: the count is fixed for this process
        current = len(jax.devices("cpu"))
        if strict and current != count:
            raise ConfigError(
                f"cpu_devices={count}: JAX has already started with {current} CPU device(s), and that "
                f"count is fixed for the process; call purejaxpg.devices.use_cpu_cores() before any JAX "
                f"computation, or start Python with JAX_NUM_CPU_DEVICES={count}."
            ) from err
        return current
    return count


def devices_for_runs(num_runs: int, cores: int | None = None) -> int:
    """The most devices, at most ``cores`` (default :func:`usable_cores`), over which
    ``num_runs`` runs split evenly: the largest divisor of ``num_runs`` not above ``cores``.

    E.g. 8 runs on 2 cores -> 2, on 6 cores -> 4; 3 runs on 2 cores -> 1; 1 run -> 1.
    """
    cores = usable_cores() if cores is None else cores
    if num_runs < 1 or cores < 1:
        return 1
    return max(d for d in range(1, min(num_runs, cores) + 1) if num_runs % d == 0)


def runs_shard(num_runs: int) -> str:
    """``"runs"`` when ``num_runs`` splits evenly over ``jax.devices()`` (and there are several),
    else ``"none"``: the ``shard`` argument of ``train.run_chunked`` that spreads whole runs over
    devices and never splits one run over several."""
    import jax

    count = len(jax.devices())
    return "runs" if count > 1 and num_runs % count == 0 else "none"
