"""One call from an algorithm's name to trained seeds: ``purejaxpg.train("sac", "Pendulum-v1", seeds=8)``.

For the benchmark-script user; everything it does is the composable API underneath
(`purejaxpg.experiment.build`, `purejaxpg.train.make_train`, `purejaxpg.train.run_chunked`), which
researchers import directly when they need more control.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
      metrics: tidy table, one row per (seed, iteration): ``seed``, ``iteration`` and every metric
        (``env_steps``, ``episode_return``, losses, ...).
      final_returns: ``[seeds]`` mean return of the episodes that ended in the last 10% of iterations.
      runner: the final batched `purejaxpg.train.RunnerState` (learner, envs, keys) of all seeds.
      trainer, hparams: what was run (`purejaxpg.train.Trainer`, the algorithm's ``HParams``).
      steps_per_second, compile_seconds: of the whole call.
    """

    metrics: pd.DataFrame
    final_returns: np.ndarray
    runner: Any
    trainer: Any
    hparams: Any
    steps_per_second: float
    compile_seconds: float

    def policy(self, seed: int = 0):
        """The trained policy of one seed (`purejaxpg.policy.Policy`: ``act``, ``evaluate``)."""
        import jax

        from purejaxpg.policy import Policy

        runner = jax.tree.map(lambda x: x[seed], self.runner)
        return Policy(self.trainer, runner.learner, runner.env.obs_stats)


def train(algo: str, env: Any = "CartPole-v1", *, seeds: int = 1, seed: int = 0, total_timesteps: float | None = None,
          env_params: Any = None, presets: bool = True, shard: str = "auto", **settings: Any) -> TrainResult:
    """Train ``seeds`` seeds of ``algo`` on ``env`` in one compiled, vmapped call.

    Args:
      algo: an algorithm's name (``purejaxpg.algorithms.ALGORITHMS``: "ppo", "sac", ...).
      env: an env id ("CartPole-v1", "brax/inverted_pendulum", "jaxmarl/MPE_simple_spread_v3") or an
        env object with the gymnax interface (then ``env_params`` too, default its own).
      seeds: runs, vmapped; run i's key is fold_in(PRNGKey(seed), i).
      total_timesteps: env steps per seed (default: the preset's, else the config default).
      presets: apply the per-env preset of `purejaxpg.presets` before ``settings``.
      shard: device placement (`purejaxpg.train.run_chunked`).
      settings: any setting by name (``lr=1e-3``, ``num_envs=16``, ``hidden=(64, 64)``).
    Returns:
      a :class:`TrainResult`.
    Raises:
      ConfigError: bad names or values, before anything is compiled.
    """
    from purejaxpg import experiment, results
    from purejaxpg import train as train_module
    from purejaxpg.config import ConfigError

    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} must be a positive integer.")
    overrides = dict(settings)
    if total_timesteps is not None:
        if float(total_timesteps) != int(total_timesteps):
            raise ConfigError(f"total_timesteps={total_timesteps!r} must be a whole number of env steps.")
        overrides["total_timesteps"] = int(total_timesteps)
    built = experiment.build(algo, env, overrides, use_presets=presets)
    env_object = None if isinstance(env, str) else env
    trainer = train_module.make_train(*built, env=env_object, env_params=env_params)
    hparams = built[2]
    result = train_module.run_chunked(trainer, train_module.seed_keys(seed, seeds), hparams, shard=shard)
    table = results.tidy(result.metrics, {"seed": np.arange(seeds)}).drop(columns="run")
    return TrainResult(table, results.final_returns(result.metrics), result.runner, trainer, hparams,
                       result.steps_per_second, result.compile_seconds)
