"""Algorithms on the shared training skeleton, by the names the CLI uses.

The registry maps a name to ``"module:Class"`` and imports on lookup, so ``import purejaxpg``
stays cheap and a user's own algorithm can be registered with :func:`register`.
"""

from __future__ import annotations

import difflib
import importlib

from purejaxpg.algorithms.ppo import PPO, PPOHParams
from purejaxpg.config import ConfigError

#: name -> "module:Class"; each class's fields are its static settings, ``.HParams`` its dynamic ones.
ALGORITHMS: dict[str, str] = {
    "ppo": "purejaxpg.algorithms.ppo:PPO",
    "ppo_kl": "purejaxpg.algorithms.ppo_kl:PPOKL",
    "mdpo": "purejaxpg.algorithms.mdpo:MDPO",
    "grpo": "purejaxpg.algorithms.grpo:GRPO",
    "trpo": "purejaxpg.algorithms.trpo:TRPO",
    "npg": "purejaxpg.algorithms.trpo:NPG",
    "nac": "purejaxpg.algorithms.nac:NAC",
    "reinforce": "purejaxpg.algorithms.reinforce:Reinforce",
    "reinforce_baseline": "purejaxpg.algorithms.reinforce:ReinforceBaseline",
    "a2c": "purejaxpg.algorithms.a2c:A2C",
    "ddpg": "purejaxpg.algorithms.td3:DDPG",
    "td3": "purejaxpg.algorithms.td3:TD3",
    "sac": "purejaxpg.algorithms.sac:SAC",
    "d4pg": "purejaxpg.algorithms.d4pg:D4PG",
    "acer": "purejaxpg.algorithms.acer:ACER",
    "a3c": "purejaxpg.algorithms.a3c:A3C",
    "sql": "purejaxpg.algorithms.sql:SQL",
    "maddpg": "purejaxpg.algorithms.maddpg:MADDPG",
}


def register(name: str, target: str | type) -> None:
    """Register an algorithm class (or its ``"module:Class"`` path) under ``name``."""
    ALGORITHMS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def get(name: str) -> type:
    """The algorithm class registered as ``name``; ConfigError naming close names otherwise."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"algo={name!r} is not an algorithm of purejaxpg.{hint} "
                          f"Choose one of: {', '.join(sorted(ALGORITHMS))}.")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["ALGORITHMS", "get", "register", "PPO", "PPOHParams"]
