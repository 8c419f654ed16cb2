"""Command line: ``python -m purejaxpg {train,sweep,list}``.

    python -m purejaxpg train --algo ppo --env CartPole-v1 --seeds 8 --out runs/x
    python -m purejaxpg train --algo ppo --seeds 8 --out runs/x --checkpoint-every 5
    python -m purejaxpg train --resume runs/x
    python -m purejaxpg sweep --algo ppo --grid lr=1e-4,3e-4,1e-3 --grid clip_eps=0.1,0.2 --seeds 4 --out runs/s
    python -m purejaxpg sweep --algo ppo --random lr=loguniform:1e-4:1e-2 --samples 8 --seeds 4 --out runs/r

Every setting of the run, the algorithm and its hyperparameters is a flag (``--lr 1e-3``,
``--num-envs 16``, ``--no-anneal-lr``, ``--hidden 128,128``); ``python -m purejaxpg train --algo
ppo --help`` lists them with their defaults. Bad input exits with status 2 and a message that
names the setting. On a CPU, ``train`` and ``sweep`` present the cores as JAX devices and split
the runs over them (``--cpu-devices auto``, the default; `purejaxpg.devices`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

import numpy as np


def _parse_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _add_setting_flags(parser: argparse.ArgumentParser, algo_cls: type) -> None:
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
            group.add_argument(flag, dest=name, type=_parse_tuple, default=None, metavar="N,N", help=help_text)
        elif isinstance(default, int):
            group.add_argument(flag, dest=name, type=int, default=None, help=help_text)
        elif isinstance(default, float):
            group.add_argument(flag, dest=name, type=float, default=None, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=str, default=None, help=help_text)


def _overrides(args: argparse.Namespace, algo_cls: type) -> dict[str, Any]:
    from purejaxpg import experiment

    return {name: getattr(args, name) for name in experiment.settings_fields(algo_cls)
            if name != "env_id" and getattr(args, name, None) is not None}


def _algo_from_argv(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    known, _ = pre.parse_known_args(argv)
    return known.algo


def _error(message: Any) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


CPU_DEVICES_HELP = ("CPU devices JAX presents: 'auto' (default) as many as the runs (seeds x configurations) "
                    "split evenly over, at most one per usable core; or N. Runs are split over the devices "
                    "when they divide evenly, each run computed as on one device (purejaxpg.devices). "
                    "Has effect only before JAX starts, i.e. from the command line")


def _add_cpu_devices_flag(parser: argparse.ArgumentParser) -> None:
    """``--cpu-devices``, applied by `_use_cpu_devices` before the command runs; declared on each
    command's parser so that its --help lists it and its parsing accepts it."""
    parser.add_argument("--cpu-devices", default="auto", metavar="auto|N", help=CPU_DEVICES_HELP)


def _grid_values(values: str) -> list[str]:
    """The values of a ``--grid NAME=V1,V2,...`` assignment: its comma-separated non-blank parts."""
    return [v for v in values.split(",") if v.strip()]


def _runs_in_argv(command: str, argv: list[str]) -> int | None:
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
        configs = int(np.prod([len(_grid_values(g.partition("=")[2])) for g in args.grid]))
    else:
        configs = args.samples or 0
    return configs * args.seeds if configs > 0 else None


def _use_cpu_devices(command: str, argv: list[str], from_command_line: bool) -> str | None:
    """Apply ``--cpu-devices`` (before JAX starts); returns an error message or None.

    ``auto`` takes effect only when the process is the command line itself: called in-process
    (``main([...])``, e.g. from a test or a notebook) it leaves the caller's JAX devices alone.
    It asks for as many devices as the runs split evenly over, at most one per usable core
    (`purejaxpg.devices.devices_for_runs`), so 8 seeds on 6 cores use 4 devices, not 6 of which
    8 runs could not be split over.
    """
    from purejaxpg import devices
    from purejaxpg.config import ConfigError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cpu-devices", default="auto")
    value = pre.parse_known_args(argv)[0].cpu_devices
    if value == "auto":  # in a process where JAX already runs, its devices stay
        if from_command_line:  # JAX_NUM_CPU_DEVICES / XLA_FLAGS in the environment win (use_cpu_cores)
            devices.use_cpu_cores(num_runs=_runs_in_argv(command, argv), strict=False)
        return None
    try:
        count = int(value)
    except ValueError:
        return f"--cpu-devices {value}: give 'auto' or a number of devices, e.g. --cpu-devices 1"
    try:
        devices.use_cpu_cores(count)
    except ConfigError as err:
        return f"--cpu-devices {value}: {err}"
    return None


