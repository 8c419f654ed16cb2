"""SAC and TD3 at rejax's Pendulum-v1 configs: purejaxpg vs rejax 0.1.3 vs sbx, side by side in one process.

The workload is rejax's own ``configs/gymnax/pendulum.yaml`` (`REJAX_PENDULUM`): one env, one
gradient step per env step, a 1e4-transition ring buffer, 64x64 MLPs;

* SAC: batch 256, lr 0.01 (actor, critics and temperature), tau 0.02 (rejax's polyak 0.98),
  gamma 0.99, 256 warm-up steps, 2 critics, alpha learnt from 1 towards entropy -|A|;
* TD3: batch 100, lr 1e-3, tau 0.05 (polyak 0.95), gamma 0.99, 1000 warm-up steps with uniform
  actions, 2 critics, actor and targets every 2nd critic step, exploration noise 0.3 and target
  noise 0.2 clipped at 0.5 (in env units; purejaxpg and sbx take [-1, 1] units: half of that).

Every library runs the same work (`purejaxpg_overrides`, `rejax_settings`, `sbx_settings`). Two
settings of rejax's file are changed on rejax's side because purejaxpg has no such option for its
off-policy algorithms: ``activation: swish`` becomes relu (purejaxpg has relu, tanh, elu, gelu)
and ``normalize_observations: true`` becomes false (purejaxpg rejects observation
normalisation with a replay buffer). ``--rejax-as-configured`` adds a row of rejax exactly as
its file says, to show what those two changes do to rejax's speed. What cannot be made equal is
listed under ``notes`` in every row (`NOTES`).

For each algorithm and seed count (1 seed, and 8 seeds vmapped in one compiled call), in one
process:

1. every library is compiled and run once;
2. compile rounds: each round compiles every library's training call anew (fresh trace, lower and
   XLA compile; purejaxpg's init and run programs together, rejax's ``jit(vmap(train))``, which
   holds both), in turn;
3. run rounds: each round runs every library's compiled training call once, in turn, so that
   they share the machine's noise. One call is a whole training run of ``--timesteps`` env steps
   per seed from its initialisation (warm-up included).

A row gives steps/s of the best and the median round, the process's CPU seconds per wall second,
the median compile seconds, and, for each peer, the per-round ratios purejaxpg / peer: steps/s
(above 1: purejaxpg is faster) and compile seconds (below 1: purejaxpg compiles faster), as the
median over the rounds with their range. ``cpu_ratio_*`` is the same speed ratio from CPU time
instead of wall time: on a machine shared with other jobs it moves less.

sbx (Stable-Baselines-Jax: SB3's loop, host-side numpy replay buffer and gymnasium env, one jit
call per gradient step) runs gymnasium's Pendulum-v1 at the same settings, 1 seed only: it
cannot vmap seeds (its "8 seeds" are 8 sequential runs, the same steps/s; not run). Its "compile
s" is its first ``learn`` minus the median of the later ones (its jit compiles inside ``learn``).
It is optional: ``pip install ".[bench]"``; without it the rows say why.

    python benchmarks/offpolicy_peers.py [--algos sac td3] [--seeds 1 8] [--rounds 5] [--compile-rounds 3]
        [--timesteps 5000] [--no-sbx] [--rejax-as-configured] [--xla-cpu-threads N] [--name N]

Writes ``benchmarks/results/offpolicy_peers.json`` (or ``<N>.json``). Never asserts a time.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common
import numpy as np
import peers

ENV_ID = "Pendulum-v1"

#: rejax's configs/gymnax/pendulum.yaml (keraJLi/rejax), the sac and td3 entries as written there
REJAX_PENDULUM: dict[str, dict[str, Any]] = {
    "sac": dict(env="Pendulum-v1", agent_kwargs={"activation": "swish"}, num_envs=1, buffer_size=10_000,
                fill_buffer=256, batch_size=256, learning_rate=0.01, num_epochs=1, total_timesteps=10_000,
                eval_freq=100, gamma=0.99, polyak=0.98, target_entropy_ratio=None, normalize_observations=True),
    "td3": dict(env="Pendulum-v1", actor_kwargs={"activation": "swish"}, critic_kwargs={"activation": "swish"},
                num_envs=1, buffer_size=10_000, fill_buffer=1000, batch_size=100, learning_rate=0.001, num_epochs=1,
                total_timesteps=10_000, eval_freq=100, gamma=0.99, polyak=0.95, max_grad_norm=100,
                exploration_noise=0.3, target_noise=0.2, target_noise_clip=0.5, policy_delay=2,
                normalize_observations=True),
}

#: what the benchmark cannot make equal (reported in every row)
NOTES: dict[str, list[str]] = {
    "common": [
        "rejax's activation swish -> relu and normalize_observations true -> false on rejax's side, for equal "
        "work (purejaxpg's off-policy algorithms have neither); --rejax-as-configured times rejax as its file says.",
        "replay sampling: rejax draws each minibatch WITHOUT replacement (jax.random.choice with p over the whole "
        "buffer: a Gumbel top-k over all 1e4 slots per gradient step); purejaxpg (flashbax) and sbx (SB3) draw "
        "uniformly WITH replacement. Each library's own design, kept.",
        "rejax treats a time-limit truncation as termination (done = terminated | truncated via the gymnax 0.0.x "
        "step adapter); purejaxpg and sbx bootstrap through it. No effect on speed.",
        "network init: purejaxpg orthogonal, rejax and sbx flax's default; rejax and sbx keep Adam eps 1e-8 like "
        "purejaxpg.",
        "warm-up: rejax learns once global_step > fill_buffer; purejaxpg's learning_starts = fill_buffer + 1 and "
        "sbx's learning_starts = fill_buffer give the same number of gradient steps.",
    ],
    "sac": [
        "rejax's SAC takes policy actions from the first step (no uniform warm-up); purejaxpg and sbx act "
        "uniformly at random before learning starts.",
        "rejax's SAC wraps its Adam in optax.clip(inf) (max_grad_norm defaults to inf): an element-wise no-op.",
        "log-std clip: rejax [-10, 2], purejaxpg [-5, 2], sbx [-20, 2].",
    ],
    "td3": [
        "rejax's TD3 actor loss is -mean over BOTH critics (two critic forward/backward passes); purejaxpg and sbx "
        "use the first critic only.",
        "rejax clips each gradient element to [-100, 100] (optax.clip(max_grad_norm)); purejaxpg and sbx do not clip.",
        "sbx updates the target networks after every critic step; rejax and purejaxpg with every actor step "
        "(every 2nd).",
    ],
}


def purejaxpg_overrides(algo: str, total_timesteps: int) -> dict[str, Any]:
    """purejaxpg's flat overrides (`purejaxpg.experiment.build`) for rejax's Pendulum workload."""
    cfg = REJAX_PENDULUM[algo]
    common = dict(num_envs=cfg["num_envs"], num_steps=1, total_timesteps=total_timesteps,
                  buffer_size=cfg["buffer_size"], batch_size=cfg["batch_size"], gradient_steps=-1,
                  learning_starts=cfg["fill_buffer"] + 1, num_critics=2, hidden=(64, 64), activation="relu",
                  actor_lr=cfg["learning_rate"], critic_lr=cfg["learning_rate"], gamma=cfg["gamma"],
                  tau=round(1.0 - cfg["polyak"], 10))
    if algo == "sac":
        return dict(common, policy_delay=1, alpha_lr=cfg["learning_rate"], init_alpha=1.0,
                    target_entropy_per_dim=-1.0)
    # Pendulum's actions are in [-2, 2]: purejaxpg's noise scales are in [-1, 1] units
    # two env steps per iteration, then 2 critic steps and 1 actor step: the same work, in groups that
    # need no lax.cond (the actor moves every 2nd env step either way)
    half_range = 2.0
    return dict(common, num_steps=cfg["policy_delay"], policy_delay=cfg["policy_delay"], exploration_noise=cfg["exploration_noise"] / half_range,
                target_noise=cfg["target_noise"] / half_range, target_noise_clip=cfg["target_noise_clip"] / half_range)


def rejax_settings(algo: str, as_configured: bool = False) -> dict[str, Any]:
    """rejax's ``create`` settings (without env, total_timesteps and evaluation) for the workload;
    ``as_configured``: exactly its file (swish, observation normalisation)."""
    cfg = {k: v for k, v in REJAX_PENDULUM[algo].items() if k not in ("env", "total_timesteps", "eval_freq")}
    if algo == "sac":
        cfg["agent_kwargs"] = {"activation": "relu", "hidden_layer_sizes": (64, 64)}
        cfg.pop("target_entropy_ratio")  # only read for discrete actions; continuous: -|A|
    else:  # rejax's TD3 networks are 64x64 always
        cfg["actor_kwargs"] = {"activation": "relu"}
        cfg["critic_kwargs"] = {"activation": "relu"}
    cfg["normalize_observations"] = False
    if as_configured:
        for key in ("agent_kwargs", "actor_kwargs", "critic_kwargs"):
            if key in cfg:
                cfg[key] = dict(cfg[key], activation="swish")
        cfg["normalize_observations"] = True
    return cfg


def sbx_settings(algo: str) -> dict[str, Any]:
    """sbx's constructor settings for the workload (noise scales in its [-1, 1] action units)."""
    cfg = REJAX_PENDULUM[algo]
    common = dict(learning_rate=cfg["learning_rate"], buffer_size=cfg["buffer_size"],
                  learning_starts=cfg["fill_buffer"], batch_size=cfg["batch_size"],
                  tau=round(1.0 - cfg["polyak"], 10), gamma=cfg["gamma"], train_freq=1, gradient_steps=1,
                  policy_kwargs={"net_arch": [64, 64], "n_critics": 2})  # relu is sbx's default activation
    if algo == "sac":
        return dict(common, policy_delay=1, ent_coef="auto_1.0", target_entropy="auto")
    half_range = 2.0
    return dict(common, policy_delay=cfg["policy_delay"], target_policy_noise=cfg["target_noise"] / half_range,
                target_noise_clip=cfg["target_noise_clip"] / half_range,
                action_noise_std=cfg["exploration_noise"] / half_range)


