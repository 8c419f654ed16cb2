"""The benchmark suite in one script, sized for this machine (``--scale cpu``) or a GPU (``--scale gpu``).

    python benchmarks/suite.py --scale cpu      # minutes on a 2-core CPU
    python benchmarks/suite.py --scale gpu      # the headline table, < 10 minutes on one modern GPU

Three parts, each row with its compile time and steps/s (compilation excluded):

1. **PPO on CartPole-v1 with many vmapped seeds**: PureJaxRL's headline workload (2048 seeds x
   500k steps on a GPU; 8 seeds here), its preset settings, final returns per seed.
2. **PPO and SAC on brax**: ``brax/inverted_pendulum`` at its presets' budgets, one seed (both reach
   1000 there), and at ``--scale gpu`` ``brax/hopper`` too.
3. **Every algorithm's throughput** at a wide batch: 1024 envs on a GPU (64 here), one seed, a
   fixed number of iterations, on CartPole-v1 (discrete), Pendulum-v1 (continuous-only) or the
   MPE spread task (multi-agent). Off-policy algorithms take ``num_steps`` gradient steps per
   iteration (an update-to-data ratio of 1 / num_envs), so the row measures the loop, not a
   tuned learner.

Writes ``benchmarks/results/suite_<scale>.json`` (rows in the shape of the other benchmarks:
library, algo, env_id, num_seeds, num_envs, steps_per_second, compile_s, final returns) with the
command and machine; ``python benchmarks/make_results.py`` puts it in docs/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time

import _common

SCALES = {
    "cpu": dict(cartpole_seeds=8, cartpole_steps=500_000, brax_fraction=1.0, brax_envs=["brax/inverted_pendulum"],
                speed_envs=64, speed_iterations=20),
    "gpu": dict(cartpole_seeds=2048, cartpole_steps=500_000, brax_fraction=1.0,
                brax_envs=["brax/inverted_pendulum", "brax/hopper"], speed_envs=1024, speed_iterations=50),
}
OFF_POLICY = {"ddpg", "td3", "sac", "d4pg", "sql", "maddpg"}


def speed_env(algo_name: str) -> str:
    """The env an algorithm's throughput row runs on."""
    from purejaxpg import algorithms

    cls = algorithms.get(algo_name)
    if getattr(cls.rollout_options, "joint_agents", False):  # a class attribute (GRPO: a property)
        return "jaxmarl/MPE_simple_spread_v3"
    return "Pendulum-v1" if getattr(cls, "discrete", None) is False else "CartPole-v1"


def speed_overrides(algo_name: str, num_envs: int, iterations: int) -> dict:
    """Settings of a throughput row: ``num_envs`` envs, a fixed number of iterations."""
    from purejaxpg import algorithms, experiment

    fields = experiment.settings_fields(algorithms.get(algo_name))
    num_steps = 8 if algo_name in OFF_POLICY else 32
    out = dict(num_envs=num_envs, num_steps=num_steps, total_timesteps=num_envs * num_steps * iterations)
    if algo_name in OFF_POLICY:
        out.update(gradient_steps=num_steps, learning_starts=0, buffer_size=max(100_000, num_envs * num_steps))
    if "episode_group_size" in fields:  # GRPO scores whole episodes: CartPole's 500 steps per rollout
        out.update(num_steps=500, total_timesteps=num_envs * 500 * max(2, iterations // 10), episode_group_size=8)
    if "num_minibatches" in fields:
        out.update(num_minibatches=4)
    if "segment_length" in fields:
        out.update(segment_length=out["num_steps"])
    if "num_workers" in fields:
        out.update(num_workers=8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--parts", nargs="+", choices=["cartpole", "brax", "speed"], default=["cartpole", "brax", "speed"])
    parser.add_argument("--algos", nargs="+", default=None, help="throughput rows (default: every registered algorithm)")
    args = parser.parse_args()
    from purejaxpg import algorithms, presets

    scale = SCALES[args.scale]
    started = time.perf_counter()
    rows = []

    def record(part: str, row: dict) -> None:
        row["part"] = part
        rows.append(row)
        finals = f" | final return {row['final_return_mean']:.1f} (worst {row['final_return_worst']:.1f})" \
            if row.get("final_return_mean") is not None and part != "speed" else ""
        print(f"{part:>8} {row['algo']:>18} {row['env_id']:>30}: {row['steps_per_second']:>12,.0f} steps/s | "
              f"compile {row['compile_s']:.1f} s{finals}", flush=True)

    if "cartpole" in args.parts:
        record("cartpole", _common.time_purejaxpg("ppo", "CartPole-v1", {"total_timesteps": scale["cartpole_steps"]},
                                                  scale["cartpole_seeds"]))
    if "brax" in args.parts:
        for env_id in scale["brax_envs"]:
            for algo_name in ("ppo", "sac"):
                budget = presets.preset(algo_name, env_id).get("total_timesteps", 1_000_000)
                steps = max(1, int(budget * scale["brax_fraction"]))
                record("brax", _common.time_purejaxpg(algo_name, env_id, {"total_timesteps": steps}, 1))
    if "speed" in args.parts:
        for algo_name in args.algos or sorted(algorithms.ALGORITHMS):
            overrides = speed_overrides(algo_name, scale["speed_envs"], scale["speed_iterations"])
            record("speed", _common.time_purejaxpg(algo_name, speed_env(algo_name), overrides, 1))
    payload = {
        "description": f"benchmarks/suite.py --scale {args.scale}: PPO CartPole seeds, PPO/SAC on brax, every "
                       "algorithm's steps/s at a wide batch",
        "command": shlex.join(["python", "benchmarks/suite.py", *sys.argv[1:]]),
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": _common.machine(),
        "scale": args.scale,
        "wall_seconds": time.perf_counter() - started,
        "rows": rows,
    }
    print(f"wrote {_common.write_json(f'suite_{args.scale}', payload)} ({payload['wall_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
