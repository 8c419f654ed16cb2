"""Hyperparameter sweeps: configurations x seeds of one algorithm as ONE compiled, vmapped call.

A sweep over *dynamic* hyperparameters (an algorithm's ``HParams``: lr, gamma, clip_eps, ...) is
a ``jax.vmap``, not a recompile: C configurations and S seeds are flattened into R = C * S runs,
run r = c * S + s gets configuration c's values as the r-th entry of ``[R]`` hyperparameter
arrays and seed s's key, and `purejaxpg.train.run_chunked` runs all R in one compiled call.

* :func:`run` sweeps a grid (the cartesian product of value lists),
* :func:`random_search` a random sample (``uniform`` / ``loguniform`` ranges, a fixed seed),
* both return a :class:`SweepResult`: a tidy table (one row per configuration, seed and
  iteration, the hyperparameter values as columns), a per-configuration summary of the final
  return (mean, 95% bootstrap interval, worst seed), the best configuration, and a sweep plot.

Seed s uses key ``fold_in(PRNGKey(seed), s)`` in every configuration (common random numbers: the
configurations are compared on the same seeds), the same key ``python -m purejaxpg train`` gives
seed s, so a sweep's run can be reproduced alone.

Static settings (num_envs, num_epochs, hidden sizes, ...) fix shapes or loop counts; a value of
one needs its own compile, so they go in ``overrides`` (one value per sweep), never in the grid.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from purejaxpg import algorithms, experiment, results, train
from purejaxpg.config import ConfigError

#: distributions understood by :func:`random_search`: (kind, low, high)
DISTRIBUTIONS = ("uniform", "loguniform")


@dataclasses.dataclass
class SweepResult:
    """Host-side result of a sweep of C configurations x S seeds.

    Attributes:
      algo_name, env_id, kind: what was swept and how (``"grid"`` or ``"random"``).
      names: the swept hyperparameter names, in order.
      configs: ``[C]`` dicts ``{name: value}`` of the swept values.
      seeds: ``[S]`` seed indices (seed s runs with key ``fold_in(PRNGKey(seed), s)``).
      metrics: ``{metric: [C, S, I]}`` per-iteration metrics.
      final_returns: ``[C, S]`` episode-weighted mean return over the last ``final_fraction`` of
        iterations (`purejaxpg.results.final_returns`).
      table: tidy DataFrame, columns ``config, seed, iteration, <names>, <metrics>``; a metric
        named like a swept hyperparameter (PPO's annealed ``lr``) is renamed ``<name>_metric``.
        The hyperparameter columns hold the values as given (the runs use them in float32).
      summary: DataFrame, one row per configuration: ``config, <names>, final_return_mean,
        ci95_low, ci95_high, final_return_worst, worst_seed, final_return_best, num_seeds``.
      best: the summary row (a dict) of the configuration with the highest mean final return
        (ties: the higher worst seed); None when no configuration finished an episode.
      settings: JSON-ready description of every setting of the sweep.
      runner: the final batched ``RunnerState`` of all R = C * S runs (run r = c * S + s).
      steps_per_second, compile_seconds, run_seconds: as in `purejaxpg.train.RunResult`.
    """

    algo_name: str
    env_id: str
    kind: str
    names: list[str]
    configs: list[dict[str, float]]
    seeds: np.ndarray
    metrics: dict[str, np.ndarray]
    final_returns: np.ndarray
    table: pd.DataFrame
    summary: pd.DataFrame
    best: dict[str, Any] | None
    settings: dict[str, Any]
    runner: Any = dataclasses.field(repr=False, default=None)
    steps_per_second: float = float("nan")
    compile_seconds: float = float("nan")
    run_seconds: float = float("nan")

    def plot(self, path: str, x: str | None = None, lines: str | None = None, log_x: bool | None = None) -> str:
        """Final return against hyperparameter ``x``, one line per value of ``lines``.

        Grid sweeps: the other swept hyperparameters are held at the best configuration's values
        (a slice of the grid through the best configuration). Random searches: every sampled
        configuration, sorted by ``x`` (``lines`` is not available, values are not shared).
        Defaults: ``x`` = the first swept name with more than one value, ``lines`` = the next
        one (grid only). ``log_x`` defaults to a log axis when all x are positive and span at
        least a factor of 10. Band: 95% bootstrap interval over seeds (`purejaxpg.plotting.sweep_plot`).
        """
        from purejaxpg import plotting

        varying = [n for n in self.names if len({c[n] for c in self.configs}) > 1] or list(self.names)
        x = x or varying[0]
        for name in (x, lines):
            if name is not None and name not in self.names:
                raise ConfigError(f"{name!r} was not swept; pick one of {self.names}.")
        if self.kind == "random":
            if lines is not None:
                raise ConfigError("a random search has no shared values to draw one line per value of; "
                                  "plot it with lines=None.")
            order = sorted(range(len(self.configs)), key=lambda c: self.configs[c][x])
            x_values = [self.configs[c][x] for c in order]
            finals, line_values = self.final_returns[order], None
        else:
            if lines is None and self.kind == "grid":
                lines = next((n for n in varying if n != x), None)
            if lines == x:
                raise ConfigError(f"x and lines are both {x!r}; pick two different hyperparameters.")
            anchor = self.configs[self.best["config"]] if self.best is not None else self.configs[0]
            fixed = {n: anchor[n] for n in self.names if n not in (x, lines)}
            chosen = [c for c, cfg in enumerate(self.configs) if all(cfg[n] == v for n, v in fixed.items())]
            x_values = sorted({self.configs[c][x] for c in chosen})
            line_values = sorted({self.configs[c][lines] for c in chosen}) if lines else [None]
            index = {(self.configs[c][x], self.configs[c][lines] if lines else None): c for c in chosen}
            finals = np.full((len(line_values), len(x_values), len(self.seeds)), np.nan)
            for i, lv in enumerate(line_values):
                for j, xv in enumerate(x_values):
                    if (xv, lv) in index:
                        finals[i, j] = self.final_returns[index[(xv, lv)]]
            if lines is None:
                finals, line_values = finals[0], None
        xs = np.asarray(x_values, np.float64)
        if log_x is None:
            log_x = bool(np.all(xs > 0) and xs.max() >= 10 * xs.min())
        return plotting.sweep_plot(x_values, finals, path, x_name=x, line_values=line_values,
                                   line_name=lines or "", log_x=log_x)

    def save(self, folder: str, plot: bool = True) -> list[str]:
        """Write ``results.csv`` (tidy), ``summary.csv``, ``summary.json``, ``config.json`` and
        (when ``plot``) ``sweep.png`` into ``folder``; returns the paths written."""
        os.makedirs(folder, exist_ok=True)
        paths = [os.path.join(folder, name) for name in ("results.csv", "summary.csv", "summary.json", "config.json")]
        self.table.to_csv(paths[0], index=False)
        self.summary.to_csv(paths[1], index=False)
        summary = {
            "algo": self.algo_name, "env_id": self.env_id, "kind": self.kind, "names": self.names,
            "num_configs": len(self.configs), "num_seeds": len(self.seeds),
            "best": self.best,
            "configs": json.loads(self.summary.to_json(orient="records")),
            "steps_per_second": self.steps_per_second,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
        }
        with open(paths[2], "w") as fh:
            json.dump(summary, fh, indent=2)
        with open(paths[3], "w") as fh:
            json.dump(self.settings, fh, indent=2)
        if plot:
            paths.append(self.plot(os.path.join(folder, "sweep.png")))
        return paths


def check_dynamic(algo_name: str, names: Sequence[str]) -> None:
    """Raise ConfigError unless every name is a dynamic hyperparameter of the algorithm.

    A static setting (a field of ``TrainConfig`` or of the algorithm's dataclass) fixes shapes or
    loop counts, so every value of it needs a separate compile: it cannot be part of one vmapped
    sweep. The message names the setting and says what to do instead.
    """
    algo_cls = algorithms.get(algo_name)
    fields = experiment.settings_fields(algo_cls)
    dynamic = [f.name for f in dataclasses.fields(algo_cls.HParams)]
    for name in names:
        if name not in fields:
            close = difflib.get_close_matches(name, dynamic, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{name!r} is not a hyperparameter of {algo_name}.{hint} "
                              f"Sweepable (dynamic) ones: {', '.join(dynamic)}.")
        kind = fields[name][0]
        if kind != "hparams":
            owner = "TrainConfig" if kind == "train" else algo_cls.__name__
            raise ConfigError(
                f"{name!r} is a static setting of {algo_name} ({owner} field: it fixes shapes or loop "
                f"counts), so each value needs a separate compile and "
                f"cannot be swept in one vmapped call. Run one sweep per value with overrides={{{name!r}: ...}}. "
                f"Sweepable (dynamic) hyperparameters: {', '.join(dynamic)}.")


def grid_configs(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """The cartesian product of ``grid`` as a list of ``{name: value}``, last name varying fastest.

    >>> grid_configs({"lr": [1e-4, 1e-3], "clip_eps": [0.1, 0.2]})[1]
    {'lr': 0.0001, 'clip_eps': 0.2}
    """
    if not grid:
        raise ConfigError("the grid is empty; give at least one hyperparameter and its values, "
                          "e.g. grid={'lr': [1e-4, 3e-4]}.")
    names = list(grid)
    values = []
    for name in names:
        vals = grid[name]
        vals = [vals] if np.ndim(vals) == 0 else list(np.asarray(vals).reshape(-1))
        if not vals:
            raise ConfigError(f"grid entry {name!r} has no values; give at least one.")
        values.append([float(v) for v in vals])
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def parse_distribution(text: str) -> tuple[str, float, float]:
    """Parse ``"loguniform:1e-4:1e-2"`` or ``"uniform:0.1:0.3"`` into ``(kind, low, high)``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ConfigError(f"{text!r} is not a distribution; write KIND:LOW:HIGH with KIND one of "
                          f"{', '.join(DISTRIBUTIONS)}, e.g. loguniform:1e-4:1e-2.")
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise ConfigError(f"{text!r}: LOW and HIGH must be numbers, e.g. loguniform:1e-4:1e-2.") from None
    return parts[0], low, high


def random_configs(space: Mapping[str, Any], num_samples: int, seed: int = 0) -> list[dict[str, float]]:
    """``num_samples`` configurations drawn independently from ``space`` with a fixed seed.

    Args:
      space: ``{name: (kind, low, high)}`` (or the text ``"kind:low:high"``), kind ``"uniform"``
        (x ~ U[low, high]) or ``"loguniform"`` (log x ~ U[log low, log high], 0 < low).
      num_samples: C.
      seed: seed of a NumPy PCG64 generator; the same seed gives the same configurations.
    Returns:
      ``[C]`` dicts; values are rounded to float32, the precision the runs use, so the tables
      show exactly the values that ran.
    """
    if not space:
        raise ConfigError("the search space is empty; give e.g. {'lr': ('loguniform', 1e-4, 1e-2)}.")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ConfigError(f"num_samples={num_samples!r} must be a positive integer.")
    rng = np.random.default_rng(seed)
    columns = {}
    for name, dist in space.items():
        kind, low, high = parse_distribution(dist) if isinstance(dist, str) else tuple(dist)
        low, high = float(low), float(high)
        if kind not in DISTRIBUTIONS:
            raise ConfigError(f"{name}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}.")
        if not low <= high:
            raise ConfigError(f"{name}: low={low:g} is above high={high:g}.")
        if kind == "loguniform":
            if low <= 0:
                raise ConfigError(f"{name}: loguniform needs 0 < low, got low={low:g}; use uniform.")
            columns[name] = np.exp(rng.uniform(np.log(low), np.log(high), num_samples))
        else:
            columns[name] = rng.uniform(low, high, num_samples)
    return [{name: float(np.float32(columns[name][i])) for name in space} for i in range(num_samples)]


def run(algo_name: str, env_id: str, grid: Mapping[str, Sequence[float]], seeds: int = 8,
        overrides: Mapping[str, Any] | None = None, seed: int = 0, chunk_iterations: int | None = None,
        use_presets: bool = True, final_fraction: float = 0.1,
        callback: Callable[[dict, Any, float], None] | None = None, shard: str = "auto") -> SweepResult:
    """Grid sweep: every combination of ``grid``'s values x ``seeds`` seeds in one compiled call.

    Args:
      algo_name, env_id: as in `purejaxpg.experiment.build`.
      grid: ``{hparam name: [values]}``; names must be dynamic hyperparameters (else ConfigError).
      seeds: S, seeds per configuration.
      overrides: fixed settings of every run (static or dynamic, not also in the grid).
      seed: base seed; seed s uses ``fold_in(PRNGKey(seed), s)``.
      chunk_iterations: iterations per compiled call (results do not depend on it).
      use_presets: apply the algorithm's per-env presets before ``overrides``.
      final_fraction: window of iterations for the final return.
      callback: passed to `purejaxpg.train.run_chunked` (progress).
      shard: passed to `purejaxpg.train.run_chunked`: with several devices, "auto"/"runs" split
        the R runs over them.
    Returns:
      a :class:`SweepResult` of C = prod(len(values)) configurations.
    """
    return run_configs(algo_name, env_id, grid_configs(grid), seeds, overrides, seed, chunk_iterations,
                       use_presets, final_fraction, callback, kind="grid", shard=shard)


def random_search(algo_name: str, env_id: str, space: Mapping[str, Any], num_samples: int, seeds: int = 8,
                  overrides: Mapping[str, Any] | None = None, seed: int = 0, search_seed: int = 0,
                  chunk_iterations: int | None = None, use_presets: bool = True, final_fraction: float = 0.1,
                  callback: Callable[[dict, Any, float], None] | None = None, shard: str = "auto") -> SweepResult:
    """Random search: ``num_samples`` configurations from ``space`` (see :func:`random_configs`,
    drawn with ``search_seed``) x ``seeds`` seeds in one compiled call; otherwise as :func:`run`."""
    check_dynamic(algo_name, list(space))
    return run_configs(algo_name, env_id, random_configs(space, num_samples, search_seed), seeds, overrides,
                       seed, chunk_iterations, use_presets, final_fraction, callback, kind="random", shard=shard)


def run_configs(algo_name: str, env_id: str, configs: Sequence[Mapping[str, float]], seeds: int = 8,
                overrides: Mapping[str, Any] | None = None, seed: int = 0, chunk_iterations: int | None = None,
                use_presets: bool = True, final_fraction: float = 0.1,
                callback: Callable[[dict, Any, float], None] | None = None, kind: str = "list",
                shard: str = "auto") -> SweepResult:
    """Run an explicit list of C configurations ``[{name: value}]`` (same names in each) x S seeds.

    The engine of :func:`run` and :func:`random_search`: runs are flattened as r = c * S + s, each
    swept hyperparameter becomes an ``[R]`` array (the others stay scalars, shared by all runs),
    and `purejaxpg.train.run_chunked` runs all R = C * S runs vmapped in one compiled call.
    """
    configs = [dict(c) for c in configs]
    if not configs:
        raise ConfigError("no configurations to run.")
    names = list(configs[0])
    if any(list(c) != names for c in configs):
        raise ConfigError("every configuration must set the same hyperparameters, in the same order.")
    check_dynamic(algo_name, names)
    if not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} must be a positive integer.")
    overrides = dict(overrides or {})
    both = [n for n in names if n in overrides]
    if both:
        raise ConfigError(f"{both[0]!r} is both swept and in overrides; keep it in one place.")
    num_configs, num_seeds = len(configs), int(seeds)
    algo, config, base = experiment.build(algo_name, env_id, overrides, use_presets=use_presets)
    swept = {n: np.repeat(np.asarray([c[n] for c in configs], np.float64), num_seeds) for n in names}
    hparams = dataclasses.replace(base, **{n: v.astype(np.float32) for n, v in swept.items()})
    trainer = train.make_train(algo, config, hparams)  # validates every swept value against its range
    keys = np.tile(np.asarray(train.seed_keys(seed, num_seeds)), (num_configs, 1))
    out = train.run_chunked(trainer, keys, hparams, chunk_iterations=chunk_iterations, callback=callback, shard=shard)

    seed_ids = np.arange(num_seeds)
    run_columns = {"config": np.repeat(np.arange(num_configs), num_seeds), "seed": np.tile(seed_ids, num_configs),
                   **swept}
    # a metric named like a swept hyperparameter (PPO logs the annealed "lr") becomes "<name>_metric"
    table_metrics = {(f"{k}_metric" if k in run_columns else k): v for k, v in out.metrics.items()}
    table = results.tidy(table_metrics, run_columns).drop(columns="run")
    table = table[["config", "seed", "iteration", *names, *(k for k in table_metrics if k in table.columns)]]
    finals_flat = results.final_returns(out.metrics, final_fraction)
    finals = finals_flat.reshape(num_configs, num_seeds)
    metrics = {k: np.asarray(v).reshape((num_configs, num_seeds) + np.shape(v)[1:]) for k, v in out.metrics.items()}
    summary = summarize_configs(configs, finals)
    description = experiment.describe(algo, config, base)
    description["hparams"].update({n: [c[n] for c in configs] for n in names})
    description.update(kind=kind, swept=names, num_configs=num_configs, seeds=num_seeds, seed=seed,
                       runs="run r = config * seeds + seed; seed s uses fold_in(PRNGKey(seed), s)",
                       final_fraction=final_fraction)
    return SweepResult(algo.name, config.env_id, kind, names, configs, seed_ids, metrics, finals, table, summary,
                       best_config(summary), description, out.runner, out.steps_per_second,
                       out.compile_seconds, out.run_seconds)


def summarize_configs(configs: Sequence[Mapping[str, float]], final_returns: np.ndarray) -> pd.DataFrame:
    """One row per configuration from ``[C, S]`` final returns.

    Columns: ``config, <hparams>, final_return_mean, ci95_low, ci95_high`` (95% percentile
    bootstrap of the mean over seeds, `purejaxpg.results.summarize`), ``final_return_worst,
    worst_seed`` (the index of the seed with the lowest final return), ``final_return_best,
    num_seeds``. Seeds in which no episode finished (NaN) are left out of the statistics.
    """
    rows = []
    for c, (cfg, finals) in enumerate(zip(configs, np.asarray(final_returns, np.float64))):
        stats = results.summarize(finals)
        finite = np.isfinite(finals)
        worst_seed = int(np.flatnonzero(finite)[np.argmin(finals[finite])]) if finite.any() else -1
        rows.append({"config": c, **cfg, "final_return_mean": stats["mean"], "ci95_low": stats["ci95"][0],
                     "ci95_high": stats["ci95"][1], "final_return_worst": stats["worst"], "worst_seed": worst_seed,
                     "final_return_best": stats["best"], "num_seeds": stats["num_runs"]})
    return pd.DataFrame(rows)


def best_config(summary: pd.DataFrame) -> dict[str, Any] | None:
    """The summary row with the highest mean final return (ties: the higher worst seed), as a
    dict; None when every configuration's mean is NaN (no episode finished)."""
    ranked = summary[np.isfinite(summary["final_return_mean"])]
    if ranked.empty:
        return None
    ranked = ranked.sort_values(["final_return_mean", "final_return_worst"], ascending=False, kind="stable")
    row = ranked.iloc[0].to_dict()
    return {k: (int(v) if k in ("config", "worst_seed", "num_seeds") else float(v)) for k, v in row.items()}
