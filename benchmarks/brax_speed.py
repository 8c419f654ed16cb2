"""brax on this machine: physics backends compared, the raw env beside purejaxpg's adapter and training loop.

    python benchmarks/brax_speed.py backends [--envs inverted_pendulum hopper] [--backends generalized positional spring mjx]
    python benchmarks/brax_speed.py train    [--algos ppo sac]

``backends``: for each env and physics pipeline, the compile time and env steps/s of

* ``raw``: brax itself, ``brax.envs.create(name, backend=..., episode_length=1000)`` (brax's
  episode and auto-reset wrappers) vmapped over ``--num-envs`` envs and jitted around a
  ``lax.scan`` of ``--num-steps`` steps of uniformly random actions in [-1, 1];
* ``adapter``: the same through `purejaxpg.backends.brax_env` (gymnax's ``step``, whose auto-reset
  computes a fresh reset every step and selects it where an episode ended, as in training).

``train``: PPO and SAC on brax/inverted_pendulum at their presets (`purejaxpg.presets`), one seed,
``--iterations`` iterations of the preset's batch (default `TRAIN_ITERATIONS`): compile time and
env steps/s of the whole training loop (rollout + update), beside the raw env's at the same number of envs.

Every timed call runs after a warm-up call; steps/s is from the best of ``--repeats`` calls and
excludes compilation, which is reported separately. Writes ``benchmarks/results/brax_speed.json``
(merging the section it ran into what is there). Never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import _common

#: iterations timed per algorithm: about 1e5 PPO steps (50 x 2048), SAC 5000 one-step iterations
#: (past its 1000 warm-up steps, so most of them take a gradient step)
TRAIN_ITERATIONS = {"ppo": 50, "sac": 5000}


def _time_compiled(fn, args, repeats: int) -> tuple[float, float]:
    """(compile seconds, best wall seconds of ``repeats`` calls after a warm-up) of ``jit(fn)(*args)``."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return compile_s, min(times)


def raw_rollout(name: str, backend: str, num_envs: int, num_steps: int):
    """``rollout(key) -> (obs, summed rewards)``: brax's own wrapped env, vmapped, random actions."""
    import brax.envs
    import jax
    import jax.numpy as jnp

    env = brax.envs.create(name, backend=backend, episode_length=1000, auto_reset=True)
    action_size = env.action_size

    def rollout(key):
        key, reset_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(carry, step_key):
            state, total = carry
            action = jax.random.uniform(step_key, (num_envs, action_size), minval=-1.0, maxval=1.0)
            state = jax.vmap(env.step)(state, action)
            return (state, total + state.reward), None

        (state, total), _ = jax.lax.scan(body, (state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))
        return state.obs, total

    return rollout


def adapter_rollout(name: str, backend: str, num_envs: int, num_steps: int):
    """``rollout(key) -> (obs, summed rewards)``: purejaxpg's adapter (gymnax step with auto-reset)."""
    import jax
    import jax.numpy as jnp

    from purejaxpg.backends import brax_env

    env, params = brax_env.make(name, backend=backend)
    action_size = env.action_space(params).shape[0]

    def rollout(key):
        key, reset_key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, num_envs), params)

        def body(carry, step_key):
            obs, state, total = carry
            action_key, env_key = jax.random.split(step_key)
            action = jax.random.uniform(action_key, (num_envs, action_size), minval=-1.0, maxval=1.0)
            obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(env_key, num_envs), state, action, params)
            return (obs, state, total + reward), None

        (obs, _, total), _ = jax.lax.scan(body, (obs, state, jnp.zeros(num_envs)), jax.random.split(key, num_steps))
        return obs, total

    return rollout


def env_rate(kind: str, name: str, backend: str, num_envs: int, num_steps: int, repeats: int) -> dict:
    import jax

    make = raw_rollout if kind == "raw" else adapter_rollout
    compile_s, best_s = _time_compiled(make(name, backend, num_envs, num_steps), (jax.random.PRNGKey(0),), repeats)
    return {"kind": kind, "env": name, "backend": backend, "num_envs": num_envs, "num_steps": num_steps,
            "compile_s": round(compile_s, 2), "best_s": round(best_s, 4),
            "steps_per_second": num_envs * num_steps / best_s}


def backends(args) -> list[dict]:
    rows = []
    for name in args.envs:
        for backend in args.backends:
            for kind in ("raw", "adapter"):
                try:
                    row = env_rate(kind, name, backend, args.num_envs, args.num_steps, args.repeats)
                except Exception as err:  # a pipeline that does not run here is a result too
                    row = {"kind": kind, "env": name, "backend": backend, "error": f"{type(err).__name__}: {err}"[:300]}
                    print(f"{name:>18} {backend:>11} {kind:>8}: {row['error']}", flush=True)
                else:
                    print(f"{name:>18} {backend:>11} {kind:>8}: {row['steps_per_second']:>10,.0f} steps/s, "
                          f"compile {row['compile_s']:.1f} s", flush=True)
                rows.append(row)
    return rows


def training(args) -> list[dict]:
    from purejaxpg import presets

    rows = []
    env_id = "brax/inverted_pendulum"
    for algo in args.algos:
        preset = presets.preset(algo, env_id)
        num_envs, num_steps = preset.get("num_envs", 4), preset.get("num_steps", 128)
        iterations = args.iterations or TRAIN_ITERATIONS.get(algo, 50)
        overrides = {"total_timesteps": iterations * num_envs * num_steps}
        row = _common.time_purejaxpg(algo, env_id, overrides, 1, repeats=args.repeats)
        raw = env_rate("raw", "inverted_pendulum", "generalized", num_envs, max(1000, 100_000 // num_envs), args.repeats)
        row = {k: v for k, v in row.items() if not k.startswith("final_return")}
        row.update(iterations=iterations, preset=preset, raw_env_steps_per_second=raw["steps_per_second"],
                   raw_env_num_envs=num_envs)
        rows.append(row)
        print(f"{algo:>5} on {env_id}: {row['steps_per_second']:>10,.0f} steps/s (raw env at {num_envs} envs: "
              f"{raw['steps_per_second']:,.0f}), compile {row['compile_s']:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["backends", "train"])
    parser.add_argument("--envs", nargs="+", default=["inverted_pendulum", "hopper"])
    parser.add_argument("--backends", nargs="+", default=["generalized", "positional", "spring", "mjx"])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=500)
    parser.add_argument("--algos", nargs="+", default=["ppo", "sac"])
    parser.add_argument("--iterations", type=int, default=None,
                        help="train: iterations of the preset's batch timed (default: PPO 50, SAC 5000)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = backends(args) if args.mode == "backends" else training(args)
    columns = ([("env", "env", ""), ("backend", "backend", ""), ("kind", "kind", ""), ("envs", "num_envs", "d"),
                ("steps/s", "steps_per_second", ",.0f"), ("compile s", "compile_s", ".1f")]
               if args.mode == "backends" else
               [("algo", "algo", ""), ("envs", "num_envs", "d"), ("steps", "num_steps", "d"),
                ("steps/s", "steps_per_second", ",.0f"), ("raw env steps/s", "raw_env_steps_per_second", ",.0f"),
                ("compile s", "compile_s", ".1f")])
    print(_common.table(rows, columns))
    path = os.path.join(_common.RESULTS, "brax_speed.json")
    payload = {}
    if os.path.exists(path):
        with open(path) as fh:
            payload = {k: v for k, v in json.load(fh).items() if k != "machine"}
    payload[args.mode] = {"command": _common.machine()["command"], "rows": rows}
    print("wrote", _common.write_json("brax_speed", payload))


if __name__ == "__main__":
    main()
