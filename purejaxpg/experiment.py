"""Build an (algorithm, TrainConfig, HParams) triple from a name, an env id and flat overrides.

Settings live in three dataclasses (the run's ``TrainConfig``, the algorithm's static fields and
its ``HParams``); their field names are disjoint, so one flat ``{name: value}`` dictionary
addresses all of them. `purejaxpg.presets` holds per-environment settings from the literature
(``shared/REFERENCES.md``), applied before the caller's overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from purejaxpg import algorithms, envs, presets
from purejaxpg.config import ConfigError, TrainConfig, validate_hparams

def settings_fields(algo_cls: type) -> dict[str, tuple[str, dataclasses.Field]]:
    """``{name: (kind, field)}`` with kind in {"train", "algo", "hparams"}."""
    out: dict[str, tuple[str, dataclasses.Field]] = {}
    for kind, dc in (("train", TrainConfig), ("algo", algo_cls), ("hparams", algo_cls.HParams)):
        for f in dataclasses.fields(dc):
            out[f.name] = (kind, f)
    return out


def build(algo_name: str, env_id: Any, overrides: dict[str, Any] | None = None, use_presets: bool = True):
    """Return ``(algo, config, hparams)`` after presets and ``overrides``; validates everything
    that can be checked without compiling.

    ``env_id`` is an id (gymnax, ``brax/<name>``, ``jaxmarl/<name>``) or an environment object
    with the gymnax interface; for an object, ``config.env_id`` is its name (no preset applies)
    and the object goes to ``make_train(algo, config, env=env_object, env_params=...)``.

    Raises:
      ConfigError: unknown algorithm, unknown setting name (with suggestions), a bad value.
    """
    env_object = None if isinstance(env_id, str) else env_id
    if env_object is not None:
        envs.from_env(env_object)  # checks the interface
        env_id = env_label(env_object)
    algo_cls = algorithms.get(algo_name)
    fields = settings_fields(algo_cls)
    settings = presets.preset(algo_name, env_id) if use_presets else {}
    settings.update(overrides or {})
    grouped: dict[str, dict[str, Any]] = {"train": {"env_id": env_id}, "algo": {}, "hparams": {}}
    for name, value in settings.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{name!r} is not a setting of {algo_name}.{hint}")
        grouped[fields[name][0]][name] = value
    config = TrainConfig(**grouped["train"])
    algo = algo_cls(**grouped["algo"])
    hparams = algo_cls.HParams(**grouped["hparams"])
    if env_object is None:
        envs.check_env_id(config.env_id)
    config.validate()
    validate_hparams(hparams)
    return algo, config, hparams


def env_label(env: Any) -> str:
    """The ``env_id`` a run on an env object is recorded under: its ``name``, else its class name."""
    name = getattr(env, "name", None)
    return name if isinstance(name, str) and name else type(env).__name__


def describe(algo: Any, config: TrainConfig, hparams: Any) -> dict[str, Any]:
    """A JSON-ready description of every setting of a run."""
    return {
        "algo": algo.name,
        "train": dataclasses.asdict(config),
        "algo_settings": dataclasses.asdict(algo),
        "hparams": {f.name: _jsonable(getattr(hparams, f.name)) for f in dataclasses.fields(hparams)},
    }


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    except Exception:  # pragma: no cover - anything numpy cannot convert is shown as text
        return str(value)
