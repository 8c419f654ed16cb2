"""Environment backends beyond gymnax, picked by the prefix of an env id (``brax/<name>``, ``jaxmarl/<name>``).

Each backend module is imported only when an id with its prefix is used, so brax and jaxmarl
stay optional extras (``pip install "purejaxpg[brax]"``, ``"purejaxpg[jaxmarl]"``). A backend
module provides:

* ``names() -> list[str]``: the names it can make (what an unknown name's error lists);
* ``make(name) -> (env, env_params)``: an object with the gymnax 1.x interface that
  `purejaxpg.envs` drives (``reset(key, params) -> (obs, state)``,
  ``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`` with
  auto-reset and ``info["final_observation"]``, ``observation_space(params)``,
  ``action_space(params)``) and its params (with ``max_steps_in_episode``).

A multi-agent backend's env returns per-agent arrays with a leading agent axis: observations
``[A, obs_dim]``, rewards ``[A]``, actions ``[A]`` (discrete) or ``[A, D]``; termination and
truncation are one flag per env (the episode ends for all agents at once). It sets the attribute
``num_agents = A``; `purejaxpg.envs` then gives the learner either the joint view (MADDPG) or
the A agents as A environments of one shared policy (PPO with parameter sharing).
"""

from __future__ import annotations

import importlib

from purejaxpg.errors import ConfigError

#: prefix -> (module, pip extra, what it needs)
BACKENDS = {
    "brax": ("purejaxpg.backends.brax_env", "brax", "brax"),
    "jaxmarl": ("purejaxpg.backends.jaxmarl_env", "jaxmarl", "jaxmarl"),
}


def split_id(env_id: str) -> tuple[str | None, str]:
    """``"brax/hopper" -> ("brax", "hopper")``; an unprefixed gymnax id -> ``(None, env_id)``."""
    if "/" not in env_id:
        return None, env_id
    prefix, name = env_id.split("/", 1)
    if prefix not in BACKENDS:
        raise ConfigError(f"env_id={env_id!r} has an unknown backend prefix {prefix!r}; use one of "
                          f"{', '.join(repr(p + '/') for p in BACKENDS)}, or a gymnax id without a prefix.")
    return prefix, name


def load(prefix: str):
    """Import a backend module, with a clear message when its package is missing."""
    module, extra, package = BACKENDS[prefix]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == package:
            raise ConfigError(f"env ids starting with '{prefix}/' need the {package} package, which is not "
                              f"installed; install it with: pip install \"purejaxpg[{extra}]\"") from err
        raise
