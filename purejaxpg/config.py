"""Static configuration, dynamic hyperparameters, and their validation.

Two kinds of settings, kept in two kinds of frozen dataclass:

* **static** (`TrainConfig` and each algorithm's own dataclass): values that fix shapes or loop
  counts (num_envs, num_steps, epochs, minibatches, hidden sizes, CG iterations). Changing one
  recompiles.
* **dynamic** (each algorithm's ``HParams``, declared with :func:`hparams` and :func:`hp`): values
  that enter the computation as arrays (lr, gamma, lambda, clip eps, ...). They are pytree leaves,
  so a grid of them is a ``jax.vmap``, not a recompile.

Every field declares its valid range; :func:`validate_hparams` checks concrete values on the host
before anything is compiled and raises :class:`ConfigError` naming the field, the value and the fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from purejaxpg.errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "hp", "hparams", "validate_hparams", "hparams_to_arrays", "field_docs"]


def hp(default: float, *, low: float | None = None, high: float | None = None,
       low_open: bool = False, high_open: bool = False, doc: str = "") -> Any:
    """Declare a dynamic hyperparameter with its valid interval [low, high] (open ends optional)."""
    return dataclasses.field(default=default, metadata=dict(low=low, high=high, low_open=low_open,
                                                             high_open=high_open, doc=doc))


def hparams(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree whose fields are all leaves."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])


def _interval(meta: dict) -> str:
    low, high = meta.get("low"), meta.get("high")
    left = "(" if meta.get("low_open") else "["
    right = ")" if meta.get("high_open") else "]"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def validate_hparams(hparams_obj: Any) -> None:
    """Check every concrete hyperparameter value against its declared interval.

    Works on a single configuration or a stacked grid (every element is checked). Traced values
    (inside jit) are skipped: validation is a host-side check before compiling.
    """
    for f in dataclasses.fields(hparams_obj):
        value = getattr(hparams_obj, f.name)
        if isinstance(value, jax.core.Tracer):
            continue
        arr = np.asarray(value, dtype=np.float64)
        meta = f.metadata
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"hyperparameter {f.name}={value} is not finite; pass a finite value "
                              f"in {_interval(meta)}.")
        low, high = meta.get("low"), meta.get("high")
        bad = np.zeros(arr.shape, bool)
        if low is not None:
            bad |= (arr <= low) if meta.get("low_open") else (arr < low)
        if high is not None:
            bad |= (arr >= high) if meta.get("high_open") else (arr > high)
        if np.any(bad):
            shown = arr[bad].ravel()[0]
            raise ConfigError(f"hyperparameter {f.name}={shown:g} is out of range; it must lie in "
                              f"{_interval(meta)}. {meta.get('doc', '')}".rstrip())


def hparams_to_arrays(hparams_obj: Any, dtype=np.float32) -> Any:
    """Convert every leaf to a float32 array so that jit sees one signature for all values."""
    return jax.tree.map(lambda x: np.asarray(x, dtype), hparams_obj)


def field_docs(dc: Any) -> dict[str, str]:
    """``{field name: doc}`` of a dataclass (for the CLI's help)."""
    return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(dc)}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of a training run, shared by every algorithm.

    Attributes:
      env_id: gymnax environment id, e.g. ``"CartPole-v1"``.
      num_envs: N, parallel environments per seed.
      num_steps: T, steps per environment per iteration; one batch is ``[T, N]``.
      total_timesteps: env steps per seed; ``num_iterations = total_timesteps // (N * T)``.
      normalize_obs: keep running observation statistics in the training state and feed the
        policy and critic ``clip((obs - mean) / std, -10, 10)``; statistics are frozen during a
        rollout and merged after it.
      normalize_rewards: divide rewards by the running std of the discounted return (discount
        ``reward_norm_gamma``), as SB3's VecNormalize and PureJaxRL's continuous PPO do; episode
        returns in the metrics stay raw.
      reward_norm_gamma: the discount of that running return.
      check_finite: opt-in guard: the host stops the run with an error naming the iteration and
        the metric that went non-finite.
    """

    env_id: str = "CartPole-v1"
    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    normalize_obs: bool = False
    normalize_rewards: bool = False
    reward_norm_gamma: float = 0.99
    check_finite: bool = False

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> None:
        """Raise ConfigError for a setting that cannot run; called before compiling.

        The env id is checked where the env is made (`purejaxpg.envs.make`), so that this module
        imports no environment library (importing gymnax starts JAX's backend, which must wait
        until the command line has chosen the number of CPU devices).
        """
        for name in ("num_envs", "num_steps", "total_timesteps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
        if not 0.0 <= self.reward_norm_gamma <= 1.0:
            raise ConfigError(f"reward_norm_gamma={self.reward_norm_gamma} must lie in [0, 1].")
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} is smaller than one batch "
                f"(num_envs * num_steps = {self.num_envs} * {self.num_steps} = {self.batch_size}); "
                f"raise total_timesteps to at least {self.batch_size} or shrink the batch."
            )
