"""Final return per algorithm x environment over 8 seeds: the learning table of docs/results.md.

Each cell trains ``--seeds`` vmapped seeds with the algorithm's preset for that env (or its
defaults) at the budget below, and reports the final return (mean return of the episodes that
ended in the last 10% of iterations) mean and worst over seeds, env steps per seed, steps/s and
compile time, plus a compact learning curve per seed and the command and machine that produced
the cell.

    python benchmarks/learning.py                          # the default table
    python benchmarks/learning.py --algos ppo trpo --envs CartPole-v1 --seeds 8
    python benchmarks/learning.py --envs CartPole-v1 --seeds 2 --steps 20000 --out scratch_check
    python benchmarks/learning.py --algos acer --envs CartPole-v1 --set replay_ratio=0 --label "replay 0"

``--set NAME=VALUE`` (repeatable) applies a setting over the preset (a Python literal: numbers,
booleans, strings, tuples); ``--label`` names such a variant, so it gets its own row beside the
preset's (rows are keyed by algorithm, env and label).

Writes ``benchmarks/results/<--out>.json`` (default ``learning.json``; merging with the cells
already there) and prints a table. ``python benchmarks/make_results.py`` turns it into
docs/results.md and its figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import sys
from typing import Any

import numpy as np

import _common

#: env -> env steps per seed. CartPole and Pendulum at the usual budgets; the others at budgets that
#: fit this 2-core machine (10 algorithms x 8 seeds each): Breakout-MinAtar is usually run for 1e7
#: steps, ten times what fits here.
BUDGETS = {
    "CartPole-v1": 500_000,
    "Acrobot-v1": 500_000,
    "Pendulum-v1": 1_000_000,
    "MountainCarContinuous-v0": 500_000,
    "Breakout-MinAtar": 1_000_000,
    "jaxmarl/MPE_simple_spread_v3": 1_000_000,
}
ALGOS = ["ppo", "trpo", "npg", "a2c", "reinforce", "reinforce_baseline", "ppo_kl", "mdpo", "grpo", "nac",
         "ddpg", "td3", "sac", "d4pg", "sql", "acer", "a3c", "maddpg"]
#: at most this many points per seed in a row's learning curve
CURVE_POINTS = 50


def command_line() -> str:
    """This run's command line as typed from the repository root: ``python benchmarks/learning.py ...``."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), os.path.dirname(_common.HERE))
    return shlex.join(["python", script.replace(os.sep, "/"), *sys.argv[1:]])


def learning_curve(metrics: dict[str, np.ndarray], points: int = CURVE_POINTS) -> dict[str, Any]:
    """A compact learning curve of ``metrics`` (``{name: [R, I]}``): at most ``points`` points per seed.

    Point k is the episode-weighted mean return of the episodes that ended in the ``window``
    iterations up to and including iteration ``ends[k]`` (``results.smoothed_returns``), where
    the ``ends`` split the I iterations evenly and the last is the final iteration; None where no
    episode ended in that window. ``env_steps`` is the x axis: env steps per seed at ``ends``.
    """
    from purejaxpg import results

    num_iterations = np.asarray(metrics["env_steps"]).shape[1]
    points = min(points, num_iterations)
    window = math.ceil(num_iterations / points)
    ends = [math.ceil((k + 1) * num_iterations / points) - 1 for k in range(points)]
    smoothed = results.smoothed_returns(metrics, window)[:, ends]
    return {
        "env_steps": [int(x) for x in np.asarray(metrics["env_steps"])[0, ends]],
        "episode_return": [[round(float(x), 3) if np.isfinite(x) else None for x in seed] for seed in smoothed],
        "window_iterations": window,
        "definition": f"per seed: mean return of the episodes that ended in the {window} iterations "
                      "up to each point (episode-weighted)",
    }


def parse_settings(texts: list[str]) -> dict[str, Any]:
    """``{name: value}`` of ``--set NAME=VALUE`` assignments; a value is a Python literal, else a string."""
    import ast

    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--set {text!r}: write NAME=VALUE, e.g. --set replay_ratio=4")
        try:
            out[name.strip().replace("-", "_")] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[name.strip().replace("-", "_")] = value.strip()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=ALGOS)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: per-env budget, or the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; run i uses fold_in(PRNGKey(seed), i)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting over the preset, e.g. --set replay_ratio=4 (repeatable)")
    parser.add_argument("--label", default="", help="name of this variant (its rows are kept beside the preset's)")
    parser.add_argument("--out", default="learning", help="write benchmarks/results/OUT.json (default: learning; make_results.py "
                        "leaves out names starting with 'scratch')")
    args = parser.parse_args()
    command = command_line()

    from purejaxpg import algorithms, envs, experiment, presets, train
    from purejaxpg.config import ConfigError

    settings = parse_settings(args.set)
    if settings and not args.label:
        parser.error("--set changes the settings: name the variant with --label")
    path = os.path.join(_common.RESULTS, f"{args.out}.json")
    cells = {}
    if os.path.exists(path):
        with open(path) as fh:
            cells = {(r["algo"], r["env_id"], r.get("label", "")): r for r in json.load(fh).get("rows", [])}
    for env_id in args.envs:
        spec = envs.make(env_id)[2]
        for algo_name in args.algos:
            algo_cls = algorithms.get(algo_name)
            preset = presets.preset(algo_name, env_id)
            steps = args.steps or preset.get("total_timesteps") or BUDGETS.get(env_id, 500_000)
            overrides = {"total_timesteps": steps, **settings}
            if "episode_group_size" in experiment.settings_fields(algo_cls) and not preset \
                    and spec.max_episode_steps and spec.max_episode_steps <= 1000:
                # episodic groups (GRPO) need whole episodes per rollout: 4 groups of 8 envs
                overrides.update(num_envs=32, num_steps=spec.max_episode_steps)
            try:
                train.make_train(*experiment.build(algo_name, env_id, overrides))  # validates, no compile
            except ConfigError as err:
                print(f"skip {algo_name} on {env_id}: {err}", flush=True)
                continue
            row = _common.time_purejaxpg(algo_name, env_id, overrides, args.seeds, seed=args.seed, keep_metrics=True)
            row["measured"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
            row["command"] = command
            row["overrides"] = overrides
            row["machine"] = {k: v for k, v in _common.machine().items() if k != "command"}
            row["curve"] = learning_curve(row.pop("metrics"))
            if args.label:
                row["label"] = args.label
            cells[(algo_name, env_id, args.label)] = row
            print(f"{algo_name + (' (' + args.label + ')' if args.label else ''):>18} {env_id:>12}: mean {row['final_return_mean']:8.1f} worst "
                  f"{row['final_return_worst']:8.1f} | {row['timesteps_per_seed']:>9,d} steps/seed | "
                  f"{row['steps_per_second']:>9,.0f} steps/s | compile {row['compile_s']:.0f} s", flush=True)
            _common.write_json(args.out, {"rows": list(cells.values())})
    rows = sorted(cells.values(), key=lambda r: (r["env_id"], r["algo"], r.get("label", "")))
    print(_common.table(rows, [("algo", "algo", ""), ("env", "env_id", ""), ("seeds", "num_seeds", "d"),
                               ("steps/seed", "timesteps_per_seed", ",d"), ("mean return", "final_return_mean", ".1f"),
                               ("worst", "final_return_worst", ".1f"), ("steps/s", "steps_per_second", ",.0f"),
                               ("compile s", "compile_s", ".1f")]))
    print("wrote", path)


if __name__ == "__main__":
    main()
