"""``python -m purejaxpg list``: the registered algorithms and environments."""

from __future__ import annotations


def cmd_list(argv: list[str]) -> int:
    """``list``: print the names of the registered algorithms and environments."""
    from purejaxpg import algorithms, envs

    print("algorithms:", ", ".join(sorted(algorithms.ALGORITHMS)))
    print("environments:", ", ".join(envs.registered_env_ids()))
    return 0
