"""PPO on CartPole-v1 at the classic config: purejaxpg vs rejax vs the raw env ceiling.

Config (CleanRL / PureJaxRL): 4 envs x 128 steps, 5e5 steps, 4 epochs x 4 minibatches,
lr 2.5e-4 linearly annealed, gamma 0.99, lambda 0.95, clip 0.2, ent 0.01, vf 0.5,
global-norm clip 0.5, tanh 64x64. For 1 seed and 8 vmapped seeds, in one process:

* purejaxpg PPO: compile time, env steps/s, final return per seed;
* rejax PPO (optional: ``pip install ".[bench]"``) at the same config on the same gymnax envs;
* raw gymnax stepping of the same env count with random actions (the ceiling).

Every library is compiled and run once first; then ``--repeats`` rounds each run every library's
compiled call once, back to back, so that they share the machine's noise (this shared VM drifts
by 10-20% over minutes). Each row gives steps/s of its best and its median round; a rejax row
gives the ratio purejaxpg / rejax as the median over the rounds of each round's ratio of wall
times, with its range. Each row also gives the process's CPU seconds per wall second during its
timed runs (1.0 = one busy core; XLA's CPU runtime spreads one program over the machine's threads).

Optionally (``--pendulum``) PPO on Pendulum-v1 at 1e6 steps with the library's preset.

``--xla-cpu-threads N`` starts JAX with XLA's CPU thread pool sized to N threads (default: one
per CPU), for both libraries alike (`_common.start_jax_cpu_backend`). On a 2-core machine one
XLA thread keeps a 1-seed run's small kernels on one core instead of handing them between two.

``--cpu-devices N`` starts JAX with N CPU devices (`purejaxpg.devices`; default 1). purejaxpg then
splits its seeds over them when they divide evenly, as its command line does by default (one
device per core). rejax has no such option: it is timed as it ships (one device) and again with
its seed axis split over the devices by the benchmark (`peers.split_seeds_over_devices`), and
the ceiling is measured with its seeds split the same way.

    python benchmarks/ppo_cartpole.py [--seeds 1 8] [--repeats 5] [--pendulum] [--no-rejax] [--name N]
                                      [--xla-cpu-threads N] [--cpu-devices N]

Writes ``benchmarks/results/ppo_cartpole.json`` (or ``<N>.json``). Never asserts a time.
"""

from __future__ import annotations

import argparse

import _common
import peers

CLASSIC = dict(num_envs=4, num_steps=128, total_timesteps=500_000, num_epochs=4, num_minibatches=4,
               lr=2.5e-4, anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01,
               vf_coef=0.5, max_grad_norm=0.5, hidden=(64, 64), activation="tanh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds; each runs every library's compiled call once, in turn")
    parser.add_argument("--pendulum", action="store_true", help="also PPO on Pendulum-v1 at 1e6 steps, 8 seeds")
    parser.add_argument("--no-rejax", action="store_true")
    parser.add_argument("--name", default="ppo_cartpole",
                        help="results file benchmarks/results/<name>.json (e.g. for a run under taskset)")
    parser.add_argument("--xla-cpu-threads", type=int, default=None,
                        help="size of XLA's CPU thread pool for the whole process (default: one per CPU)")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="CPU devices JAX presents (default 1); purejaxpg splits seeds over them")
    args = parser.parse_args()
    _common.use_cpu_devices(args.cpu_devices)
    _common.start_jax_cpu_backend(args.xla_cpu_threads)

    rows = []
    for num_seeds in args.seeds:
        ours = _common.prepare_purejaxpg("ppo", "CartPole-v1", CLASSIC, num_seeds)
        theirs = []
        if not args.no_rejax:
            # as rejax ships (one device); with several devices, also with its seeds split over them
            for split in ([False, True] if ours.devices_used > 1 else [False]):
                try:
                    theirs.append(peers.prepare_rejax_ppo(
                        "CartPole-v1", num_seeds=num_seeds, total_timesteps=CLASSIC["total_timesteps"],
                        num_envs=4, num_steps=128, num_epochs=4, num_minibatches=4, learning_rate=2.5e-4,
                        anneal_lr=True, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
                        max_grad_norm=0.5, hidden=(64, 64), activation="tanh", split_seeds=split,
                        name="rejax" + (", seeds split by the benchmark" if split else "")))
                except ImportError:
                    print("rejax not installed: pip install '.[bench]'")
                    break
        for t in [ours, *theirs]:
            print(f"compiled {t.name}, {num_seeds} seed(s) ({t.compile_s:.1f} s)", flush=True)
        # every round runs each library once, back to back, so that they share the machine's noise
        measured = _common.interleave([ours, *theirs], args.repeats)
        for t in [ours, *theirs]:
            row = {**t.report(), **_common.timing_fields(t, measured[t.name]), "library": t.name}
            extra = ""
            if t is not ours:
                row["final_return_worst"] = min(row["final_return"])
                # per round: their wall time over ours (how many times faster purejaxpg ran)
                ratio = _common.round_ratios(measured[t.name]["seconds"], measured[ours.name]["seconds"])
                row.update(ratio_purejaxpg_over_rejax=ratio["median"], ratio_min=ratio["min"],
                           ratio_max=ratio["max"])
                extra = (f" (purejaxpg/rejax per round: median {ratio['median']:.2f}x, "
                         f"{ratio['min']:.2f}-{ratio['max']:.2f}x)")
            rows.append(row)
            print(f"{t.name}, {num_seeds} seed(s) on {row['devices_used']} device(s): "
                  f"{row['steps_per_second']:,.0f} steps/s best, {row['steps_per_second_median']:,.0f} median, "
                  f"final return mean {row['final_return_mean']:.1f}{extra}", flush=True)
        ceiling = peers.raw_env_steps_per_second("CartPole-v1", num_envs=4, num_steps=250_000, num_seeds=num_seeds,
                                                 split_seeds=args.cpu_devices > 1)
        ceiling.update(library="gymnax (random actions)", algo="ceiling")
        rows.append(ceiling)
        print(f"raw env ceiling, {num_seeds} seed(s) x 4 envs: {ceiling['steps_per_second']:,.0f} steps/s", flush=True)
    if args.pendulum:
        pend = _common.time_purejaxpg("ppo", "Pendulum-v1", {}, 8, repeats=1)
        rows.append(pend)
        print(f"purejaxpg ppo Pendulum-v1 (preset, 1e6 steps, 8 seeds): final return mean "
              f"{pend['final_return_mean']:.1f}, worst {pend['final_return_worst']:.1f}, "
              f"{pend['steps_per_second']:,.0f} steps/s", flush=True)

    print()
    print(_common.table(rows, [("library", "library", ""), ("algo", "algo", ""), ("env", "env_id", ""),
                               ("seeds", "num_seeds", "d"), ("devices", "devices_used", "d"),
                               ("steps/s best", "steps_per_second", ",.0f"),
                               ("median", "steps_per_second_median", ",.0f"),
                               ("ours/theirs median", "ratio_purejaxpg_over_rejax", ".2f"),
                               ("CPU s / wall s", "cpu_per_wall", ".2f"),
                               ("compile s", "compile_s", ".1f"), ("mean return", "final_return_mean", ".1f"),
                               ("worst", "final_return_worst", ".1f")]))
    print("wrote", _common.write_json(args.name, {"config": CLASSIC, "xla_cpu_threads": args.xla_cpu_threads,
                                                  "cpu_devices": args.cpu_devices, "rows": rows}))


if __name__ == "__main__":
    main()
