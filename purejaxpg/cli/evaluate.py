"""``python -m purejaxpg eval RUN_DIR`` and ``python -m purejaxpg render RUN_DIR --out FILE``:
a trained run's policy, evaluated over N parallel episodes or drawn for one episode.

    python -m purejaxpg eval runs/ppo_cartpole --episodes 100 --deterministic
    python -m purejaxpg render runs/ppo_cartpole --out policy.gif

Both load the run's newest checkpoint (``RUN_DIR/checkpoints``; ``train --out`` saves the final
state there) through `purejaxpg.policy.load`.
"""

from __future__ import annotations

import argparse

from purejaxpg.cli.common import error


def _common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by train --out")
    parser.add_argument("--run", type=int, default=0, help="which of the run's seeds / grid points (default 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="act with the policy's mode (or the deterministic actor) instead of sampling")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="steps per episode at most (default: the env's time limit, or 1000)")


def cmd_eval(argv: list[str]) -> int:
    """``eval``: mean +- std return of N episodes of the run's policy (one vmapped call)."""
    parser = argparse.ArgumentParser(prog="python -m purejaxpg eval",
                                     description="Evaluate a trained run's policy over N parallel episodes.")
    _common_flags(parser)
    parser.add_argument("--episodes", type=int, default=100, help="episodes, run in parallel (default 100)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        return error(f"--episodes {args.episodes}: give at least one episode")
    import jax
    import numpy as np

    from purejaxpg import policy
    from purejaxpg.config import ConfigError

    try:
        pol = policy.load(args.run_dir, run=args.run)
        returns = pol.evaluate(args.episodes, jax.random.PRNGKey(args.seed), args.deterministic, args.max_steps)
    except ConfigError as err:
        return error(err)
    mode = "deterministic" if args.deterministic else "sampled"
    print(f"{pol.trainer.algo.name} on {pol.trainer.config.env_id}, run {args.run}, {args.episodes} episodes "
          f"({mode} actions): return {np.mean(returns):.2f} +- {np.std(returns):.2f} "
          f"(min {np.min(returns):.2f}, max {np.max(returns):.2f})")
    return 0


def cmd_render(argv: list[str]) -> int:
    """``render``: one episode of the run's policy to a GIF (gymnax) or an HTML viewer (brax)."""
    parser = argparse.ArgumentParser(prog="python -m purejaxpg render",
                                     description="Draw one episode of a trained run's policy.")
    _common_flags(parser)
    parser.add_argument("--out", required=True, help="policy.gif (gymnax envs) or policy.html (brax envs)")
    args = parser.parse_args(argv)
    import jax

    from purejaxpg import policy, render
    from purejaxpg.config import ConfigError

    try:
        pol = policy.load(args.run_dir, run=args.run)
        out = render.render(pol, args.out, jax.random.PRNGKey(args.seed), args.deterministic, args.max_steps)
    except ConfigError as err:
        return error(err)
    print(f"wrote {out}")
    return 0