# ---------------------------------------------------------------------------------------------
# The three libraries, each as a `_common.Timed` plus a ``recompile() -> seconds``
# ---------------------------------------------------------------------------------------------


def prepare_ours(algo: str, num_seeds: int, total_timesteps: int, seed: int = 0):
    """``(Timed, recompile)`` of purejaxpg (`_common.prepare_purejaxpg`).

    ``recompile()`` traces, lowers and compiles anew both programs `purejaxpg.train.run_chunked`
    compiles for this run, the vmapped ``init`` and the vmapped ``run`` of all iterations, and
    returns the seconds (the `Timed`'s own ``compile_s`` is run_chunked's, which counts ``run`` only).
    """
    import jax

    from purejaxpg import experiment, train
    from purejaxpg.config import hparams_to_arrays

    overrides = purejaxpg_overrides(algo, total_timesteps)
    timed = _common.prepare_purejaxpg(algo, ENV_ID, overrides, num_seeds, seed)
    algo_obj, config, hparams = experiment.build(algo, ENV_ID, overrides)
    trainer = train.make_train(algo_obj, config, hparams)  # the same (cached) trainer
    keys = train.seed_keys(seed, num_seeds)
    hp = hparams_to_arrays(hparams)
    hp_axes = jax.tree.map(lambda x: 0 if np.ndim(x) == 1 else None, hp)
    runner = jax.eval_shape(jax.vmap(trainer.init, in_axes=(0, hp_axes)), keys, hp)

    def recompile() -> float:
        t0 = time.perf_counter()
        jax.jit(jax.vmap(trainer.init, in_axes=(0, hp_axes))).lower(keys, hp).compile()
        jax.jit(jax.vmap(trainer.run, in_axes=(0, hp_axes, None)), static_argnums=2).lower(
            runner, hp, trainer.num_iterations).compile()
        return time.perf_counter() - t0

    settings = experiment.describe(algo_obj, config, hparams)
    return timed, recompile, settings


