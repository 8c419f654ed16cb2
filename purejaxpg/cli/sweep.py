"""``python -m purejaxpg sweep``: a grid (``--grid``) or random (``--random``) search of dynamic
hyperparameters x seeds of one algorithm in one compiled, vmapped call."""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

import numpy as np

from purejaxpg.cli.common import (add_cpu_devices_flag, add_distributed_flags, add_setting_flags, algo_from_argv,
                                  devices_note, error, grid_values, is_writer, positive, print_progress,
                                  setting_overrides, versions)


def _sweep_parser(algo_cls: type) -> argparse.ArgumentParser:
    """The parser of ``sweep``: the sweep's own flags and the setting flags of ``algo_cls``."""
    from purejaxpg import algorithms

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
    add_cpu_devices_flag(parser)
    add_distributed_flags(parser)
    add_setting_flags(parser, algo_cls)
    return parser


def _parse_assignment(text: str, flag: str) -> tuple[str, str]:
    """``(name, value)`` of one ``--grid NAME=VALUES`` or ``--random NAME=KIND:LOW:HIGH`` (``flag``),
    the name with dashes as underscores; a ConfigError showing the form when it is malformed."""
    from purejaxpg.config import ConfigError

    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        form = "NAME=VALUES, e.g. --grid lr=1e-4,3e-4" if flag == "--grid" else \
            "NAME=KIND:LOW:HIGH, e.g. --random lr=loguniform:1e-4:1e-2"
        raise ConfigError(f"{flag} {text!r}: write {form}")
    return name.strip().replace("-", "_"), value.strip()


def _assignments(texts: list[str], flag: str, once: str,
                 value_of: Callable[[str, str, str], Any]) -> dict[str, Any]:
    """``{name: value_of(text, name, value)}`` of the repeated ``flag`` (``--grid`` or ``--random``)
    assignments ``texts``, in the order given; a name given twice is a ConfigError that ends with
    the advice ``once``."""
    from purejaxpg.config import ConfigError

    parsed = {}
    for text in texts:
        name, value = _parse_assignment(text, flag)
        if name in parsed:
            raise ConfigError(f"{flag} {name}=... is given twice; {once}")
        parsed[name] = value_of(text, name, value)
    return parsed


def _grid_numbers(text: str, name: str, values: str) -> list[float]:
    """The values of the ``--grid`` assignment ``text`` (of ``name``) as numbers."""
    from purejaxpg.config import ConfigError

    try:
        return [float(v) for v in grid_values(values)]
    except ValueError:
        raise ConfigError(f"--grid {text!r}: the values of {name} must be numbers") from None


def _distribution(text: str, name: str, dist: str) -> str:
    """The ``KIND:LOW:HIGH`` of a ``--random`` assignment, as given (`purejaxpg.sweep` reads it)."""
    return dist


def cmd_sweep(argv: list[str]) -> int:
    """``sweep``: check the swept configurations (before anything compiles), run them x seeds in one
    call, print the summary and best configuration and write the tables and plot to --out."""
    from purejaxpg import algorithms, sweep
    from purejaxpg.config import ConfigError

    algo_name = algo_from_argv(argv)
    try:
        algo_cls = algorithms.get(algo_name)
    except ConfigError as err:
        return error(err)
    args = _sweep_parser(algo_cls).parse_args(argv)
    if args.seeds < 1:
        return error(f"--seeds {args.seeds}: give at least one seed")
    if (message := positive("--chunk-iterations", args.chunk_iterations)) is not None:
        return error(message)
    try:
        if bool(args.grid) == bool(args.random):
            raise ConfigError("give either --grid NAME=V1,V2 (repeatable) or --random NAME=KIND:LOW:HIGH with --samples N")
        overrides = setting_overrides(args, algo_cls)
        common = dict(seeds=args.seeds, overrides=overrides, seed=args.seed, use_presets=not args.no_presets)
        if args.grid:
            if args.samples is not None:
                raise ConfigError("--samples goes with --random, not with --grid")
            grid = _assignments(args.grid, "--grid", "list all its values in one --grid", _grid_numbers)
            sweep.check_dynamic(algo_name, list(grid))
            configs, kind = sweep.grid_configs(grid), "grid"
        else:
            if args.samples is None or args.samples < 1:
                raise ConfigError("--random needs --samples N (N >= 1)")
            space = _assignments(args.random, "--random", "give one distribution per name", _distribution)
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
        return error(err)
    num_runs = len(configs) * args.seeds
    shard, placement = devices_note(num_runs)
    print(f"purejaxpg: sweep of {algo_name} on {args.env}: {len(configs)} configuration(s) x {args.seeds} seed(s) "
          f"= {num_runs} runs in one compiled call{placement}", flush=True)
    chunk = args.chunk_iterations or max(1, -(-config.num_iterations // 20))
    callback = print_progress(config.num_iterations, config.batch_size, num_runs)
    result = sweep.run_configs(algo_name, args.env, configs, chunk_iterations=chunk, callback=callback, kind=kind,
                               shard=shard, **common)
    result.settings.update(chunk_iterations=chunk, versions=versions())
    _print_sweep_summary(result)
    if args.out and is_writer():  # one writer in a run of several processes
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
    """Print the sweep's summary table (best 20 configurations first) and its best configuration."""
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
