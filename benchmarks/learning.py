"""Final return per algorithm x environment over 8 seeds: the README's results table.

Each cell trains ``--seeds`` vmapped seeds with the algorithm's preset for that env (or its
defaults) at the budget below, and reports the final return (mean return of the episodes that
ended in the last 10% of iterations) mean and worst over seeds, env steps per seed, steps/s and
compile time.

    python benchmarks/learning.py                          # the default table
    python benchmarks/learning.py --algos ppo trpo --envs CartPole-v1 --seeds 8

Writes ``benchmarks/results/learning.json`` (merging with earlier cells) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

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
}
ALGOS = ["ppo", "trpo", "npg", "a2c", "reinforce", "reinforce_baseline", "ppo_kl", "mdpo", "grpo", "nac"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=ALGOS)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: per-env budget, or the preset's)")
    args = parser.parse_args()

    from purejaxpg import algorithms, envs, experiment, train
    from purejaxpg.config import ConfigError

    path = os.path.join(_common.RESULTS, "learning.json")
    cells = {}
    if os.path.exists(path):
        with open(path) as fh:
            cells = {(r["algo"], r["env_id"]): r for r in json.load(fh).get("rows", [])}
    for env_id in args.envs:
        spec = envs.make(env_id)[2]
        for algo_name in args.algos:
            algo_cls = algorithms.get(algo_name)
            preset = getattr(algo_cls, "PRESETS", {}).get(env_id, {})
            steps = args.steps or preset.get("total_timesteps") or BUDGETS.get(env_id, 500_000)
            overrides = {"total_timesteps": steps}
            if "episode_group_size" in experiment.settings_fields(algo_cls) and not preset \
                    and spec.max_episode_steps and spec.max_episode_steps <= 1000:
                # episodic groups (GRPO) need whole episodes per rollout: 4 groups of 8 envs
                overrides.update(num_envs=32, num_steps=spec.max_episode_steps)
            try:
                train.make_train(*experiment.build(algo_name, env_id, overrides))  # validates, no compile
            except ConfigError as err:
                print(f"skip {algo_name} on {env_id}: {err}", flush=True)
                continue
            row = _common.time_purejaxpg(algo_name, env_id, overrides, args.seeds)
            row["measured"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
            cells[(algo_name, env_id)] = row
            print(f"{algo_name:>18} {env_id:>12}: mean {row['final_return_mean']:8.1f} worst "
                  f"{row['final_return_worst']:8.1f} | {row['timesteps_per_seed']:>9,d} steps/seed | "
                  f"{row['steps_per_second']:>9,.0f} steps/s | compile {row['compile_s']:.0f} s", flush=True)
            _common.write_json("learning", {"rows": list(cells.values())})
    rows = sorted(cells.values(), key=lambda r: (r["env_id"], r["algo"]))
    print(_common.table(rows, [("algo", "algo", ""), ("env", "env_id", ""), ("seeds", "num_seeds", "d"),
                               ("steps/seed", "timesteps_per_seed", ",d"), ("mean return", "final_return_mean", ".1f"),
                               ("worst", "final_return_worst", ".1f"), ("steps/s", "steps_per_second", ",.0f"),
                               ("compile s", "compile_s", ".1f")]))
    print("wrote", path)


if __name__ == "__main__":
    main()