def prepare_rejax_offpolicy(algo: str, num_seeds: int, total_timesteps: int, *, as_configured: bool = False,
                            seed: int = 0, name: str = "rejax"):
    """``(Timed, recompile, settings)`` of rejax's SAC or TD3 (`peers.prepare_rejax`)."""
    from rejax import SAC, TD3

    cls = {"sac": SAC, "td3": TD3}[algo]
    settings = rejax_settings(algo, as_configured)
    if algo == "td3" and total_timesteps % settings["policy_delay"]:
        raise ValueError("rejax's TD3 collects policy_delay env steps per iteration: make --timesteps a multiple")
    rejax_algo = peers.make_rejax_algo(cls, ENV_ID, total_timesteps, settings)
    keys = peers.rejax_seed_keys(seed, num_seeds)
    reported = dict(env=ENV_ID, total_timesteps=total_timesteps, eval_freq=total_timesteps,
                    skip_initial_evaluation=True, eval_callback="no-op", **settings)
    timed = peers.prepare_rejax(rejax_algo, keys, steps=num_seeds * total_timesteps, name=name,
                                report_fields={"algo": algo, "env_id": ENV_ID, "timesteps_per_seed": total_timesteps},
                                eval_seed=seed + 1)
    return timed, (lambda: peers.compile_rejax(rejax_algo, keys)[1]), reported


