"""Metric loggers beside the CSV: TensorBoard event files and Weights & Biases (offline by default).

A logger receives the run's settings once and each chunk of metrics as the host gets it
(``{name: [R, I]}`` for R vmapped runs, I iterations), so logging never enters the compiled
loop. The command line builds them from ``--log tensorboard`` / ``--log wandb``:

* `TensorBoardLogger` writes ``OUT/tensorboard/run_<r>/`` (one TensorBoard run per seed or grid
  point): every metric as a scalar against env steps, the settings as text (JSON and a table).
  ``tensorboard --logdir OUT/tensorboard`` shows them.
* `WandbLogger` logs one W&B run: the settings as its config, each metric's mean over runs and
  every run's episode return, against env steps. It runs offline (files under ``OUT/wandb``,
  ``wandb sync`` uploads them later) unless ``WANDB_MODE`` says otherwise, so no network is needed.

tensorboardX and wandb are imported only when such a logger is made, with a clear message when
missing (``pip install "purejaxpg[log]"``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from purejaxpg.errors import ConfigError

KINDS = ("tensorboard", "wandb")


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}} -> {"train/lr": 1}``; lists and other values become text."""
    out = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "/"))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def _import(module: str, extra: str = "log"):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigError(f"--log needs the {module.split('.')[0]} package, which is not installed; "
                          f"install it with: pip install \"purejaxpg[{extra}]\"") from err


class TensorBoardLogger:
    """TensorBoard event files, one run folder per vmapped run (``OUT/tensorboard/run_<r>``)."""

    def __init__(self, out: str, settings: dict[str, Any], num_runs: int, run_names: list[str] | None = None):
        tensorboardX = _import("tensorboardX")
        self.root = os.path.join(out, "tensorboard")
        names = run_names or [f"run_{r}" for r in range(num_runs)]
        self.writers = [tensorboardX.SummaryWriter(logdir=os.path.join(self.root, name)) for name in names]
        config = "```\n" + json.dumps(settings, indent=2, default=str) + "\n```"
        table = "| setting | value |\n| --- | --- |\n" + "\n".join(
            f"| {k} | {v} |" for k, v in _flat(settings).items())
        for writer in self.writers:
            writer.add_text("config", config, 0)
            writer.add_text("settings", table, 0)

    def log(self, metrics: dict[str, np.ndarray], first_iteration: int) -> None:
        """Every float/int metric of a chunk ``{name: [R, I]}`` as scalars at ``env_steps``."""
        steps = np.asarray(metrics["env_steps"])
        for r, writer in enumerate(self.writers):
            for i in range(steps.shape[1]):
                for name, values in metrics.items():
                    value = float(np.asarray(values)[r, i])
                    if name != "env_steps" and np.isfinite(value):
                        writer.add_scalar(name, value, int(steps[r, i]))
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbLogger:
    """One W&B run (offline unless ``WANDB_MODE`` is set): means over runs and every run's return."""

    def __init__(self, out: str, settings: dict[str, Any], num_runs: int, project: str = "purejaxpg",
                 name: str | None = None):
        wandb = _import("wandb")
        os.makedirs(out, exist_ok=True)
        mode = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(project=project, name=name, dir=out, config=_flat(settings), mode=mode,
                              reinit="create_new")
        self.num_runs = num_runs

    def log(self, metrics: dict[str, np.ndarray], first_iteration: int) -> None:
        steps = np.asarray(metrics["env_steps"])
        for i in range(steps.shape[1]):
            row = {}
            for name, values in metrics.items():
                column = np.asarray(values, np.float64)[:, i]
                if name == "env_steps" or not np.isfinite(column).any():
                    continue
                row[name] = float(np.nanmean(column))
                if name == "episode_return":
                    row.update({f"episode_return/run_{r}": float(v) for r, v in enumerate(column) if np.isfinite(v)})
            row["iteration"] = first_iteration + i
            self.run.log(row, step=int(steps[0, i]))

    def close(self) -> None:
        self.run.finish()


def check(kinds: list[str], out: str | None) -> None:
    """ConfigError for an unknown logger kind, or loggers without an ``out`` folder."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"--log {unknown[0]!r} is not a logger; use one of {', '.join(KINDS)} (the CSV is always written).")
    if kinds and not out:
        raise ConfigError("--log needs --out DIR (the logs go under DIR).")


def make(kinds: list[str], out: str | None, settings: dict[str, Any], num_runs: int) -> list[Any]:
    """The loggers of ``--log`` ``kinds`` writing under ``out``; ConfigError for an unknown kind or no ``out``."""
    check(kinds, out)
    made = []
    for kind in dict.fromkeys(kinds):
        if kind == "tensorboard":
            made.append(TensorBoardLogger(out, settings, num_runs))
        else:
            made.append(WandbLogger(out, settings, num_runs, name=os.path.basename(os.path.abspath(out))))
    return made
