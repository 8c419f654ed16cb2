"""Watch a trained policy: one episode drawn to a GIF (gymnax) or an HTML viewer (brax).

    policy = purejaxpg.load("runs/ppo_cartpole")
    purejaxpg.render.render(policy, "policy.gif")             # python -m purejaxpg render RUN_DIR --out policy.gif

gymnax draws its classic-control, MinAtar, bsuite Catch and a few other envs with matplotlib
(``gymnax.visualize.Visualizer``); brax writes its three.js viewer (``brax.io.html``). Anything
else is a ``ConfigError`` naming what can be drawn.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from purejaxpg.config import ConfigError

#: gymnax envs its Visualizer draws (gymnax 1.0.1)
GYMNAX_DRAWABLE = ("Acrobot-v1", "CartPole-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0",
                   "Catch-bsuite", "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
                   "SpaceInvaders-MinAtar", "Pong-misc", "PointRobot-misc", "MetaMaze-misc", "FourRooms-misc")


def episode(policy: Any, key: jax.Array | None = None, deterministic: bool = False,
            max_steps: int | None = None) -> tuple[list, np.ndarray]:
    """One episode of ``policy`` (a `purejaxpg.policy.Policy`) in one env.

    Returns:
      ``(states, rewards)``: the env states from the first to the last (the final one, before the
      auto-reset), ``len(rewards) + 1`` of them, and the rewards ``[T]`` (agents' mean for a
      multi-agent env).
    """
    from purejaxpg.policy import play

    key = jax.random.PRNGKey(0) if key is None else key
    steps = int(max_steps or policy.trainer.spec.max_episode_steps or 1000)
    run = jax.jit(lambda learner, stats, k: play(policy.trainer, learner, stats, 1, steps, deterministic, k,
                                                 env_states=True))
    loop, traj, states = jax.device_get(run(policy.learner, policy.obs_stats, key))
    dones = np.asarray(traj.done).reshape(steps, -1).any(axis=1)
    rewards = np.asarray(traj.reward).reshape(steps, -1).mean(axis=1)  # agents' mean for a multi-agent env
    length = int(np.argmax(dones)) + 1 if dones.any() else steps
    pick = lambda tree, t: jax.tree.map(lambda x: x[t, 0], tree)  # noqa: E731  step t of the one env
    sequence = [pick(states, t) for t in range(length)]
    if dones.any():
        sequence.append(sequence[-1])  # the auto-reset replaced the final state; hold the last frame
    else:
        sequence.append(jax.tree.map(lambda x: x[0], loop.env_state))  # no reset: the state after the last step
    return sequence, rewards[:length]


def render(policy: Any, out: str, key: jax.Array | None = None, deterministic: bool = False,
           max_steps: int | None = None) -> str:
    """Draw one episode of ``policy`` to ``out`` (``.gif`` for gymnax envs, ``.html`` for brax).

    Raises:
      ConfigError: the env cannot be drawn, or the file type does not suit its backend.
    """
    env_id = policy.trainer.config.env_id
    if env_id.startswith("brax/"):
        if not out.lower().endswith(".html"):
            raise ConfigError(f"brax envs render to an HTML viewer: give --out FILE.html (got {out!r}).")
        return _render_brax(policy, out, key, deterministic, max_steps)
    name = getattr(policy.trainer.env, "name", env_id)
    if name not in GYMNAX_DRAWABLE:
        raise ConfigError(f"cannot draw {env_id!r}: render draws the gymnax envs {', '.join(GYMNAX_DRAWABLE)} "
                          "(to .gif) and brax envs (to .html).")
    # gymnax draws classic control through gymnasium and pygame, headless here
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        import pygame  # noqa: F401
    except ModuleNotFoundError as err:
        if name in GYMNAX_DRAWABLE[:5]:
            raise ConfigError(f"drawing {env_id} needs pygame (gymnax draws classic control through gymnasium): "
                              "pip install \"purejaxpg[render]\"") from err
    from gymnax.visualize import Visualizer

    states, rewards = episode(policy, key, deterministic, max_steps)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    Visualizer(policy.trainer.env, policy.trainer.env_params, states, np.cumsum(rewards).tolist() + [float(
        np.sum(rewards))]).animate(out)
    return out


def _render_brax(policy: Any, out: str, key, deterministic: bool, max_steps: int | None) -> str:
    from brax.io import html

    states, _ = episode(policy, key, deterministic, max_steps)
    brax_env = policy.trainer.env.brax_env
    pipeline = [s.brax.pipeline_state for s in states]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        fh.write(html.render(brax_env.sys.tree_replace({"opt.timestep": brax_env.dt}), pipeline))
    return out
