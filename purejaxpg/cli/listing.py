"""``python -m purejaxpg list``: the registered algorithms and environments."""

from __future__ import annotations


def cmd_list(argv: list[str]) -> int:
    """``list``: print the names of the registered algorithms and of the environments of every
    backend (gymnax; brax and jaxmarl when installed, else the command that installs them);
    ``list --presets [ALGO]``: the per-environment presets as YAML."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m purejaxpg list",
                                     description="List algorithms and environments, or the presets.")
    parser.add_argument("--presets", nargs="?", const="all", default=None, metavar="ALGO",
                        help="print the per-environment presets (of one algorithm) as YAML")
    args = parser.parse_args(argv)
    if args.presets is not None:
        return _print_presets(args.presets)
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


def _print_presets(algo: str) -> int:
    """The presets of `purejaxpg.presets` (``"*"`` applies to every env) as YAML."""
    import yaml

    from purejaxpg import presets
    from purejaxpg.cli.common import error

    if algo != "all" and algo not in presets.PRESETS:
        return error(f"{algo!r} has no presets; algorithms with presets: {', '.join(sorted(presets.PRESETS))}")
    chosen = presets.PRESETS if algo == "all" else {algo: presets.PRESETS[algo]}
    plain = {name: {env: {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
                    for env, settings in by_env.items()} for name, by_env in chosen.items()}
    print(yaml.safe_dump(plain, sort_keys=False), end="")
    return 0
