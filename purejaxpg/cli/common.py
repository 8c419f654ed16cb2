"""What the commands share: flags from the settings dataclasses and the overrides they give,
``--cpu-devices`` (applied before JAX starts), progress printing, version info and error exits.

Nothing here imports JAX at module level: ``--cpu-devices`` must be applied before JAX starts,
so the JAX-using modules are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

import numpy as np

CPU_DEVICES_HELP = ("CPU devices JAX presents: 'auto' (default) as many as the runs (seeds x configurations) "
                    "split evenly over, at most one per usable core; or N. Runs are split over the devices "
                    "when they divide evenly, each run computed as on one device (purejaxpg.devices). "
                    "Has effect only before JAX starts, i.e. from the command line")


def parse_tuple(text: str) -> tuple[int, ...]:
    """The integers of a comma-separated flag value (``--hidden 64,64``); blank parts are skipped."""
    return tuple(int(x) for x in text.split(",") if x.strip())


def add_setting_flags(parser: argparse.ArgumentParser, algo_cls: type) -> None:
    """One flag per setting of the run, of ``algo_cls`` and its hyperparameters (all but
    ``env_id``, which is ``--env``), typed by the field's default and defaulting to None, so that
    only the flags given override the presets and defaults (`setting_overrides`)."""
    from purejaxpg import experiment

    group = parser.add_argument_group(f"settings of the run, of {algo_cls.name} and its hyperparameters")
    for name, (kind, f) in experiment.settings_fields(algo_cls).items():
        if name == "env_id":
            continue
        flag = "--" + name.replace("_", "-")
        default = f.default
        doc = f.metadata.get("doc", "") if kind == "hparams" else ""
        help_text = f"{doc} [{kind}; default {default}]".strip()
        if isinstance(default, bool):
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif isinstance(default, tuple):
            group.add_argument(flag, dest=name, type=parse_tuple, default=None, metavar="N,N", help=help_text)
        elif isinstance(default, int):
            group.add_argument(flag, dest=name, type=int, default=None, help=help_text)
        elif isinstance(default, float):
            group.add_argument(flag, dest=name, type=float, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=str, default=None, help=help_text)


def setting_overrides(args: argparse.Namespace, algo_cls: type) -> dict[str, Any]:
    """The settings given on the command line (the flags of `add_setting_flags` that are not None),
    by field name, for `purejaxpg.experiment.build`."""
    from purejaxpg import experiment

    return {name: getattr(args, name) for name in experiment.settings_fields(algo_cls)
            if name != "env_id" and getattr(args, name, None) is not None}


def algo_from_argv(argv: list[str]) -> str:
    """The ``--algo`` of a command line (default ``ppo``), read first because the algorithm decides
    which setting flags the real parser has."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    known, _ = pre.parse_known_args(argv)
    return known.algo


def error(message: Any) -> int:
    """Print ``error: MESSAGE`` to stderr; returns the exit status of bad input, 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def positive(parser_name: str, value: int | None) -> str | None:
    """The message for a flag ``parser_name`` given below 1, or None (also when it is not given)."""
    if value is not None and value < 1:
        return f"{parser_name} {value}: must be at least 1"
    return None


def add_cpu_devices_flag(parser: argparse.ArgumentParser) -> None:
    """``--cpu-devices``, applied by `use_cpu_devices` before the command runs; declared on each
    command's parser so that its --help lists it and its parsing accepts it."""
    parser.add_argument("--cpu-devices", default="auto", metavar="auto|N", help=CPU_DEVICES_HELP)


DISTRIBUTED_HELP = ("several processes (one or several hosts) as one run: the address HOST:PORT of process 0's "
                    "coordinator (default: $JAX_COORDINATOR_ADDRESS); give the same command to every process with "
                    "its --process-id; the runs are split over the devices of all processes and only process 0 "
                    "writes --out (purejaxpg.distributed)")


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    """``--coordinator HOST:PORT --num-processes N --process-id I``, applied by `join_processes`
    before the command runs; declared on each command's parser so that --help lists them."""
    group = parser.add_argument_group("several processes (jax.distributed)")
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT", help=DISTRIBUTED_HELP)
    group.add_argument("--num-processes", type=int, default=None, metavar="N",
                       help="how many processes take part (default: $JAX_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index, 0 to N-1; process 0 hosts the coordinator "
                            "(default: $JAX_PROCESS_ID)")


