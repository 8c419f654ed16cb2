"""The off-policy actor-critic skeleton that DDPG, TD3, SAC and D4PG share: replay, critics, target networks, warm-up.

The training loop does not change (`purejaxpg.train`): each iteration collects ``[T, N]`` steps,
then the algorithm's ``update``

    buffer <- add(buffer, batch)                        # T N transitions in, the oldest out
    repeat gradient_steps times (lax.scan):             # the update-to-data ratio
        sample a minibatch from the buffer
        critic step on the algorithm's target y (`critic_target`)
        every policy_delay-th step: actor step (`actor_loss`), the algorithm's extra step
            (SAC's temperature), Polyak update of the target networks

The buffer (`purejaxpg.replay`), the parameters, the target parameters and the optimiser states
all live in one `OffPolicyState`, so a sweep over seeds and hyperparameters vmaps and shards like
an on-policy run, and a checkpoint holds the buffer.

Actions live in [-1, 1]^D inside the learner (actor outputs, replay, critic inputs, noise scales);
``act`` rescales them to the env's Box bounds and ``update`` maps the collected ones back. Until
``learning_starts`` transitions have been collected the actors take uniform random actions and no
gradient step is taken.

A subclass states what differs: its actor module, its critic target, its actor loss, and
optionally extra learnt parameters (`extra_params`, `after_actor_step`). Hooks with defaults let a
subclass change the critic and its replay (D4PG's distributional critic on prioritised N-step
windows): `make_critic`, `init_replay` / `add_to_replay` / `sample_replay` / `replay_size` /
`min_transitions`, `critic_loss` and `after_critic_step`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxpg import envs, objectives, replay, rollout, targets
from purejaxpg.algorithms import common
from purejaxpg.config import hp, hparams
from purejaxpg.errors import ConfigError
from purejaxpg.networks import QCritic


@hparams
class OffPolicyHParams:
    """Dynamic hyperparameters shared by the off-policy actor-critics (arrays; vmap over them for sweeps)."""

    actor_lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate of the actor.")
    critic_lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate of the critics.")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor.")
    tau: float = hp(0.005, low=0.0, high=1.0, doc="Polyak rate of the target networks (1: hard copy).")


@struct.dataclass
class OffPolicyState:
    """Everything an off-policy learner carries from iteration to iteration.

    Attributes:
      params: ``{"actor": ..., "critic": ... (K stacked parameter sets), **extra}``.
      target: the target networks, ``{"critic": ...}`` plus ``"actor"`` for algorithms with a target actor.
      opt_state: one Adam state per entry of ``params``.
      buffer: the replay buffer's state (`purejaxpg.replay`).
      env_steps: transitions collected so far (int32); decides warm-up and the first gradient step.
      updates: gradient steps taken (int32); the actor steps on every ``policy_delay``-th.
      explore: the exploration hyperparameters ``act`` needs (copied from the hparams at init).
      actor, critic: the flax modules; spec: the env's `purejaxpg.envs.EnvSpec` (action bounds) (static).
    """

    params: dict
    target: dict
    opt_state: dict
    buffer: Any
    env_steps: jax.Array
    updates: jax.Array
    explore: dict
    actor: nn.Module = struct.field(pytree_node=False)
    critic: nn.Module = struct.field(pytree_node=False)
    spec: envs.EnvSpec = struct.field(pytree_node=False)

    def q_values(self, obs: jax.Array, action: jax.Array, critic_params: Any = None) -> jax.Array:
        """``[K, B]`` every critic of the ensemble at ``(obs [B, ...], action [B, D])`` (``[K, B, atoms]``
        of logits for a distributional critic, D4PG's)."""
        params = self.params["critic"] if critic_params is None else critic_params
        return jax.vmap(self.critic.apply, in_axes=(0, None, None))(params, obs, action)


def _positive_int(name: str, value: Any, allow: tuple = ()) -> None:
    if value in allow and not isinstance(value, bool):
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = f" or {' / '.join(str(a) for a in allow)}" if allow else ""
        raise ConfigError(f"{name}={value!r} must be a positive integer{extra}.")


@dataclasses.dataclass(frozen=True)
class OffPolicyAlgorithm(abc.ABC):
    """Base of DDPG, TD3 and SAC; the fields are the static settings they share.

    Attributes:
      buffer_size: transitions the replay ring holds (at least one batch of num_envs * num_steps).
      batch_size: transitions per gradient step, sampled uniformly with replacement.
      gradient_steps: gradient steps per iteration; -1: one per collected transition
        (num_envs * num_steps, an update-to-data ratio of 1).
      learning_starts: transitions collected with uniform random actions before the first
        gradient step (0: learn from the first batch).
      policy_delay: the actor and target networks step once per this many critic steps.
      num_critics: K critics; targets take the minimum over them (clipped double Q for K = 2).
      hidden, activation: MLP shape of the actor and of each critic.
      adam_eps: Adam's epsilon.
    """

    rollout_options: ClassVar[rollout.RolloutOptions] = rollout.RolloutOptions()
    #: continuous actions only
    discrete: ClassVar[bool | None] = False
    #: the parts of ``params`` that have target networks
    target_parts: ClassVar[tuple[str, ...]] = ("actor", "critic")

    buffer_size: int = 100_000
    batch_size: int = 256
    gradient_steps: int = -1
    learning_starts: int = 1_000
    policy_delay: int = 1
    num_critics: int = 2
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    adam_eps: float = 1e-8

    # ---- what a subclass provides -----------------------------------------------------------
    @abc.abstractmethod
    def make_actor(self, spec: envs.EnvSpec) -> nn.Module:
        """The actor module (outputs in [-1, 1]^D, or a distribution over them)."""

    @abc.abstractmethod
    def explore(self, state: OffPolicyState, obs: jax.Array, key: jax.Array, actor_state: Any):
        """``(action [N, D] in [-1, 1], actor_state)``: the behaviour policy after warm-up."""

    @abc.abstractmethod
    def critic_target(self, state: OffPolicyState, batch: replay.Experience, key: jax.Array, hparams) -> jax.Array:
        """``[B]`` the critics' regression target y (from target networks; no gradient flows)."""

    @abc.abstractmethod
    def actor_loss(self, actor_params: Any, state: OffPolicyState, obs: jax.Array, key: jax.Array, hparams):
        """``(loss, aux dict)`` of the actor at observations ``[B, ...]`` (what `actor_inputs` gives)
        under the updated critics."""

    def extra_params(self, spec: envs.EnvSpec, hparams) -> dict:
        """Learnt parameters beyond actor and critics (SAC's log temperature); each gets its own Adam."""
        return {}

    def exploration_hparams(self, hparams) -> dict:
        """The hyperparameters ``explore`` reads (stored in the state, since ``act`` gets no hparams)."""
        return {}

    def after_actor_step(self, state: OffPolicyState, aux: dict, hparams) -> tuple[OffPolicyState, dict]:
        """Extra learning after each actor step (SAC's temperature); ``aux`` is `actor_loss`'s."""
        return state, {}

    # ---- what a subclass may change about the critic and its replay (defaults: one-step Q) --------
    def make_critic(self, spec: envs.EnvSpec) -> nn.Module:
        """The module of each of the ``num_critics`` critics, applied as ``critic(obs, action)``."""
        return QCritic(len(spec.obs_shape), tuple(self.hidden), self.activation)

    def action_shape(self, spec: envs.EnvSpec) -> tuple[int, ...]:
        """Shape of one action as the learner stores it and the critics read it (default ``[D]``)."""
        return (spec.action_dim,)

    def actor_inputs(self, batch: Any) -> Any:
        """What `actor_loss` receives from a minibatch (default its observations; MADDPG's actors also
        need the replayed actions of the other agents)."""
        return batch.obs

    def init_replay(self, spec: envs.EnvSpec) -> Any:
        """The empty replay buffer's state (default: the item ring of `purejaxpg.replay`)."""
        obs = jnp.zeros(spec.obs_shape, jnp.float32)
        reward = jnp.zeros((spec.num_agents,) if spec.joint_agents else ())
        example = replay.Experience(obs, jnp.zeros(self.action_shape(spec), jnp.float32), reward,
                                    jnp.zeros((), bool), obs)
        return replay.init(self._buffer(), example)

    def add_to_replay(self, state: OffPolicyState, batch: rollout.Transition) -> Any:
        """The buffer state after adding a ``[T, N]`` rollout batch (actions mapped to [-1, 1])."""
        return replay.add(self._buffer(), state.buffer, replay.from_batch(batch, self._from_env(state, batch.action)))

    def sample_replay(self, state: OffPolicyState, key: jax.Array, hparams) -> tuple[Any, Any]:
        """``(minibatch, info)``: a minibatch with ``obs [B, ...]`` (what `critic_target` and the actor
        read) and whatever `critic_loss` / `after_critic_step` need about the draw (default ``None``)."""
        return replay.sample(self._buffer(), state.buffer, key), None

    def replay_size(self, buffer: Any) -> jax.Array:
        """Transitions stored in the buffer (int32 scalar; the ``buffer_size`` metric)."""
        return replay.size(buffer)

    def min_transitions(self, num_envs: int) -> int:
        """Transitions the buffer must hold before the first draw, besides ``learning_starts``."""
        return 1

    def critic_loss(self, critic_params: Any, state: OffPolicyState, batch: Any, target: jax.Array, info: Any,
                    hparams) -> tuple[jax.Array, tuple[dict, Any]]:
        """``(loss, (metrics, aux))`` of the critics on a minibatch against the (constant) ``target``
        of `critic_target`; ``aux`` goes to `after_critic_step`. Default: squared error of every critic."""
        q = state.q_values(batch.obs, batch.action, critic_params)
        return objectives.q_ensemble_loss(q, target), ({"q_mean": jnp.mean(q)}, None)

    def after_critic_step(self, state: OffPolicyState, info: Any, aux: Any, hparams) -> OffPolicyState:
        """Bookkeeping after each critic step (e.g. replay priorities); ``info`` from `sample_replay`,
        ``aux`` from `critic_loss`."""
        return state

    # ---- checks -------------------------------------------------------------------------------
    def validate(self, spec: envs.EnvSpec, config) -> None:
        common.check_action_space(self.name, spec, self.discrete)
        if config.normalize_obs or config.normalize_rewards:
            raise ConfigError(f"{self.name} does not support normalize_obs / normalize_rewards: the replay buffer "
                              "would hold data normalised by statistics that have since moved. Turn them off.")
        _positive_int("buffer_size", self.buffer_size)
        _positive_int("batch_size", self.batch_size)
        _positive_int("gradient_steps", self.gradient_steps, allow=(-1,))
        _positive_int("policy_delay", self.policy_delay)
        _positive_int("num_critics", self.num_critics)
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size} is larger than buffer_size={self.buffer_size}; "
                              "raise buffer_size or lower batch_size.")
        if config.batch_size > self.buffer_size:
            raise ConfigError(f"one iteration collects num_envs * num_steps = {config.batch_size} transitions, more "
                              f"than buffer_size={self.buffer_size}; raise buffer_size or collect less per iteration.")
        if isinstance(self.learning_starts, bool) or not isinstance(self.learning_starts, (int, np.integer)) \
                or self.learning_starts < 0:
            raise ConfigError(f"learning_starts={self.learning_starts!r} must be a non-negative integer.")
        if self.learning_starts >= config.num_iterations * config.batch_size:
            raise ConfigError(f"learning_starts={self.learning_starts} is not below the run's "
                              f"{config.num_iterations * config.batch_size} env steps, so it would never learn; "
                              "lower learning_starts or raise total_timesteps.")

    # ---- the protocol of purejaxpg.train.Algorithm ---------------------------------------------
    def init(self, key: jax.Array, spec: envs.EnvSpec, hparams) -> OffPolicyState:
        actor = self.make_actor(spec)
        critic = self.make_critic(spec)
        obs = jnp.zeros((1,) + spec.obs_shape, jnp.float32)
        action = jnp.zeros((1,) + self.action_shape(spec), jnp.float32)
        actor_key, critic_key = jax.random.split(key)
        params = {"actor": actor.init(actor_key, obs),
                  "critic": jax.vmap(critic.init, in_axes=(0, None, None))(
                      jax.random.split(critic_key, self.num_critics), obs, action),
                  **self.extra_params(spec, hparams)}
        tx = self._tx()
        return OffPolicyState(
            params=params, target={part: params[part] for part in self.target_parts},
            opt_state={part: tx.init(p) for part, p in params.items()},
            buffer=self.init_replay(spec),
            env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32),
            explore=self.exploration_hparams(hparams), actor=actor, critic=critic, spec=spec)

    def init_actor(self, learner_state: OffPolicyState, config, key: jax.Array) -> Any:
        """No exploration state by default (Ornstein-Uhlenbeck noise keeps one: see TD3)."""
        return ()

    def greedy_action(self, state: OffPolicyState, obs: jax.Array) -> jax.Array:
        """``obs [N, ...] -> [N, D]`` in the env's bounds: the actor's deterministic action (mu(s), or the
        mode of a stochastic actor, tanh(mean) for SAC), for evaluation."""
        out = state.actor.apply(state.params["actor"], obs)
        return self._to_env(state, out.mode() if hasattr(out, "mode") else out)

    def act(self, state: OffPolicyState, obs: jax.Array, key: jax.Array, actor_state: Any = ()):
        """``obs [N, ...] -> (action [N, D] in the env's bounds, {}, actor_state)``; uniform random
        actions while fewer than ``learning_starts`` transitions have been collected."""
        explore_key, uniform_key = jax.random.split(key)
        action, actor_state = self.explore(state, obs, explore_key, actor_state)
        uniform = jax.random.uniform(uniform_key, action.shape, action.dtype, -1.0, 1.0)
        action = jnp.where(state.env_steps < self.learning_starts, uniform, action)
        return self._to_env(state, action), {}, actor_state

    def update(self, state: OffPolicyState, batch: rollout.Transition, key: jax.Array, hparams, progress):
        num_new = batch.done.size  # env steps (a multi-agent env's reward has an agent axis)
        state = state.replace(buffer=self.add_to_replay(state, batch), env_steps=state.env_steps + num_new)
        num_steps = num_new if self.gradient_steps == -1 else self.gradient_steps
        delay = self.policy_delay

        def learn(state):
            if num_steps % delay == 0:  # groups of `delay` critic steps, the actor's after the first: no cond
                state, (critic_metrics, actor_metrics) = jax.lax.scan(
                    lambda s, k: self._group(s, k, hparams), state, jax.random.split(key, (num_steps // delay, delay)))
                return state, jax.tree.map(jnp.mean, {**critic_metrics, **actor_metrics})
            state, (critic_metrics, actor_metrics, actor_steps) = jax.lax.scan(
                lambda s, k: self._gradient_step(s, k, hparams), state, jax.random.split(key, num_steps))
            # actor metrics average over the steps that took one
            count = jnp.maximum(jnp.sum(actor_steps), 1.0)
            return state, {**jax.tree.map(jnp.mean, critic_metrics),
                           **jax.tree.map(lambda m: jnp.sum(m) / count, actor_metrics)}

        def wait(state):  # warm-up: no gradient step, metrics 0
            shapes = jax.eval_shape(learn, state)[1]
            return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        # the first gradient step once learning_starts transitions are in (and at least one)
        ready = state.env_steps >= max(self.learning_starts, self.min_transitions(batch.num_envs), 1)
        state, metrics = jax.lax.cond(ready, learn, wait, state)
        return state, {**metrics, "buffer_size": self.replay_size(state.buffer)}

    # ---- gradient steps ------------------------------------------------------------------------
    def _critic_step(self, state: OffPolicyState, key: jax.Array, hparams):
        """Sample a minibatch and take one critic step: ``(state, minibatch, actor key, metrics)``."""
        sample_key, target_key, actor_key = jax.random.split(key, 3)
        batch, info = self.sample_replay(state, sample_key, hparams)
        y = jax.lax.stop_gradient(self.critic_target(state, batch, target_key, hparams))
        (loss, (metrics, aux)), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            state.params["critic"], state, batch, y, info, hparams)
        critic_params, critic_opt, _ = common.apply_gradients(self._tx(), grads, state.opt_state["critic"],
                                                              state.params["critic"], hparams.critic_lr)
        state = state.replace(params={**state.params, "critic": critic_params},
                              opt_state={**state.opt_state, "critic": critic_opt}, updates=state.updates + 1)
        state = self.after_critic_step(state, info, aux, hparams)
        return state, batch, actor_key, {"critic_loss": loss, **metrics}

    def _actor_step(self, state: OffPolicyState, batch: replay.Experience, key: jax.Array, hparams):
        """One actor step on the minibatch's observations, the algorithm's extra step, the Polyak
        update of the target networks: ``(state, metrics)``."""
        (loss, aux), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.params["actor"], state, self.actor_inputs(batch), key, hparams)
        actor_params, actor_opt, _ = common.apply_gradients(self._tx(), grads, state.opt_state["actor"],
                                                            state.params["actor"], hparams.actor_lr)
        state = state.replace(params={**state.params, "actor": actor_params},
                              opt_state={**state.opt_state, "actor": actor_opt})
        state, extra = self.after_actor_step(state, aux, hparams)
        target = {part: targets.polyak_update(state.target[part], state.params[part], hparams.tau)
                  for part in self.target_parts}
        return state.replace(target=target), {"actor_loss": loss, **extra}

    def _group(self, state: OffPolicyState, keys: jax.Array, hparams):
        """``policy_delay`` critic steps with the actor's step after the first (``keys [policy_delay]``):
        ``(state, (critic metrics averaged over the group, actor metrics))``."""
        state, batch, actor_key, first = self._critic_step(state, keys[0], hparams)
        state, actor_metrics = self._actor_step(state, batch, actor_key, hparams)
        if self.policy_delay == 1:
            return state, (first, actor_metrics)
        state, rest = jax.lax.scan(lambda s, k: (lambda out: (out[0], out[3]))(self._critic_step(s, k, hparams)),
                                   state, keys[1:])
        critic = jax.tree.map(lambda a, b: (a + jnp.sum(b)) / self.policy_delay, first, rest)
        return state, (critic, actor_metrics)

    def _gradient_step(self, state: OffPolicyState, key: jax.Array, hparams):
        """One critic step and, when due by the update counter, one actor step (when the gradient
        steps of an iteration are not a multiple of ``policy_delay``):
        ``(state, (critic metrics, actor metrics, 1.0 if the actor stepped))``."""
        state, batch, actor_key, metrics = self._critic_step(state, key, hparams)

        def skip(state):
            shapes = jax.eval_shape(self._actor_step, state, batch, actor_key, hparams)[1]
            return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        due = (state.updates - 1) % self.policy_delay == 0
        state, actor_metrics = jax.lax.cond(due, lambda s: self._actor_step(s, batch, actor_key, hparams), skip, state)
        return state, (metrics, actor_metrics, due.astype(jnp.float32))

    # ---- helpers -------------------------------------------------------------------------------
    def _tx(self):
        return common.optimizer("adam", None, self.adam_eps)

    def _buffer(self):
        return replay.make(self.buffer_size, self.batch_size)

    @staticmethod
    def _bounds(state: OffPolicyState):
        return jnp.asarray(state.spec.action_low), jnp.asarray(state.spec.action_high)

    def _to_env(self, state: OffPolicyState, unit_action: jax.Array) -> jax.Array:
        low, high = self._bounds(state)
        return low + (jnp.clip(unit_action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def _from_env(self, state: OffPolicyState, env_action: jax.Array) -> jax.Array:
        low, high = self._bounds(state)
        return jnp.clip(2.0 * (env_action - low) / (high - low) - 1.0, -1.0, 1.0)
