"""``python -m purejaxpg list``: the registered algorithms and environments."""

from __future__ import annotations


def cmd_list(argv: list[str]) -> int:
    """``list``: print the names of the registered algorithms and of the environments of every
    backend (gymnax; brax and jaxmarl when installed, else the command that installs them)."""
    from purejaxpg import algorithms, backends, envs
    from purejaxpg.errors import ConfigError

    print("algorithms:", ", ".join(sorted(algorithms.ALGORITHMS)))
    print("environments (gymnax):", ", ".join(envs.registered_env_ids()))
    for prefix, (_, extra, _) in backends.BACKENDS.items():
        try:
            ids = envs.registered_env_ids(prefix)
        except ConfigError:
            print(f"environments ({prefix}): not installed; pip install \"purejaxpg[{extra}]\"")
            continue
        print(f"environments ({prefix}):", ", ".join(ids))
    return 0