def distributed_settings(argv: list[str]) -> dict | None:
    """The checked ``jax.distributed`` settings of a command line (flags, else the environment
    variables; `purejaxpg.distributed.settings`), or None for one process. Raises ConfigError."""
    from purejaxpg import distributed

    pre = argparse.ArgumentParser(add_help=False)
    add_distributed_flags(pre)
    args = pre.parse_known_args(argv)[0]
    return distributed.settings(args.coordinator, args.num_processes, args.process_id)


def join_processes(argv: list[str]) -> str | None:
    """Join the run of several processes a command line asks for (`distributed_settings`), after
    ``--cpu-devices`` and before anything else uses JAX; returns an error message or None."""
    from purejaxpg import distributed
    from purejaxpg.config import ConfigError

    try:
        found = distributed_settings(argv)
        if found is not None:
            distributed.initialize(found["coordinator_address"], found["num_processes"], found["process_id"],
                                   found["local_device_ids"])
    except ConfigError as err:
        return str(err)
    return None


def is_writer() -> bool:
    """True in the process that writes the output folder: process 0 of several, or the only one."""
    from purejaxpg import distributed

    return distributed.is_writer()


def grid_values(values: str) -> list[str]:
    """The values of a ``--grid NAME=V1,V2,...`` assignment: its comma-separated non-blank parts."""
    return [v for v in values.split(",") if v.strip()]