def _devices_note(num_runs: int) -> tuple[str, str]:
    """``(shard, note)``: the ``shard`` of ``run_chunked`` that places the runs, and how they are
    placed, for the progress header."""
    import jax

    from purejaxpg import devices

    shard = devices.runs_shard(num_runs)
    count = len(jax.devices())
    if shard == "runs":
        return shard, f"; runs split over {count} {jax.default_backend().upper()} devices"
    if count > 1:
        return shard, f"; one device ({num_runs} run(s) do not split evenly over {count} devices)"
    return shard, ""


def _print_progress(total_iterations: int, batch_size: int, num_runs: int, done: int = 0):
    state = {"iteration": done}

    def callback(metrics: dict, runner: Any, elapsed: float) -> None:
        from purejaxpg import results

        n = metrics["env_steps"].shape[1]
        state["iteration"] += n
        recent = results.final_returns(metrics, fraction=1.0)
        shown = f"{np.nanmean(recent):9.2f}" if np.isfinite(recent).any() else "      n/a"
        sps = num_runs * n * batch_size / max(elapsed, 1e-9)
        steps = int(metrics["env_steps"][0, -1])
        print(f"iter {state['iteration']:6d}/{total_iterations} | env steps {steps:>10,d} | "
              f"episode return {shown} (mean of {num_runs} run{'s' if num_runs > 1 else ''}) | "
              f"{sps:,.0f} steps/s", flush=True)

    return callback


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "chex", "gymnax", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# ------------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------------


def _train_parser(algo_cls: type | None) -> argparse.ArgumentParser:
    from purejaxpg import algorithms

    parser = argparse.ArgumentParser(prog="python -m purejaxpg train",
                                     description="Train seeds of one algorithm in one compiled call.")
    parser.add_argument("--algo", default="ppo", help=f"one of {', '.join(sorted(algorithms.ALGORITHMS))}")
    parser.add_argument("--env", default="CartPole-v1", help="gymnax environment id")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, vmapped in one call")
    parser.add_argument("--seed", type=int, default=0, help="base seed; run i uses fold_in(PRNGKey(seed), i)")
    parser.add_argument("--out", default=None, help="output folder (config.json, metrics.csv, summary.json, learning_curve.png)")
    parser.add_argument("--chunk-iterations", type=int, default=None, help="iterations per compiled chunk; progress is printed between chunks (default: about 20 chunks)")
    parser.add_argument("--no-presets", action="store_true", help="ignore the per-environment presets")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                        help="save the whole run state to OUT/checkpoints every K chunks (and at the end); needs --out")
    parser.add_argument("--keep-checkpoints", type=int, default=2, metavar="N", help="newest checkpoints kept (default 2)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run saved in DIR (its settings and newest checkpoint); writes into DIR")
    parser.add_argument("--stop-after-chunks", type=int, default=None, metavar="N",
                        help="stop after N chunks of this call, once checkpointed (for tests and jobs of limited wall time)")
    _add_cpu_devices_flag(parser)
    if algo_cls is not None:
        _add_setting_flags(parser, algo_cls)
    return parser


def _positive(parser_name: str, value: int | None) -> str | None:
    if value is not None and value < 1:
        return f"{parser_name} {value}: must be at least 1"
    return None


