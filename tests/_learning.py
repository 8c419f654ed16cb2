"""Learning checks that hold on any machine.

Floating-point results differ between processors and RL training amplifies the difference, so a
fixed seed is not a fixed result elsewhere. The learning tests therefore

* draw their seeds from ``PUREJAXPG_TEST_SEED_OFFSET`` (default 0): run
  ``PUREJAXPG_TEST_SEED_OFFSET=3 python -m pytest -m learning`` to check them on seeds they were
  not written on;
* assert what a correct implementation reaches on every seed with a wide margin (or on a
  quantile over several seeds), never a value tuned to one seed set.
"""

from __future__ import annotations

import os

import numpy as np

from purejaxpg import experiment, results, train

SEED_OFFSET = int(os.environ.get("PUREJAXPG_TEST_SEED_OFFSET", "0"))


def seed_keys(num_seeds: int, base: int = 0):
    """``[num_seeds]`` keys of the learning tests: `purejaxpg.train.seed_keys` at ``base + 1000 * offset``."""
    return train.seed_keys(base + 1000 * SEED_OFFSET, num_seeds)


def run(algo, config, hparams, num_seeds: int, base: int = 0) -> train.RunResult:
    """Train ``num_seeds`` vmapped seeds of an (algorithm, TrainConfig, HParams) triple on one device."""
    return train.run_chunked(train.make_train(algo, config, hparams), seed_keys(num_seeds, base), hparams,
                             shard="none")


def run_named(algo_name: str, env_id: str, overrides: dict | None = None, num_seeds: int = 4,
              base: int = 0) -> train.RunResult:
    """`run` on ``experiment.build(algo_name, env_id, overrides)`` (presets applied)."""
    return run(*experiment.build(algo_name, env_id, overrides or {}), num_seeds=num_seeds, base=base)


def final_returns(out: train.RunResult) -> np.ndarray:
    """``[R]`` mean return of the episodes that ended in the last 10% of iterations, per seed."""
    return results.final_returns(out.metrics)


def check(finals, *, every_seed_above: float | None = None, mean_above: float | None = None,
          most_above: tuple[int, float] | None = None) -> None:
    """Assert the final returns: every seed above one bound, their mean above another, and (for an
    algorithm that leaves an occasional seed behind) ``most_above = (k, x)``: at least k seeds above x."""
    finals = np.asarray(finals, np.float64)
    where = f"final returns {np.round(finals, 1).tolist()} (PUREJAXPG_TEST_SEED_OFFSET={SEED_OFFSET})"
    assert np.all(np.isfinite(finals)), where
    if every_seed_above is not None:
        assert finals.min() > every_seed_above, f"a seed ended at or below {every_seed_above}: {where}"
    if mean_above is not None:
        assert finals.mean() > mean_above, f"the mean is at or below {mean_above}: {where}"
    if most_above is not None:
        count, bound = most_above
        assert np.sum(finals > bound) >= count, f"fewer than {count} seeds ended above {bound}: {where}"
