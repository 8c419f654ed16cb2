"""Host-side results: tidy tables, final returns, confidence intervals, summaries.

Metrics come out of training as ``{name: [R, I]}`` arrays (R vmapped runs, I iterations); here
they become one tidy row per run and iteration. ``episode_return`` is NaN in iterations where no
episode ended; ``episodes`` counts them, so every average here is an episode-weighted one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd


def tidy(metrics: Mapping[str, np.ndarray], run_columns: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per run and iteration.

    Args:
      metrics: ``{name: [R, I]}``.
      run_columns: extra per-run columns ``{name: [R]}`` (e.g. ``seed``, hyperparameter values).
    Returns:
      a DataFrame with columns ``run, iteration, <run_columns>, <metrics>``.
    """
    first = next(iter(metrics.values()))
    num_runs, num_iters = first.shape[:2]
    data = {"run": np.repeat(np.arange(num_runs), num_iters), "iteration": np.tile(np.arange(num_iters), num_runs)}
    for name, values in (run_columns or {}).items():
        data[name] = np.repeat(np.asarray(values), num_iters)
    for name, values in metrics.items():
        values = np.asarray(values)
        if values.ndim == 2:
            if name in data:
                raise ValueError(f"metric {name!r} has the name of a run column; rename one of them.")
            data[name] = values.reshape(-1)
    return pd.DataFrame(data)


def final_returns(metrics: Mapping[str, np.ndarray], fraction: float = 0.1) -> np.ndarray:
    """``[R]`` mean return of the episodes that ended in the last ``fraction`` of iterations.

    Episode-weighted: sum of returns / number of episodes over those iterations. NaN for a run
    in which no episode ended in that window.
    """
    returns = np.asarray(metrics["episode_return"], np.float64)
    counts = np.asarray(metrics["episodes"], np.float64)
    window = max(1, int(round(returns.shape[1] * fraction)))
    ret, cnt = returns[:, -window:], counts[:, -window:]
    total = np.where(cnt > 0, np.nan_to_num(ret) * cnt, 0.0).sum(axis=1)
    n = cnt.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def smoothed_returns(metrics: Mapping[str, np.ndarray], window: int) -> np.ndarray:
    """``[R, I]`` episode-weighted mean return over a trailing window of iterations (NaN before
    the first episode ends)."""
    returns = np.nan_to_num(np.asarray(metrics["episode_return"], np.float64))
    counts = np.asarray(metrics["episodes"], np.float64)
    weighted = np.cumsum(returns * counts, axis=1)
    total = np.cumsum(counts, axis=1)
    shift = lambda x: np.concatenate([np.zeros((x.shape[0], window)), x[:, :-window]], axis=1)  # noqa: E731
    w_sum, c_sum = weighted - shift(weighted), total - shift(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_sum > 0, w_sum / np.maximum(c_sum, 1), np.nan)


def bootstrap_ci(values: np.ndarray, axis: int = 0, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence interval of the mean along ``axis`` (NaNs ignored).

    With one sample the interval collapses to that sample.
    """
    values = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as intended
        means = np.nanmean(values[idx], axis=1)
        low = np.nanquantile(means, (1 - level) / 2, axis=0)
        high = np.nanquantile(means, 1 - (1 - level) / 2, axis=0)
    return low, high


def summarize(values: np.ndarray) -> dict:
    """Mean, worst, best and 95% bootstrap interval of per-run final returns."""
    values = np.asarray(values, np.float64)
    low, high = bootstrap_ci(values)
    finite = values[np.isfinite(values)]
    return {
        "mean": float(np.mean(finite)) if finite.size else float("nan"),
        "worst": float(np.min(finite)) if finite.size else float("nan"),
        "best": float(np.max(finite)) if finite.size else float("nan"),
        "ci95": [float(low), float(high)],
        "num_runs": int(values.size),
    }
