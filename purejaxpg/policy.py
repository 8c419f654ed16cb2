"""A trained policy as a function: load it from a run folder, act with it, evaluate it.

    policy = purejaxpg.load("runs/ppo_cartpole")          # the run's final checkpoint, seed 0
    action = jax.jit(policy.act)(obs, key)                  # obs [*obs_shape] or [N, *obs_shape]
    returns = policy.evaluate(episodes=100, deterministic=True)

`Policy.act` is pure and jittable: it closes over the learner state (parameters) and the
observation statistics of the run, and samples from the algorithm's own behaviour policy
(``deterministic=True``: the algorithm's ``greedy_action``, the policy's mode or the deterministic
actor). `Policy.evaluate` runs N environments in parallel (one ``lax.scan`` of ``vmap``-ed steps)
and returns the return of each one's first episode.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg import envs, rollout, train
from purejaxpg.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Policy:
    """One trained run's policy.

    Attributes:
      trainer: the run's `purejaxpg.train.Trainer` (algorithm, config, env, spec).
      learner: the learner state of this run (no run axis).
      obs_stats: the run's observation statistics (used when the run normalised observations).
      settings: the run's saved settings (``config.json``'s content), or ``{}``.
    """

    trainer: train.Trainer
    learner: Any
    obs_stats: envs.RunningMeanStd
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def spec(self) -> envs.EnvSpec:
        return self.trainer.spec

    def act(self, obs: jax.Array, key: jax.Array, deterministic: bool = False) -> jax.Array:
        """The action for ``obs`` (``[*obs_shape]`` -> one action, ``[N, *obs_shape]`` -> ``[N, ...]``),
        in the env's own units (what ``env.step`` takes). Jittable; ``deterministic`` is static."""
        single = jnp.ndim(obs) == len(self.spec.obs_shape)
        batch = jnp.asarray(obs, jnp.float32)[None] if single else jnp.asarray(obs, jnp.float32)
        action = _act(self.trainer, self.learner, self.obs_stats, batch, key, deterministic)
        return action[0] if single else action

    def evaluate(self, episodes: int = 10, key: jax.Array | None = None, deterministic: bool = False,
                 max_steps: int | None = None) -> np.ndarray:
        """``[episodes]`` undiscounted returns of one episode in each of ``episodes`` parallel envs.

        Args:
          episodes: number of environments (static), each playing one episode.
          key: PRNG key (default PRNGKey(0)).
          deterministic: act with the greedy action instead of sampling.
          max_steps: steps to run (default: the env's time limit, or 1000 when it has none); an
            episode not over by then is counted with the return it has.
        Returns:
          NumPy ``[episodes]``; for a multi-agent env, each env's mean over agents of their returns.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
            raise ConfigError(f"episodes={episodes!r} must be a positive integer.")
        if deterministic and not hasattr(self.trainer.algo, "greedy_action"):
            raise ConfigError(f"{self.trainer.algo.name} has no deterministic action; evaluate it without "
                              "deterministic=True (--deterministic).")
        key = jax.random.PRNGKey(0) if key is None else key
        steps = int(max_steps or self.spec.max_episode_steps or 1000)
        run = jax.jit(lambda learner, stats, k: _evaluate(self.trainer, learner, stats, episodes, steps,
                                                          deterministic, k))
        return np.asarray(run(self.learner, self.obs_stats, key))


def _act(trainer: train.Trainer, learner: Any, obs_stats: envs.RunningMeanStd, obs: jax.Array, key: jax.Array,
         deterministic: bool) -> jax.Array:
    """``[N, *obs_shape]`` raw observations -> ``[N, ...]`` env actions of the run's policy."""
    if trainer.config.normalize_obs:
        obs = obs_stats.normalize(obs)
    return _act_seen(trainer, learner, obs, key, deterministic)


def _act_seen(trainer: train.Trainer, learner: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """Actions for observations as the policy sees them (normalised when the run normalises)."""
    algo = trainer.algo
    if deterministic:
        return algo.greedy_action(learner, obs)
    actor_key, act_key = jax.random.split(key)
    config = dataclasses.replace(train.learner_config(trainer.config, trainer.spec), num_envs=obs.shape[0])
    return algo.act(learner, obs, act_key, algo.init_actor(learner, config, actor_key))[0]


def play(trainer: train.Trainer, learner: Any, obs_stats: envs.RunningMeanStd, num_envs: int, steps: int,
         deterministic: bool, key: jax.Array, env_states: bool = False):
    """``steps`` steps of ``num_envs`` fresh envs under the run's policy, through `purejaxpg.rollout.collect`
    (the library's one rollout loop): ``(final loop, Transition [T, N, ...][, env states])``."""
    reset_key, run_key = jax.random.split(key)
    loop = envs.reset(trainer.env, trainer.env_params, trainer.spec, reset_key, num_envs).replace(obs_stats=obs_stats)
    act = rollout.stateless(lambda obs, k: (_act_seen(trainer, learner, obs, k, deterministic), {}))
    return rollout.collect(act, trainer.env, trainer.env_params, trainer.spec, loop, run_key, steps,
                           trainer.config.normalize_obs, env_states=env_states)


def _evaluate(trainer: train.Trainer, learner: Any, obs_stats: envs.RunningMeanStd, episodes: int, steps: int,
              deterministic: bool, key: jax.Array) -> jax.Array:
    """``[episodes]`` first-episode returns of ``episodes`` envs run for ``steps`` steps (see `Policy.evaluate`)."""
    spec = trainer.spec
    _, traj = play(trainer, learner, obs_stats, episodes, steps, deterministic, key)
    ended = jnp.any(traj.done, axis=0)
    first = jnp.argmax(traj.done, axis=0)
    finished = jnp.take_along_axis(traj.finished_return, first[None], axis=0)[0]
    reward = traj.reward if traj.reward.ndim == 2 else jnp.mean(traj.reward, axis=-1)  # joint view: agents' mean
    returns = jnp.where(ended, finished, jnp.sum(reward, axis=0))  # an episode not over: the return so far
    if spec.share_agents:
        returns = returns.reshape(episodes, spec.num_agents).mean(axis=1)
    return returns


def load(run_dir: str, run: int = 0) -> Policy:
    """The policy of run ``run`` (a seed, or a point of a grid) of a saved run.

    Args:
      run_dir: a folder written by ``python -m purejaxpg train --out DIR`` (its newest intact
        checkpoint in ``DIR/checkpoints``), or a checkpoint folder or ``ckpt-*.msgpack`` file.
      run: which of the run's vmapped runs.
    Raises:
      ConfigError: no checkpoint there, or ``run`` out of range.
    """
    from purejaxpg import checkpoint

    location = run_dir
    if os.path.isdir(os.path.join(run_dir, "checkpoints")):
        location = os.path.join(run_dir, "checkpoints")
    try:
        ckpt = checkpoint.restore(location)
    except checkpoint.CheckpointError as err:
        raise ConfigError(f"cannot load a policy from {run_dir}: {err} Train with --out DIR (the final state is "
                          "saved in DIR/checkpoints).") from err
    num_runs = int(np.asarray(ckpt.runner.iteration).shape[0])
    if not 0 <= run < num_runs:
        raise ConfigError(f"run={run} is out of range: {run_dir} holds {num_runs} run(s) (0..{num_runs - 1}).")
    runner = jax.tree.map(lambda x: x[run], ckpt.runner)
    return Policy(ckpt.trainer, runner.learner, runner.env.obs_stats, dict(ckpt.settings))
