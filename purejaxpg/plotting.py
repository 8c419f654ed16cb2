"""Learning curves (mean over seeds with a 95% bootstrap band) and sweep plots, written as PNG."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend switch, works headless and in notebooks

from purejaxpg import results


def _curve(metrics: Mapping[str, np.ndarray]):
    env_steps = np.asarray(metrics["env_steps"])[0]
    window = max(1, env_steps.shape[0] // 50)
    smoothed = results.smoothed_returns(metrics, window)
    low, high = results.bootstrap_ci(smoothed, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN before any episode has ended
        mean = np.nanmean(smoothed, axis=0)
    return env_steps, mean, low, high


def learning_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: str, title: str = "") -> str:
    """Plot one or many runs' learning curves on one figure.

    Args:
      curves: ``{label: metrics}`` with metrics ``{name: [R, I]}`` as from training (R seeds).
      path: PNG file to write.
    Returns:
      ``path``. x = env steps, y = episode return (trailing-window mean), band = 95% bootstrap
      interval of the mean over seeds.
    """
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for label, metrics in curves.items():
        x, mean, low, high = _curve(metrics)
        num = np.asarray(metrics["episode_return"]).shape[0]
        line, = ax.plot(x, mean, label=f"{label} ({num} seed{'s' if num > 1 else ''})")
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def sweep_plot(x_values: Sequence[float], final_returns: np.ndarray, path: str, x_name: str,
               line_values: Sequence | None = None, line_name: str = "", log_x: bool = True, title: str = "") -> str:
    """Final return against one hyperparameter, one line per value of another.

    Args:
      x_values: ``[X]`` values of the swept hyperparameter.
      final_returns: ``[L, X, S]`` (or ``[X, S]`` for one line) final returns per seed.
      path: PNG file to write.
      x_name, line_name: axis and legend names; ``line_values`` ``[L]`` label the lines.
    """
    final_returns = np.asarray(final_returns, np.float64)
    if final_returns.ndim == 2:
        final_returns = final_returns[None]
        line_values = line_values or [""]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for line_value, per_x in zip(line_values, final_returns):
        low, high = results.bootstrap_ci(per_x, axis=1)
        mean = np.nanmean(per_x, axis=1)
        label = f"{line_name}={line_value}" if line_name else None
        line, = ax.plot(x_values, mean, marker="o", label=label)
        ax.fill_between(x_values, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel("final return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if line_name:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
