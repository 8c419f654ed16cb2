"""Throughput: env steps/s per algorithm beside the raw env ceiling; scaling with envs and seeds.

    python benchmarks/throughput.py algos   [--algos ppo trpo ...]   # same envs and batch for all
    python benchmarks/throughput.py envs    [--num-envs 4 16 64 256 1024 4096]
    python benchmarks/throughput.py seeds   [--seeds 1 2 4 8 16 32 64] [--cpu-devices N --name NAME]

``algos``: every algorithm on CartPole-v1 with 4 envs x 128 steps (PPO's classic batch) for a
fixed number of iterations, 1 seed, next to gymnax's raw stepping rate of the same 4 envs. Every
algorithm is compiled first; then they run in turn, ``--rounds`` times each, so that they share
the machine's noise, and the best and the median round are reported with each one's ratio to
PPO.
``envs``/``seeds``: PPO on CartPole-v1 (num_steps 128, 4 epochs x 4 minibatches) as the env or seed
count grows; each runs twice and the faster call counts (a process's first execution of a
program also pays one-time set-up: 127k steps/s against 166k and 183k for the next two calls of
the same 1-seed program). Steps/s excludes compilation, which is reported separately. Writes
``benchmarks/results/throughput_<mode>.json`` (or ``<NAME>.json``). ``--cpu-devices N`` starts JAX
with N CPU devices; seed counts that divide evenly are then split over them, as the command line
does (`purejaxpg.devices`). Never asserts a time.
"""

from __future__ import annotations

import argparse

import _common
import peers

ALGOS = ["ppo", "trpo", "npg", "a2c", "reinforce", "reinforce_baseline", "ppo_kl", "mdpo", "nac"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["algos", "envs", "seeds"])
    parser.add_argument("--algos", nargs="+", default=ALGOS)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--iterations", type=int, default=100, help="iterations timed per measurement")
    parser.add_argument("--rounds", type=int, default=7, help="algos: interleaved timed rounds per algorithm")
    parser.add_argument("--cpu-devices", type=int, default=1, help="CPU devices JAX presents (default 1)")
    parser.add_argument("--name", default=None, help="results file benchmarks/results/<name>.json")
    args = parser.parse_args()
    _common.use_cpu_devices(args.cpu_devices)

    rows = []
    if args.mode == "algos":
        rows = interleaved_algos(args.algos, args.iterations, args.rounds)
        ceiling = peers.raw_env_steps_per_second("CartPole-v1", num_envs=4, num_steps=250_000)
        ceiling.update(algo="raw env (ceiling)")
        rows.append(ceiling)
    elif args.mode == "envs":
        for n in args.num_envs:
            batch = dict(num_envs=n, num_steps=128, total_timesteps=n * 128 * max(4, args.iterations * 4 // n))
            row = _common.time_purejaxpg("ppo", "CartPole-v1", batch, 1, repeats=2)
            ceiling = peers.raw_env_steps_per_second("CartPole-v1", num_envs=n, num_steps=max(1000, 1_000_000 // n))
            row["ceiling_steps_per_second"] = ceiling["steps_per_second"]
            rows.append(row)
            print(f"num_envs {n:>5}: {row['steps_per_second']:>12,.0f} steps/s (ceiling "
                  f"{ceiling['steps_per_second']:,.0f}), compile {row['compile_s']:.1f} s", flush=True)
    else:
        batch = dict(num_envs=4, num_steps=128, total_timesteps=4 * 128 * args.iterations)
        for s in args.seeds:
            row = _common.time_purejaxpg("ppo", "CartPole-v1", batch, s, repeats=2)
            rows.append(row)
            print(f"seeds {s:>3} on {row['devices_used']} device(s): {row['steps_per_second']:>12,.0f} steps/s, "
                  f"compile {row['compile_s']:.1f} s", flush=True)
    print(_common.table(rows, [("algo", "algo", ""), ("envs", "num_envs", "d"), ("seeds", "num_seeds", "d"),
                               ("devices", "devices_used", "d"),
                               ("steps/s", "steps_per_second", ",.0f"), ("median", "steps_per_second_median", ",.0f"),
                               ("/ppo best", "ratio_to_ppo_best", ".2f"), ("/ppo median", "ratio_to_ppo_median", ".2f"),
                               ("ceiling", "ceiling_steps_per_second", ",.0f"), ("compile s", "compile_s", ".1f")]))
    print("wrote", _common.write_json(args.name or f"throughput_{args.mode}", {"cpu_devices": args.cpu_devices,
                                                                             "rows": rows}))


def interleaved_algos(names: list[str], iterations: int, rounds: int) -> list[dict]:
    """Compile every algorithm at 4 x 128 on CartPole-v1, then time them in interleaved rounds.

    ``steps_per_second`` is the best round, ``steps_per_second_median`` the median one; the
    ratios divide each by PPO's figure of the same kind (when PPO is among ``names``).
    """
    import numpy as np

    from purejaxpg import experiment, train

    batch = dict(num_envs=4, num_steps=128, total_timesteps=4 * 128 * iterations)
    runs, configs = [], {}
    for name in names:
        algo, configs[name], hparams = experiment.build(name, "CartPole-v1", batch)
        runs.append((name, train.make_train(algo, configs[name], hparams), train.seed_keys(0, 1), hparams))
    compile_seconds, seconds = _common.interleaved_run_seconds(runs, rounds)
    rows = []
    for name in names:
        config, t = configs[name], seconds[name]
        steps = config.num_iterations * config.batch_size
        rows.append({"library": "purejaxpg", "algo": name, "env_id": "CartPole-v1", "num_seeds": 1,
                     "num_envs": config.num_envs, "num_steps": config.num_steps, "timesteps_per_seed": steps,
                     "rounds": rounds, "compile_s": compile_seconds[name], "steps_per_second": steps / t.min(),
                     "steps_per_second_median": steps / float(np.median(t))})
    ppo = next((r for r in rows if r["algo"] == "ppo"), None)
    for row in rows:
        if ppo is not None:
            row["ratio_to_ppo_best"] = row["steps_per_second"] / ppo["steps_per_second"]
            row["ratio_to_ppo_median"] = row["steps_per_second_median"] / ppo["steps_per_second_median"]
        print(f"{row['algo']:>18}: {row['steps_per_second']:>10,.0f} steps/s best, "
              f"{row['steps_per_second_median']:>10,.0f} median", flush=True)
    return rows


if __name__ == "__main__":
    main()
