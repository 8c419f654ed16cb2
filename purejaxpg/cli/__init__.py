"""Command line: ``python -m purejaxpg {train,sweep,eval,render,list}``.

    python -m purejaxpg train --algo ppo --env CartPole-v1 --seeds 8 --out runs/x
    python -m purejaxpg train --algo ppo --seeds 8 --out runs/x --checkpoint-every 5
    python -m purejaxpg train --resume runs/x
    python -m purejaxpg sweep --algo ppo --grid lr=1e-4,3e-4,1e-3 --grid clip_eps=0.1,0.2 --seeds 4 --out runs/s
    python -m purejaxpg sweep --algo ppo --random lr=loguniform:1e-4:1e-2 --samples 8 --seeds 4 --out runs/r
    python -m purejaxpg eval runs/x --episodes 100 --deterministic
    python -m purejaxpg render runs/x --out policy.gif

Every setting of the run, the algorithm and its hyperparameters is a flag (``--lr 1e-3``,
``--num-envs 16``, ``--no-anneal-lr``, ``--hidden 128,128``); ``python -m purejaxpg train --algo
ppo --help`` lists them with their defaults. Bad input exits with status 2 and a message that
names the setting. On a CPU, ``train`` and ``sweep`` present the cores as JAX devices and split
the runs over them (``--cpu-devices auto``, the default; `purejaxpg.devices`).

One module per command: `purejaxpg.cli.train` (``train`` and ``train --resume``),
`purejaxpg.cli.sweep`, `purejaxpg.cli.evaluate` (``eval``, ``render``), `purejaxpg.cli.listing` (``list``); what they share is in
`purejaxpg.cli.common`. None imports JAX before ``--cpu-devices`` is applied.
"""

from __future__ import annotations

import sys

from purejaxpg.cli.common import error, use_cpu_devices
from purejaxpg.cli.evaluate import cmd_eval, cmd_render
from purejaxpg.cli.listing import cmd_list
from purejaxpg.cli.sweep import cmd_sweep
from purejaxpg.cli.train import cmd_train

COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "eval": cmd_eval, "render": cmd_render, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit status (0 ok, 2 bad input) instead of exiting, so it can be
    called in-process (``main(["train", "--total-timesteps", "1024"])``)."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(f"usage: python -m purejaxpg {{{','.join(COMMANDS)}}} [options]\n"
              "  train  train seeds of an algorithm; checkpoint and resume (python -m purejaxpg train --help)\n"
              "  sweep  grid or random search of hyperparameters x seeds in one call (python -m purejaxpg sweep --help)\n"
              "  eval   evaluate a trained run's policy (python -m purejaxpg eval RUN_DIR --episodes 100)\n"
              "  render draw one episode of a trained run's policy (python -m purejaxpg render RUN_DIR --out policy.gif)\n"
              "  list   list algorithms and environments (list --presets [ALGO]: the presets as YAML)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    if argv[0] in ("train", "sweep") and (message := use_cpu_devices(argv[0], argv[1:], from_command_line)) is not None:
        return error(message)
    try:
        return COMMANDS[argv[0]](argv[1:])
    except SystemExit as exit_:  # argparse: --help (0) and malformed flags (2)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
