"""Several processes (on one or several hosts) as one JAX system: ``jax.distributed``.

After :func:`initialize`, ``jax.devices()`` lists the devices of EVERY process (each process
reaches only its own, ``jax.local_devices()``), and `purejaxpg.train.run_chunked` splits the
runs (``shard="runs"``) or each run's environments (``shard="envs"``) over all of them. Every
process runs the same program on the same settings; each computes its share, the metrics and
the final runner are gathered onto every process, and only process 0 writes files
(:func:`is_writer`). The numbers are those of one process with as many devices
(``tests/test_distributed.py``). On CPUs the processes talk over gloo (JAX's default CPU
collectives).

Two hosts, each with 4 CPU cores, a sweep of 3 x 2 configurations x 4 seeds (24 runs over 8
devices); ``HOST0`` is the first host's address, 12355 any free port on it::

    # on HOST0
    python -m purejaxpg sweep --algo ppo --grid lr=1e-4,3e-4,1e-3 --grid clip_eps=0.1,0.2 --seeds 4 \\
        --cpu-devices 4 --coordinator HOST0:12355 --num-processes 2 --process-id 0 --out runs/s
    # on the second host: the same command with --process-id 1

``train`` takes the same flags; with ``--checkpoint-every`` only process 0 writes the checkpoints,
and ``train --resume DIR`` (given to every process, with the same flags) needs DIR readable by
every process (a shared filesystem across hosts). ``--cpu-devices auto`` counts each process's
share of the runs. The total device count must divide the runs for them to be split; otherwise
every process computes all runs by itself (correct, but no faster).

The flags may be left out when the environment says the same: ``JAX_COORDINATOR_ADDRESS=HOST0:12355
JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0`` (``JAX_COORDINATOR_ADDRESS`` and ``JAX_LOCAL_DEVICE_IDS`` are
also read by JAX itself). Under SLURM or Open MPI, where JAX detects all three by itself, call
``jax.distributed.initialize()`` directly instead: :func:`initialize` with nothing given does
nothing (one process). In Python::

    from purejaxpg import devices, distributed
    devices.use_cpu_cores(4)                      # before JAX starts: 4 CPU devices per process
    distributed.initialize("HOST0:12355", 2, 0)   # process 1 passes 1
    from purejaxpg import train                   # only now: importing gymnax starts JAX
    result = train.run_chunked(trainer, keys, hparams, shard="runs")   # same call in every process

``import purejaxpg``, ``purejaxpg.devices`` and this module leave JAX unstarted; modules that
import gymnax (``purejaxpg.train``, ``purejaxpg.envs``, ...) start it, so they come after.

Two processes on one machine (as the test does) work the same, with ``localhost`` as HOST0.
"""

from __future__ import annotations

import os
from typing import Sequence

from purejaxpg.errors import ConfigError

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
LOCAL_DEVICES_ENV = "JAX_LOCAL_DEVICE_IDS"


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer; set it to a number or unset it.") from None


def settings(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
             local_devices: int | Sequence[int] | None = None) -> dict | None:
    """The checked arguments of ``jax.distributed.initialize``, each taken from its argument or,
    when that is None, from the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``, ``JAX_LOCAL_DEVICE_IDS``); None when none of them is given anywhere (one
    process). Nothing of JAX runs here.

    Args:
      coordinator: ``"HOST:PORT"`` of process 0's coordination service.
      num_processes: how many processes take part (>= 1).
      process_id: this process's index, ``0 <= process_id < num_processes``.
      local_devices: ids of this process's local devices (None: all of them).
    Returns:
      ``{"coordinator_address", "num_processes", "process_id", "local_device_ids"}`` or None.
    Raises:
      ConfigError: a value missing or out of range, naming the flag or variable that fixes it.
    """
    coordinator = coordinator or os.environ.get(COORDINATOR_ENV, "").strip() or None
    num_processes = num_processes if num_processes is not None else _env_int(NUM_PROCESSES_ENV)
    process_id = process_id if process_id is not None else _env_int(PROCESS_ID_ENV)
    if local_devices is None and os.environ.get(LOCAL_DEVICES_ENV, "").strip():
        try:
            local_devices = [int(x) for x in os.environ[LOCAL_DEVICES_ENV].split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"{LOCAL_DEVICES_ENV}={os.environ[LOCAL_DEVICES_ENV]!r}: give comma-separated "
                              "device ids, e.g. 0,1") from None
    if coordinator is None and num_processes is None and process_id is None:
        return None
    if coordinator is None:
        raise ConfigError("several processes need the coordinator's address: --coordinator HOST:PORT "
                          f"(or {COORDINATOR_ENV}), HOST being process 0's host and PORT a free port on it.")
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"coordinator {coordinator!r}: write HOST:PORT, e.g. localhost:12355 or 10.0.0.1:12355.")
    if num_processes is None or process_id is None:
        raise ConfigError(f"coordinator {coordinator} is given; give also the number of processes and this "
                          f"process's id: --num-processes N --process-id I (or {NUM_PROCESSES_ENV}, "
                          f"{PROCESS_ID_ENV}).")
    if num_processes < 1:
        raise ConfigError(f"num_processes={num_processes}: give at least 1 process.")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"process_id={process_id}: with {num_processes} processes the ids are 0 to "
                          f"{num_processes - 1}; give each process a different one.")
    if isinstance(local_devices, int):
        local_devices = [local_devices]
    if local_devices is not None and (not local_devices or min(local_devices) < 0):
        raise ConfigError(f"local_devices={local_devices}: give non-negative device ids (or None for all).")
    return {"coordinator_address": coordinator, "num_processes": int(num_processes),
            "process_id": int(process_id), "local_device_ids": None if local_devices is None else list(local_devices)}


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               local_devices: int | Sequence[int] | None = None, *, timeout_seconds: int = 300) -> bool:
    """Join a run of several processes: ``jax.distributed.initialize`` after the checks of
    :func:`settings` (arguments, else the environment variables).

    Call it in every process before any JAX computation, after `purejaxpg.devices.use_cpu_cores`
    if that is used. Process 0 hosts the coordinator at ``coordinator``; the call returns once
    all ``num_processes`` processes have joined (or raises after ``timeout_seconds``).

    Args:
      coordinator, num_processes, process_id, local_devices: as in :func:`settings`.
      timeout_seconds: how long to wait for the other processes.
    Returns:
      True when this process joined a run of several processes; False when nothing was given
      (nothing is done: one process).
    Raises:
      ConfigError: bad or missing values (before anything connects), or JAX already started its
        devices in this process (the fix: call it first).
    """
    args = settings(coordinator, num_processes, process_id, local_devices)
    if args is None:
        return False
    import jax

    if jax.distributed.is_initialized():
        raise ConfigError("jax.distributed is already initialized in this process; call initialize() once.")
    try:
        jax.distributed.initialize(**args, initialization_timeout=timeout_seconds)
    except RuntimeError as err:
        if "before" in str(err).lower() or "backend" in str(err).lower():
            raise ConfigError("jax.distributed.initialize must run before JAX starts its devices (JAX said: "
                              f"{err}); call purejaxpg.distributed.initialize() first, before importing gymnax "
                              "or the purejaxpg modules that use it (purejaxpg.train, ...): importing gymnax "
                              "starts JAX.") from err
        raise
    return True


def is_writer() -> bool:
    """True in the process that writes files (outputs, checkpoints): process 0, or the only one."""
    import jax

    return jax.process_index() == 0
