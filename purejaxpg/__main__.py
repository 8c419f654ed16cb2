"""Command line: ``python -m purejaxpg train --algo ppo --env CartPole-v1 --seeds 8 --out runs/x``.

Every setting of the run, the algorithm and its hyperparameters is a flag (``--lr 1e-3``,
``--num-envs 16``, ``--no-anneal-lr``, ``--hidden 128,128``); ``python -m purejaxpg train --algo
ppo --help`` lists them with their defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
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


def _algo_from_argv(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    known, _ = pre.parse_known_args(argv)
    return known.algo


def _print_progress(total_iterations: int, batch_size: int, num_runs: int):
    state = {"iteration": 0, "start": time.perf_counter()}

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


def cmd_train(argv: list[str]) -> int:
    from purejaxpg import algorithms, experiment, plotting, results, train
    from purejaxpg.config import ConfigError

    algo_name = _algo_from_argv(argv)
    try:
        algo_cls = algorithms.get(algo_name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m purejaxpg train", description="Train seeds of one algorithm in one compiled call.")
    parser.add_argument("--algo", default="ppo", help=f"one of {', '.join(sorted(algorithms.ALGORITHMS))}")
    parser.add_argument("--env", default="CartPole-v1", help="gymnax environment id")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, vmapped in one call")
    parser.add_argument("--seed", type=int, default=0, help="base seed; run i uses fold_in(PRNGKey(seed), i)")
    parser.add_argument("--out", default=None, help="output folder (config.json, metrics.csv, summary.json, learning_curve.png)")
    parser.add_argument("--chunk-iterations", type=int, default=None, help="iterations per compiled chunk; progress is printed between chunks (default: about 20 chunks)")
    parser.add_argument("--no-presets", action="store_true", help="ignore the per-environment presets")
    _add_setting_flags(parser, algo_cls)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give at least one seed")
    overrides = {name: getattr(args, name) for name in experiment.settings_fields(algo_cls)
                 if name != "env_id" and getattr(args, name, None) is not None}
    try:
        algo, config, hparams = experiment.build(algo_name, args.env, overrides, use_presets=not args.no_presets)
        trainer = train.make_train(algo, config, hparams)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chunk = args.chunk_iterations or max(1, -(-config.num_iterations // 20))
    description = experiment.describe(algo, config, hparams)
    description.update(seeds=args.seeds, seed=args.seed, chunk_iterations=chunk, versions=_versions())
    print(f"purejaxpg: {algo.name} on {config.env_id}, {args.seeds} seed(s) x {config.num_iterations} iterations "
          f"x {config.batch_size} steps ({config.num_envs} envs x {config.num_steps} steps)", flush=True)
    callback = _print_progress(config.num_iterations, config.batch_size, args.seeds)
    result = train.run_chunked(trainer, train.seed_keys(args.seed, args.seeds), hparams,
                               chunk_iterations=chunk, callback=callback)
    finals = results.final_returns(result.metrics)
    summary = {
        "algo": algo.name, "env_id": config.env_id, "seeds": args.seeds,
        "env_steps_per_seed": int(result.metrics["env_steps"][0, -1]),
        "final_return_per_seed": [float(x) for x in finals],
        "final_return": results.summarize(finals),
        "steps_per_second": result.steps_per_second,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
    }
    print(f"final return (last 10% of iterations): mean {summary['final_return']['mean']:.2f}, "
          f"worst {summary['final_return']['worst']:.2f} | {result.steps_per_second:,.0f} steps/s | "
          f"compile {result.compile_seconds:.1f} s", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        seeds = np.arange(args.seeds)
        table = results.tidy(result.metrics, {"seed": seeds}).drop(columns="run")
        table.to_csv(os.path.join(args.out, "metrics.csv"), index=False)
        with open(os.path.join(args.out, "config.json"), "w") as fh:
            json.dump(description, fh, indent=2)
        with open(os.path.join(args.out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2)
        plotting.learning_curves({f"{algo.name}": result.metrics}, os.path.join(args.out, "learning_curve.png"),
                                 title=f"{algo.name} on {config.env_id}")
        print(f"wrote {args.out}/config.json, metrics.csv, summary.json, learning_curve.png")
    return 0


def cmd_list(argv: list[str]) -> int:
    from purejaxpg import algorithms, envs

    print("algorithms:", ", ".join(sorted(algorithms.ALGORITHMS)))
    print("environments:", ", ".join(envs.registered_env_ids()))
    return 0


COMMANDS = {"train": cmd_train, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: python -m purejaxpg {{{','.join(COMMANDS)}}} [options]\n"
              "  train  train seeds of an algorithm (python -m purejaxpg train --help)\n"
              "  list   list algorithms and environments")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
