"""Print the README's result tables (Markdown) from the JSON files the benchmark scripts wrote.

    python benchmarks/readme_tables.py

Reads ``benchmarks/results/{ppo_cartpole_cores,ppo_cartpole,ppo_cartpole_xla1,throughput_algos,throughput_envs,throughput_seeds,throughput_seeds_cores,learning}.json``
(whichever exist) and prints one Markdown table per file, so the figures in the README are the
scripts' own output, not retyped.
"""

from __future__ import annotations

import json
import os

import _common

ENV_ORDER = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0", "Breakout-MinAtar"]


def _load(name: str) -> dict | None:
    path = os.path.join(_common.RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are ``(header, key, format spec)``."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), f) for _, k, f in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    for name, title in (("ppo_cartpole_cores", "PPO, classic CartPole config, one CPU device per core"),
                        ("ppo_cartpole", "PPO, classic CartPole config, one CPU device"),
                        ("ppo_cartpole_xla1", "One CPU device, XLA's CPU thread pool sized to 1 thread")):
        ppo = _load(name)
        if not ppo:
            continue
        rows = []
        for r in ppo["rows"]:
            label = {"purejaxpg": f"purejaxpg `{r.get('algo')}`", "rejax": "rejax `ppo` (same config)",
                     "rejax, seeds split by the benchmark": "rejax `ppo`, seeds split over the devices by the benchmark",
                     }.get(r["library"], "raw gymnax stepping, random actions (ceiling)")
            ratio = r.get("ratio_purejaxpg_over_rejax")
            if ratio is not None and "ratio_min" in r:
                ratio = f"{ratio:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})"
            elif ratio is not None:
                ratio = f"{ratio:.2f}"
            rows.append({**r, "devices_used": r.get("devices_used", 1), "ratio": ratio,
                         "name": label if r.get("env_id") == "CartPole-v1" else f"{label} on {r['env_id']}"})
        print(f"### {title}\n")
        print(markdown(rows, [("library", "name", ""), ("seeds", "num_seeds", "d"), ("devices", "devices_used", "d"),
                              ("env steps/s, best round", "steps_per_second", ",.0f"),
                              ("median round", "steps_per_second_median", ",.0f"),
                              ("purejaxpg / rejax, median of rounds (range)", "ratio", ""),
                              ("CPU s / wall s", "cpu_per_wall", ".2f"),
                              ("compile s", "compile_s", ".1f"), ("final return mean", "final_return_mean", ".1f"),
                              ("worst seed", "final_return_worst", ".1f")]))
        print(f"\n({ppo['machine']['date']}, `{ppo['machine']['command']}`)\n")
    algos = _load("throughput_algos")
    if algos:
        print("### Steps/s per algorithm, CartPole-v1, 4 envs x 128 steps, 1 seed\n")
        print(markdown(algos["rows"], [("algo", "algo", ""), ("env steps/s (best round)", "steps_per_second", ",.0f"),
                                       ("median round", "steps_per_second_median", ",.0f"),
                                       ("/ PPO, best", "ratio_to_ppo_best", ".2f"),
                                       ("/ PPO, median", "ratio_to_ppo_median", ".2f"),
                                       ("compile s", "compile_s", ".1f")]))
        print(f"\n({algos['machine']['date']}, `{algos['machine']['command']}`)\n")
    for name, header in (("throughput_envs", "num_envs"), ("throughput_seeds", "num_seeds"),
                         ("throughput_seeds_cores", "num_seeds")):
        data = _load(name)
        if data:
            where = f", {data['cpu_devices']} CPU devices" if data.get("cpu_devices", 1) > 1 else ""
            print(f"### PPO steps/s as {header} grows (CartPole-v1, 128 steps per env per iteration{where})\n")
            rows = [{**r, "devices_used": r.get("devices_used", 1)} for r in data["rows"]]
            print(markdown(rows, [(header, header, "d"), ("devices", "devices_used", "d"),
                                  ("env steps/s", "steps_per_second", ",.0f"),
                                  ("raw env ceiling", "ceiling_steps_per_second", ",.0f"),
                                  ("compile s", "compile_s", ".1f")]))
            print(f"\n({data['machine']['date']}, `{data['machine']['command']}`)\n")
    learning = _load("learning")
    if learning:
        rows = sorted(learning["rows"], key=lambda r: (ENV_ORDER.index(r["env_id"]) if r["env_id"] in ENV_ORDER
                                                        else len(ENV_ORDER), r["env_id"], r["algo"]))
        print("### Final return per algorithm and environment, 8 seeds\n")
        print(markdown(rows, [("env", "env_id", ""), ("algo", "algo", ""), ("env steps per seed", "timesteps_per_seed", ",d"),
                              ("seeds", "num_seeds", "d"), ("final return mean", "final_return_mean", ".1f"),
                              ("worst seed", "final_return_worst", ".1f"), ("env steps/s", "steps_per_second", ",.0f"),
                              ("measured (UTC)", "measured", "")]))
        print(f"\n(last cell written {learning['machine']['date']}, `python benchmarks/learning.py --envs ...`)\n")


if __name__ == "__main__":
    main()
