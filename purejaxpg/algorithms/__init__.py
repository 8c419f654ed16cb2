"""Algorithms on the shared training skeleton, by the names the CLI uses."""

from __future__ import annotations

import difflib

from purejaxpg.algorithms.ppo import PPO, PPOHParams
from purejaxpg.config import ConfigError

#: name -> algorithm class; each class's fields are its static settings, ``.HParams`` its dynamic ones.
ALGORITHMS: dict[str, type] = {
    "ppo": PPO,
}


def get(name: str) -> type:
    """The algorithm class registered as ``name``; ConfigError naming close names otherwise."""
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"algo={name!r} is not an algorithm of purejaxpg.{hint} "
                          f"Choose one of: {', '.join(sorted(ALGORITHMS))}.")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "get", "PPO", "PPOHParams"]