def prepare_sbx(algo: str, total_timesteps: int, seed: int = 0, name: str = "sbx"):
    """``(Timed, None, settings)`` of sbx's SAC or TD3 on gymnasium's Pendulum-v1, 1 seed.

    Each call builds a fresh model (new networks, empty buffer) with ``seed`` and runs
    ``learn(total_timesteps)``; the call's wall time covers both, as a rejax or purejaxpg call
    covers initialisation and training. sbx's jitted update functions are compiled by its first
    call and reused by later ones (they are cached per shape). Raises ImportError without sbx.
    """
    import importlib.metadata

    import gymnasium
    import sbx
    from stable_baselines3.common.noise import NormalActionNoise

    settings = sbx_settings(algo)

    def build():
        kwargs = dict(settings)
        std = kwargs.pop("action_noise_std", None)
        env = gymnasium.make(ENV_ID)
        if std is not None:
            kwargs["action_noise"] = NormalActionNoise(np.zeros(1), np.full(1, std))
        cls = {"sac": sbx.SAC, "td3": sbx.TD3}[algo]
        return cls("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **kwargs)

    last = [None]
    build_seconds = []

    def call() -> float:
        t0 = time.perf_counter()
        model = build()
        build_seconds.append(time.perf_counter() - t0)
        model.learn(total_timesteps=total_timesteps)
        elapsed = time.perf_counter() - t0
        last[0] = model
        return elapsed

    first = call()

    def report() -> dict[str, Any]:
        episodes = list(last[0].ep_info_buffer)[-3:]
        returns = [float(e["r"]) for e in episodes]
        return {
            "library": "sbx", "version": importlib.metadata.version("sbx-rl"),
            "stable_baselines3_version": importlib.metadata.version("stable-baselines3"),
            "gymnasium_version": importlib.metadata.version("gymnasium"),
            "algo": algo, "env_id": f"{ENV_ID} (gymnasium)", "num_seeds": 1, "devices_used": 1,
            "timesteps_per_seed": total_timesteps, "first_call_s": first,
            "build_s": build_seconds, "build_definition": "seconds of each call spent building the model "
                                                          "(networks, optimisers, buffer) before learn()",
            "final_return": returns, "final_return_mean": float(np.mean(returns)) if returns else None,
            "final_return_definition": "mean return of the last 3 training episodes (SB3's Monitor)",
        }

    timed = _common.Timed(name, call, total_timesteps, float("nan"), report, first)
    reported = dict(settings, env=f"{ENV_ID} (gymnasium)", policy="MlpPolicy", seed=seed)
    return timed, None, reported


# ---------------------------------------------------------------------------------------------
# Script
# ---------------------------------------------------------------------------------------------


def _ratio_fields(prefix: str, ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    r = _common.round_ratios(theirs, ours)  # their wall time / ours = our steps/s / theirs
    return {f"{prefix}": r["median"], f"{prefix}_min": r["min"], f"{prefix}_max": r["max"]}


def measure(algo: str, num_seeds: int, args, machine: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one (algorithm, seed count): purejaxpg, rejax (equal work), optionally rejax as
    configured, and sbx (1 seed)."""
    entries = []  # (Timed, recompile, settings)
    entries.append(prepare_ours(algo, num_seeds, args.timesteps))
    entries.append(prepare_rejax_offpolicy(algo, num_seeds, args.timesteps, name="rejax"))
    if args.rejax_as_configured:
        entries.append(prepare_rejax_offpolicy(algo, num_seeds, args.timesteps, as_configured=True,
                                               name="rejax (as configured: swish, obs norm)"))
    skipped = []
    if not args.no_sbx:
        if num_seeds != 1:
            skipped.append({"library": "sbx", "algo": algo, "num_seeds": num_seeds,
                            "skipped": "sbx cannot vmap seeds: 8 seeds are 8 sequential runs at its 1-seed steps/s; "
                                       "not run"})
        else:
            try:
                entries.append(prepare_sbx(algo, args.timesteps))
            except ImportError as err:
                skipped.append({"library": "sbx", "algo": algo, "num_seeds": num_seeds,
                                "skipped": f"sbx not importable ({err}); pip install '.[bench]'"})
    timed = [e[0] for e in entries]
    for t in timed:
        print(f"{algo}, {num_seeds} seed(s): compiled and ran {t.name} once "
              f"(compile {t.compile_s:.1f} s, first run {t.first_s:.1f} s)", flush=True)

    # compile rounds: every compilable library anew, in turn
    compilers = [_common.Timed(t.name, rc, 0, float("nan"), dict) for t, rc, _ in entries if rc is not None]
    compiles = _common.interleave(compilers, args.compile_rounds) if args.compile_rounds else {}
    # run rounds: every library's compiled call once per round, in turn
    measured = _common.interleave(timed, args.rounds)

    ours = timed[0]
    rows = []
    for t, _, settings in entries:
        row = {**t.report(), **_common.timing_fields(t, measured[t.name]), "library": t.name, "algo": algo,
               "num_seeds": num_seeds, "settings": settings,
               "notes": NOTES["common"] + NOTES[algo] if t is not ours else [],
               "cpu_seconds": measured[t.name]["cpu_seconds"].tolist(),
               "command": machine["command"], "machine": machine}
        if t.name in compiles:
            c = compiles[t.name]["seconds"]
            row.update(compile_s=float(np.median(c)), compile_times_s=c.tolist(),
                       compile_definition="fresh trace + lower + XLA compile of every program of the training call "
                                          "(purejaxpg: init and run; rejax: jit(vmap(train))), median of the compile "
                                          "rounds")
        elif t.name != "sbx":  # no compile rounds
            row.update(compile_s=t.compile_s, compile_definition="the first compile, as the library's timing "
                                                                 "reports it (purejaxpg: run program only)")
        else:  # sbx: its jit compiles inside its first learn()
            steady = float(np.median(measured[t.name]["seconds"]))
            row.update(compile_s=t.first_s - steady, compile_definition="first learn() minus the median later one")
        row["compile_first_s"] = t.compile_s  # purejaxpg: run_chunked's own figure, the run program only
        if t is not ours:
            row.update(_ratio_fields("ratio_purejaxpg_over_peer", measured[ours.name]["seconds"],
                                     measured[t.name]["seconds"]))
            row.update(_ratio_fields("cpu_ratio_purejaxpg_over_peer", measured[ours.name]["cpu_seconds"],
                                     measured[t.name]["cpu_seconds"]))
            if t.name in compiles and ours.name in compiles:
                # purejaxpg compile seconds / peer compile seconds, per compile round
                row.update(_ratio_fields("compile_ratio_purejaxpg_over_peer", compiles[t.name]["seconds"],
                                         compiles[ours.name]["seconds"]))
            else:
                ours_compile = rows[0]["compile_s"]
                row["compile_ratio_purejaxpg_over_peer"] = (float(ours_compile / row["compile_s"])
                                                            if row["compile_s"] > 0 else None)
        rows.append(row)
        extra = ""
        if t is not ours:
            compile_ratio = row["compile_ratio_purejaxpg_over_peer"]
            extra = (f"; purejaxpg/{t.name.split(' ')[0]} steps/s {row['ratio_purejaxpg_over_peer']:.2f}x "
                     f"({row['ratio_purejaxpg_over_peer_min']:.2f}-{row['ratio_purejaxpg_over_peer_max']:.2f}), "
                     f"compile {'n/a' if compile_ratio is None else format(compile_ratio, '.2f') + 'x'}")
        print(f"{algo}, {num_seeds} seed(s), {t.name}: {row['steps_per_second_median']:,.0f} steps/s median "
              f"({row['steps_per_second']:,.0f} best), compile {row['compile_s']:.1f} s{extra}", flush=True)
    for s in skipped:
        s.update(command=machine["command"], machine=machine)
        rows.append(s)
        print(f"{algo}, {num_seeds} seed(s), sbx: {s['skipped']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["sac", "td3"], choices=["sac", "td3"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5, help="timed run rounds (each library's call in turn)")
    parser.add_argument("--compile-rounds", type=int, default=3, help="compile rounds (each library anew, in turn)")
    parser.add_argument("--timesteps", type=int, default=5000, help="env steps per seed of one timed call")
    parser.add_argument("--no-sbx", action="store_true")
    parser.add_argument("--rejax-as-configured", action="store_true",
                        help="also time rejax exactly as its file says (swish, observation normalisation)")
    parser.add_argument("--xla-cpu-threads", type=int, default=None,
                        help="size of XLA's CPU thread pool for the whole process (default: one per CPU)")
    parser.add_argument("--name", default="offpolicy_peers", help="results file benchmarks/results/<name>.json")
    args = parser.parse_args()
    _common.start_jax_cpu_backend(args.xla_cpu_threads)
    machine = _common.machine()
    for pkg in ("sbx-rl", "stable-baselines3", "gymnasium", "flashbax"):
        try:
            import importlib.metadata as md

            machine["versions"][pkg] = md.version(pkg)
        except Exception:  # noqa: BLE001 - optional
            pass

    rows = []
    for algo in args.algos:
        for num_seeds in args.seeds:
            rows.extend(measure(algo, num_seeds, args, machine))

    print()
    print(_common.table(rows, [
        ("algo", "algo", ""), ("seeds", "num_seeds", "d"), ("library", "library", ""),
        ("steps/s median", "steps_per_second_median", ",.0f"), ("best", "steps_per_second", ",.0f"),
        ("ours/peer steps/s", "ratio_purejaxpg_over_peer", ".2f"), ("min", "ratio_purejaxpg_over_peer_min", ".2f"),
        ("max", "ratio_purejaxpg_over_peer_max", ".2f"), ("cpu-time ratio", "cpu_ratio_purejaxpg_over_peer", ".2f"),
        ("compile s", "compile_s", ".1f"), ("ours/peer compile", "compile_ratio_purejaxpg_over_peer", ".2f"),
        ("CPU s / wall s", "cpu_per_wall", ".2f"), ("return", "final_return_mean", ".0f")]))
    for row in rows:
        if "skipped" in row:
            print(f"{row['algo']} {row['num_seeds']} seeds, sbx: {row['skipped']}")
    print("ours/peer steps/s: median over rounds of purejaxpg's steps/s over the peer's (above 1: purejaxpg faster); "
          "ours/peer compile: purejaxpg's compile seconds over the peer's (below 1: purejaxpg compiles faster).")
    print("return: purejaxpg, mean return of the episodes ended in the last 10% of iterations; rejax, its evaluate() "
          "of the final policy; sbx, its last 3 training episodes. A sanity check, not a learning benchmark.")
    payload = {"env_id": ENV_ID, "timesteps_per_call": args.timesteps, "rounds": args.rounds,
               "compile_rounds": args.compile_rounds,
               "xla_cpu_threads": args.xla_cpu_threads, "rejax_pendulum_yaml": REJAX_PENDULUM,
               "rows": rows}
    print("wrote", _common.write_json(args.name, payload))


if __name__ == "__main__":
    main()