def runs_in_argv(command: str, argv: list[str]) -> int | None:
    """The number of runs a ``train`` or ``sweep`` command line asks for, read before JAX starts
    (None when it cannot tell: a resumed run, a malformed flag; the real parser reports those)."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--seeds", type=int, default=1 if command == "train" else 4)
    pre.add_argument("--resume", default=None)
    pre.add_argument("--grid", action="append", default=[])
    pre.add_argument("--random", action="append", default=[])
    pre.add_argument("--samples", type=int, default=None)
    try:
        args = pre.parse_known_args(argv)[0]
    except (argparse.ArgumentError, SystemExit):
        return None
    if args.resume is not None or args.seeds < 1:
        return None
    if command == "train":
        return args.seeds
    if args.grid:
        configs = int(np.prod([len(grid_values(g.partition("=")[2])) for g in args.grid]))
    else:
        configs = args.samples or 0
    return configs * args.seeds if configs > 0 else None


def use_cpu_devices(command: str, argv: list[str], from_command_line: bool) -> str | None:
    """Apply ``--cpu-devices`` (before JAX starts); returns an error message or None.

    ``auto`` takes effect only when the process is the command line itself: called in-process
    (``main([...])``, e.g. from a test or a notebook) it leaves the caller's JAX devices alone.
    It asks for as many devices as the runs split evenly over, at most one per usable core
    (`purejaxpg.devices.devices_for_runs`), so 8 seeds on 6 cores use 4 devices, not 6 of which
    8 runs could not be split over.

    Then, with ``--coordinator``/``--num-processes``/``--process-id`` (or their environment
    variables), it joins the run of several processes (`join_processes`): each process presents
    its own ``--cpu-devices``, and ``auto`` counts this process's share of the runs.
    """
    from purejaxpg import devices
    from purejaxpg.config import ConfigError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cpu-devices", default="auto")
    value = pre.parse_known_args(argv)[0].cpu_devices
    if value == "auto":  # in a process where JAX already runs, its devices stay
        if from_command_line:  # JAX_NUM_CPU_DEVICES / XLA_FLAGS in the environment win (use_cpu_cores)
            num_runs = runs_in_argv(command, argv)
            try:
                processes = (distributed_settings(argv) or {}).get("num_processes", 1)
            except ConfigError as err:
                return str(err)
            if num_runs is not None and num_runs % processes == 0:
                num_runs //= processes  # this process's share
            devices.use_cpu_cores(num_runs=num_runs, strict=False)
        return join_processes(argv)
    try:
        count = int(value)
    except ValueError:
        return f"--cpu-devices {value}: give 'auto' or a number of devices, e.g. --cpu-devices 1"
    try:
        devices.use_cpu_cores(count)
    except ConfigError as err:
        return f"--cpu-devices {value}: {err}"
    return join_processes(argv)


def devices_note(num_runs: int) -> tuple[str, str]:
    """``(shard, note)``: the ``shard`` of ``run_chunked`` that places the runs, and how they are
    placed, for the progress header."""
    import jax

    from purejaxpg import devices

    shard = devices.runs_shard(num_runs)
    count = len(jax.devices())
    processes = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
    if shard == "runs":
        return shard, f"; runs split over {count} {jax.default_backend().upper()} devices{processes}"
    if count > 1:
        return shard, f"; one device ({num_runs} run(s) do not split evenly over {count} devices)"
    return shard, ""


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def print_progress(total_iterations: int, batch_size: int, num_runs: int, done: int = 0, quiet: bool = False,
                   loggers: list | None = None, stream: Any = None):
    """The progress callback of a chunked run.

    After each chunk: hands the chunk's metrics to the ``loggers`` (`purejaxpg.loggers`), and,
    unless ``quiet``, shows the iteration reached (of ``total_iterations``, counting from ``done``
    for a resumed run), the env steps, the mean episode return over the ``num_runs`` runs, the
    steps per second and the time left (ETA, from the chunks' run time so far). On a terminal it is
    one progress bar redrawn in place; otherwise (a log file, a pipe) one line per chunk.
    """
    stream = sys.stdout if stream is None else stream
    state = {"iteration": done, "seconds": 0.0, "iterations": 0}
    bar = bool(getattr(stream, "isatty", lambda: False)())

    def callback(metrics: dict, runner: Any, elapsed: float) -> None:
        """Log and show the chunk whose ``metrics`` just arrived."""
        from purejaxpg import results

        n = metrics["env_steps"].shape[1]
        for logger in loggers or ():
            logger.log(metrics, state["iteration"])
        state["iteration"] += n
        state["seconds"] += elapsed
        state["iterations"] += n
        if quiet:
            return
        recent = results.final_returns(metrics, fraction=1.0)
        shown = f"{np.nanmean(recent):9.2f}" if np.isfinite(recent).any() else "      n/a"
        sps = num_runs * n * batch_size / max(elapsed, 1e-9)
        steps = int(metrics["env_steps"][0, -1])
        left = total_iterations - state["iteration"]
        eta = _duration(state["seconds"] / max(state["iterations"], 1) * left)
        stats = (f"env steps {steps:>10,d} | episode return {shown} (mean of {num_runs} run{'s' if num_runs > 1 else ''})"
                 f" | {sps:,.0f} steps/s | ETA {eta}")
        if bar:
            width = 24
            filled = int(width * state["iteration"] / max(total_iterations, 1))
            end = "\n" if left <= 0 else ""
            stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {state['iteration']}/{total_iterations} | {stats}{end}")
        else:
            stream.write(f"iter {state['iteration']:6d}/{total_iterations} | {stats}\n")
        stream.flush()

    return callback


def flag_dests(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``{dest: action}`` of a parser's flags, with each flag's own spelling (``num_envs`` and ``num-envs``)."""
    out = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
        if action.dest in ("help", argparse.SUPPRESS):
            continue
        out[action.dest] = action
        for option in action.option_strings:
            if option.startswith("--"):
                out[option[2:]] = action
                out[option[2:].replace("-", "_")] = action
    return out


def config_file_value(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    """A value from a config file, as the flag would parse it (lists become tuples for ``--hidden``)."""
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(action, argparse.BooleanOptionalAction) or action.const is not None and action.nargs == 0:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: {key} must be true or false, not {value!r}")
        return value
    if action.type is not None and not isinstance(value, tuple):
        try:
            if action.type is int:  # YAML reads 1e5 as text and 1.0e5 as a float
                number = float(value)
                if number != int(number):
                    raise ValueError("not a whole number")
                return int(number)
            return action.type(str(value))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {key}={value!r} is not a valid value ({err})") from None
    return value


def read_config_file(path: str) -> dict[str, Any]:
    """The mapping of a YAML config file (``--config``); sections ``train``, ``algo_settings`` and
    ``hparams`` (the layout of config.json) are flattened into it."""
    import yaml

    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except yaml.YAMLError as err:
        raise ValueError(f"--config {path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: the file must hold a mapping of setting names to values")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("train", "algo_settings", "hparams") and isinstance(value, dict):
            flat.update(value)
        else:
            flat["env" if key == "env_id" else key] = value
    return flat


def apply_config_file(parser: argparse.ArgumentParser, config: dict[str, Any], path: str,
                      ignore: tuple[str, ...] = ()) -> None:
    """Make a config file's values the parser's defaults, so that flags given override them.

    Raises:
      ValueError: a key that is not a flag of the command (with the closest ones), or a bad value.
    """
    import difflib

    dests = flag_dests(parser)
    defaults = {}
    for key, value in config.items():
        if key in ignore:
            continue
        action = dests.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(dests), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"--config {path}: {key!r} is not a setting of this command{hint}")
        defaults[action.dest] = config_file_value(action, key, value, path)
    parser.set_defaults(**defaults)


def versions() -> dict[str, str]:
    """The versions of Python and of the installed packages a run depends on, for config.json."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