def cmd_train(argv: list[str]) -> int:
    from purejaxpg import algorithms, experiment, train
    from purejaxpg.config import ConfigError

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume", default=None)
    if pre.parse_known_args(argv)[0].resume is not None:
        return _resume(argv)
    algo_name = _algo_from_argv(argv)
    try:
        algo_cls = algorithms.get(algo_name)
    except ConfigError as err:
        return _error(err)
    parser = _train_parser(algo_cls)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least one seed")
    for flag, value in (("--chunk-iterations", args.chunk_iterations), ("--checkpoint-every", args.checkpoint_every),
                        ("--keep-checkpoints", args.keep_checkpoints), ("--stop-after-chunks", args.stop_after_chunks)):
        if (message := _positive(flag, value)) is not None:
            return _error(message)
    if args.checkpoint_every is not None and not args.out:
        return _error("--checkpoint-every needs --out DIR (the checkpoints go to DIR/checkpoints)")
    if args.stop_after_chunks is not None and args.checkpoint_every is None:
        return _error("--stop-after-chunks needs --checkpoint-every (a stopped run continues from its checkpoint)")
    try:
        algo, config, hparams = experiment.build(algo_name, args.env, _overrides(args, algo_cls),
                                                 use_presets=not args.no_presets)
        trainer = train.make_train(algo, config, hparams)
    except ConfigError as err:
        return _error(err)
    chunk = args.chunk_iterations or max(1, -(-config.num_iterations // 20))
    description = experiment.describe(algo, config, hparams)
    description.update(seeds=args.seeds, seed=args.seed, chunk_iterations=chunk, versions=_versions())
    if args.checkpoint_every is not None:
        description.update(checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints)
    shard, placement = _devices_note(args.seeds)
    print(f"purejaxpg: {algo.name} on {config.env_id}, {args.seeds} seed(s) x {config.num_iterations} iterations "
          f"x {config.batch_size} steps ({config.num_envs} envs x {config.num_steps} steps){placement}", flush=True)
    callback = _print_progress(config.num_iterations, config.batch_size, args.seeds)
    keys = train.seed_keys(args.seed, args.seeds)
    if args.checkpoint_every is None:
        result = train.run_chunked(trainer, keys, hparams, chunk_iterations=chunk, callback=callback, shard=shard)
        return _finish_train(args.out, description, result.metrics, result.steps_per_second,
                             result.compile_seconds, result.run_seconds)
    _write_config(args.out, description)
    return _run_checkpointed(trainer, keys, hparams, args.out, description, chunk, args.checkpoint_every,
                             args.keep_checkpoints, callback, args.stop_after_chunks, shard=shard)


def _write_config(out: str, description: dict) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(description, fh, indent=2)


def _run_checkpointed(trainer, keys, hparams, out: str, description: dict, chunk: int, every: int, keep: int,
                      callback, stop_after_chunks: int | None, resume=None, shard: str = "auto") -> int:
    from purejaxpg import checkpoint

    done = checkpoint.run(trainer, keys, hparams, os.path.join(out, "checkpoints"), description,
                          chunk_iterations=chunk, every=every, keep=keep, callback=callback,
                          stop_after_chunks=stop_after_chunks, resume=resume, shard=shard)
    if not done.finished:
        iteration = int(np.asarray(done.runner.iteration).reshape(-1)[0])
        print(f"stopped after {stop_after_chunks} chunk(s) at iteration {iteration}/{trainer.num_iterations}; "
              f"checkpoint {done.checkpoint}; continue with: python -m purejaxpg train --resume {out}", flush=True)
        return 0
    return _finish_train(out, description, done.metrics, done.steps_per_second, done.compile_seconds,
                         done.run_seconds)


def _finish_train(out: str | None, description: dict, metrics: dict, steps_per_second: float,
                  compile_seconds: float, run_seconds: float) -> int:
    """Print the final summary; write config.json, metrics.csv, summary.json, learning_curve.png."""
    from purejaxpg import plotting, results

    algo_name, env_id, num_seeds = description["algo"], description["train"]["env_id"], description["seeds"]
    finals = results.final_returns(metrics)
    summary = {
        "algo": algo_name, "env_id": env_id, "seeds": num_seeds,
        "env_steps_per_seed": int(metrics["env_steps"][0, -1]),
        "final_return_per_seed": [float(x) for x in finals],
        "final_return": results.summarize(finals),
        "steps_per_second": steps_per_second,
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
    }
    print(f"final return (last 10% of iterations): mean {summary['final_return']['mean']:.2f}, "
          f"worst {summary['final_return']['worst']:.2f} | {steps_per_second:,.0f} steps/s | "
          f"compile {compile_seconds:.1f} s", flush=True)
    if out:
        table = results.tidy(metrics, {"seed": np.arange(num_seeds)}).drop(columns="run")
        _write_config(out, description)
        table.to_csv(os.path.join(out, "metrics.csv"), index=False)
        with open(os.path.join(out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
        plotting.learning_curves({algo_name: metrics}, os.path.join(out, "learning_curve.png"),
                                 title=f"{algo_name} on {env_id}")
        print(f"wrote {out}/config.json, metrics.csv, summary.json, learning_curve.png")
    return 0


def _resume(argv: list[str]) -> int:
    """``train --resume DIR``: the saved settings and newest intact checkpoint of DIR."""
    from purejaxpg import checkpoint
    from purejaxpg.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m purejaxpg train --resume DIR",
                                     description="Continue a checkpointed run with its saved settings.")
    parser.add_argument("--resume", required=True, metavar="DIR")
    parser.add_argument("--chunk-iterations", type=int, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="K")
    parser.add_argument("--keep-checkpoints", type=int, default=None, metavar="N")
    parser.add_argument("--stop-after-chunks", type=int, default=None, metavar="N")
    _add_cpu_devices_flag(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        return _error(f"--resume continues the run with the settings saved in {args.resume}; "
                      f"{' '.join(extra)} cannot be given with it (start a new run to change settings)")
    for flag, value in (("--chunk-iterations", args.chunk_iterations), ("--checkpoint-every", args.checkpoint_every),
                        ("--keep-checkpoints", args.keep_checkpoints), ("--stop-after-chunks", args.stop_after_chunks)):
        if (message := _positive(flag, value)) is not None:
            return _error(message)
    folder = os.path.join(args.resume, "checkpoints")
    try:
        ckpt = checkpoint.restore(folder)
    except (checkpoint.CheckpointError, ConfigError) as err:
        return _error(f"--resume {args.resume}: {err}")
    description = dict(ckpt.settings)
    trainer = ckpt.trainer
    chunk = args.chunk_iterations or description.get("chunk_iterations")
    every = args.checkpoint_every or description.get("checkpoint_every", 1)
    keep = args.keep_checkpoints or description.get("keep_checkpoints", 2)
    description.update(chunk_iterations=chunk, checkpoint_every=every, keep_checkpoints=keep)
    description.setdefault("resumed_from_iterations", []).append(ckpt.iteration)
    num_runs = int(np.asarray(ckpt.runner.iteration).shape[0])
    config = trainer.config
    shard, placement = _devices_note(num_runs)
    print(f"purejaxpg: resuming {trainer.algo.name} on {config.env_id} from {ckpt.path} at iteration "
          f"{ckpt.iteration}/{config.num_iterations} ({num_runs} run(s){placement})", flush=True)
    callback = _print_progress(config.num_iterations, config.batch_size, num_runs, done=ckpt.iteration)
    return _run_checkpointed(trainer, ckpt.runner.key, ckpt.hparams, args.resume, description, chunk, every, keep,
                             callback, args.stop_after_chunks, resume=ckpt, shard=shard)


# ------------------------------------------------------------------------------------------------
# sweep
# ------------------------------------------------------------------------------------------------


def _parse_assignment(text: str, flag: str) -> tuple[str, str]:
    from purejaxpg.config import ConfigError

    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        form = "NAME=VALUES, e.g. --grid lr=1e-4,3e-4" if flag == "--grid" else \
            "NAME=KIND:LOW:HIGH, e.g. --random lr=loguniform:1e-4:1e-2"
        raise ConfigError(f"{flag} {text!r}: write {form}")
    return name.strip().replace("-", "_"), value.strip()


def cmd_sweep(argv: list[str]) -> int:
    from purejaxpg import algorithms, sweep
    from purejaxpg.config import ConfigError

    algo_name = _algo_from_argv(argv)
    try:
        algo_cls = algorithms.get(algo_name)
    except ConfigError as err:
        return _error(err)
    parser = argparse.ArgumentParser(
        prog="python -m purejaxpg sweep",
        description="Sweep dynamic hyperparameters x seeds of one algorithm in one compiled, vmapped call.")
    parser.add_argument("--algo", default="ppo", help=f"one of {', '.join(sorted(algorithms.ALGORITHMS))}")
    parser.add_argument("--env", default="CartPole-v1", help="gymnax environment id")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="a swept hyperparameter and its values (repeat for a cartesian product)")
    parser.add_argument("--random", action="append", default=[], metavar="NAME=KIND:LOW:HIGH",
                        help="a randomly searched hyperparameter, KIND uniform or loguniform (repeatable)")
    parser.add_argument("--samples", type=int, default=None, help="configurations drawn for --random")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the --random draw")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per configuration")
    parser.add_argument("--seed", type=int, default=0, help="base seed; seed s uses fold_in(PRNGKey(seed), s)")
    parser.add_argument("--out", default=None, help="output folder (results.csv, summary.csv, summary.json, config.json, sweep.png)")
    parser.add_argument("--chunk-iterations", type=int, default=None, help="iterations per compiled chunk (default: about 20 chunks)")
    parser.add_argument("--no-presets", action="store_true", help="ignore the per-environment presets")
    parser.add_argument("--plot-x", default=None, metavar="NAME", help="x axis of sweep.png (default: first swept name)")
    parser.add_argument("--plot-lines", default=None, metavar="NAME", help="one line per value of NAME (grid only)")
    _add_cpu_devices_flag(parser)
    _add_setting_flags(parser, algo_cls)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        return _error(f"--seeds {args.seeds}: give at least one seed")
    if (message := _positive("--chunk-iterations", args.chunk_iterations)) is not None:
        return _error(message)
    try:
        if bool(args.grid) == bool(args.random):
            raise ConfigError("give either --grid NAME=V1,V2 (repeatable) or --random NAME=KIND:LOW:HIGH with --samples N")
        overrides = _overrides(args, algo_cls)
        common = dict(seeds=args.seeds, overrides=overrides, seed=args.seed, use_presets=not args.no_presets)
        if args.grid:
            if args.samples is not None:
                raise ConfigError("--samples goes with --random, not with --grid")
            grid = {}
            for text in args.grid:
                name, values = _parse_assignment(text, "--grid")
                if name in grid:
                    raise ConfigError(f"--grid {name}=... is given twice; list all its values in one --grid")
                try:
                    grid[name] = [float(v) for v in _grid_values(values)]
                except ValueError:
                    raise ConfigError(f"--grid {text!r}: the values of {name} must be numbers") from None
            sweep.check_dynamic(algo_name, list(grid))
            configs, kind = sweep.grid_configs(grid), "grid"
        else:
            if args.samples is None or args.samples < 1:
                raise ConfigError("--random needs --samples N (N >= 1)")
            space = {}
            for text in args.random:
                name, dist = _parse_assignment(text, "--random")
                if name in space:
                    raise ConfigError(f"--random {name}=... is given twice; give one distribution per name")
                space[name] = dist
            sweep.check_dynamic(algo_name, list(space))
            try:
                configs, kind = sweep.random_configs(space, args.samples, args.search_seed), "random"
            except ConfigError as err:
                raise ConfigError(f"--random: {err}") from None
        config = _validate_sweep(algo_name, args.env, configs, overrides, not args.no_presets)
        for name in (args.plot_x, args.plot_lines):
            if name is not None and name.replace("-", "_") not in configs[0]:
                raise ConfigError(f"--plot-x/--plot-lines {name!r} was not swept; pick one of {list(configs[0])}")
    except ConfigError as err:
        return _error(err)
    num_runs = len(configs) * args.seeds
    shard, placement = _devices_note(num_runs)
    print(f"purejaxpg: sweep of {algo_name} on {args.env}: {len(configs)} configuration(s) x {args.seeds} seed(s) "
          f"= {num_runs} runs in one compiled call{placement}", flush=True)
    chunk = args.chunk_iterations or max(1, -(-config.num_iterations // 20))
    callback = _print_progress(config.num_iterations, config.batch_size, num_runs)
    result = sweep.run_configs(algo_name, args.env, configs, chunk_iterations=chunk, callback=callback, kind=kind,
                               shard=shard, **common)
    result.settings.update(chunk_iterations=chunk, versions=_versions())
    _print_sweep_summary(result)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        result.save(args.out, plot=False)
        result.plot(os.path.join(args.out, "sweep.png"),
                    x=args.plot_x.replace("-", "_") if args.plot_x else None,
                    lines=args.plot_lines.replace("-", "_") if args.plot_lines else None)
        print(f"wrote {args.out}/results.csv, summary.csv, summary.json, config.json, sweep.png")
    return 0


def _validate_sweep(algo_name: str, env_id: str, configs: list[dict], overrides: dict, use_presets: bool):
    """Every check of :func:`purejaxpg.sweep.run_configs` that needs no compile (settings, ranges),
    before the long part; returns the run's ``TrainConfig``."""
    import dataclasses

    from purejaxpg import experiment, train
    from purejaxpg.config import ConfigError

    both = [n for n in configs[0] if n in overrides]
    if both:
        raise ConfigError(f"{both[0]!r} is both swept and set by --{both[0].replace('_', '-')}; keep it in one place")
    algo, config, base = experiment.build(algo_name, env_id, overrides, use_presets=use_presets)
    swept = {n: np.asarray([c[n] for c in configs], np.float32) for n in configs[0]}
    train.make_train(algo, config, dataclasses.replace(base, **swept))
    return config


def _print_sweep_summary(result) -> None:
    import pandas as pd

    shown = result.summary.sort_values("final_return_mean", ascending=False)
    with pd.option_context("display.max_columns", None, "display.width", 160):
        print(shown.head(20).to_string(index=False))
    if result.best is None:
        print("no configuration finished an episode; no best configuration")
    else:
        values = ", ".join(f"{n}={result.best[n]:g}" for n in result.names)
        print(f"best: config {result.best['config']} ({values}): final return mean "
              f"{result.best['final_return_mean']:.2f} [{result.best['ci95_low']:.2f}, {result.best['ci95_high']:.2f}], "
              f"worst seed {result.best['final_return_worst']:.2f} | {result.steps_per_second:,.0f} steps/s | "
              f"compile {result.compile_seconds:.1f} s", flush=True)


def cmd_list(argv: list[str]) -> int:
    from purejaxpg import algorithms, envs

    print("algorithms:", ", ".join(sorted(algorithms.ALGORITHMS)))
    print("environments:", ", ".join(envs.registered_env_ids()))
    return 0


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit status (0 ok, 2 bad input) instead of exiting, so it can be
    called in-process (``main(["train", "--total-timesteps", "1024"])``)."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: python -m purejaxpg {{{','.join(COMMANDS)}}} [options]\n"
              "  train  train seeds of an algorithm; checkpoint and resume (python -m purejaxpg train --help)\n"
              "  sweep  grid or random search of hyperparameters x seeds in one call (python -m purejaxpg sweep --help)\n"
              "  list   list algorithms and environments")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    if argv[0] in ("train", "sweep") and (message := _use_cpu_devices(argv[0], argv[1:], from_command_line)) is not None:
        return _error(message)
    try:
        return COMMANDS[argv[0]](argv[1:])
    except SystemExit as exit_:  # argparse: --help (0) and malformed flags (2)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
