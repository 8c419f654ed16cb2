"""Where PPO's time goes: the rollout alone and the update's shape.

    python benchmarks/profile_ppo.py [--rounds 10] [--iterations 200]

PPO on CartPole-v1 at the classic 4 envs x 128 steps, 1 seed. Every variant is compiled first;
then the variants run in turn, ``--rounds`` times each, and the best and median wall time per
iteration are reported (interleaving makes the variants share the machine's noise). Variants:

* ``rollout only``: PPO whose update returns the state unchanged (the rollout and the loop);
* the update's shape: ``num_epochs x num_minibatches`` of 1x1, 4x1 (full-batch steps), 4x4 (the
  default), 4x16 and 8x4.

Writes ``benchmarks/results/profile_ppo.json``. For a CPU profile of the same run, use
``perf record -F 2000 -g -p <pid> -- sleep 4`` on a long run and ``perf report --no-children
--sort dso,sym``. Never asserts a time.
"""

from __future__ import annotations

import argparse

import numpy as np

import _common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()

    from purejaxpg import experiment, train
    from purejaxpg.algorithms import PPO

    class RolloutOnly(PPO):
        def update(self, state, batch, key, hparams, progress):
            return state, {"reward_sum": batch.reward.sum()}

    batch = dict(num_envs=4, num_steps=128, total_timesteps=4 * 128 * args.iterations)
    variants = [("rollout only", {}, RolloutOnly())]
    variants += [(f"{e} epochs x {m} minibatches", dict(num_epochs=e, num_minibatches=m), None)
                 for e, m in [(1, 1), (4, 1), (4, 4), (4, 16), (8, 4)]]

    runs = []
    for name, overrides, algo_override in variants:
        algo, config, hp = experiment.build("ppo", "CartPole-v1", {**batch, **overrides})
        runs.append((name, train.make_train(algo_override or algo, config, hp), train.seed_keys(0, 1), hp))
    _, seconds = _common.interleaved_run_seconds(runs, args.rounds)
    rows = []
    for name, *_ in runs:
        t = seconds[name] / args.iterations * 1e3  # ms per iteration
        rows.append({"variant": name, "best_ms_per_iteration": float(t.min()),
                     "median_ms_per_iteration": float(np.median(t)),
                     "steps_per_second_best": 4 * 128 / t.min() * 1e3})
    print(_common.table(rows, [("variant", "variant", ""), ("best ms/iter", "best_ms_per_iteration", ".3f"),
                               ("median ms/iter", "median_ms_per_iteration", ".3f"),
                               ("steps/s (best)", "steps_per_second_best", ",.0f")]))
    print("wrote", _common.write_json("profile_ppo", {"rows": rows, "iterations": args.iterations}))


if __name__ == "__main__":
    main()
