"""ACER: actor-critic with experience replay (Wang et al. 2017, "Sample Efficient Actor-Critic
with Experience Replay"), discrete actions.

An on-policy actor-critic that also replays. Each iteration of the training loop collects
``[T, N]`` steps with the current policy; ``act`` keeps the behaviour policy's probabilities
mu(.|s_t) ``[N, A]`` in the batch's extras. ``update`` then takes

    one gradient step on the fresh batch (on-policy, rho = 1)
    adds it to the replay as (T / segment_length) * N segments of ``segment_length`` steps
    ``replay_ratio`` gradient steps, each on ``batch_size`` segments drawn uniformly from the replay

and after every gradient step moves the average policy: theta_avg <- alpha theta_avg + (1 - alpha) theta.
``replay_ratio`` is a static integer count (the paper draws it from Poisson(r); a fixed count keeps
the loop's length static and gives the same mean).

One gradient step on a segment batch ``[L, B]`` (every piece is a pure function of the math floor):

* Q^ret by Retrace with c_t = lambda min(1, rho_t) under the current networks
  (`purejaxpg.returns.retrace`): truncation-correct, the chain restarts at every episode end and
  a segment's last step bootstraps from V(next_obs);
* critic: 0.5 mean (Q(s_t, a_t) - Q^ret_t)^2, scaled by ``q_coef``;
* policy: g_t, the gradient in the logits of the truncated importance-sampled policy gradient with
  bias correction (`purejaxpg.objectives.truncated_is_bias_correction_loss`, clip c) plus
  ``ent_coef`` times the entropy's gradient; then the efficient trust region
  (`purejaxpg.objectives.trust_region_projection`) with k_t = d KL(pi_avg || pi_theta) / d logits
  = pi_theta - pi_avg, and z*_t is backpropagated from the logits into the policy network.

The policy and Q(s, .) are two MLPs rather than the paper's shared trunk with two heads: the
trust region then bounds every change of the policy (with a shared trunk the critic's gradient
moves the logits outside the constraint), at the cost of a second forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxpg import envs, networks, objectives, replay, returns, rollout, targets
from purejaxpg.algorithms import common
from purejaxpg.config import hp, hparams
from purejaxpg.distributions import Categorical
from purejaxpg.errors import ConfigError


@hparams
class ACERHParams:
    """Dynamic hyperparameters of ACER (arrays; vmap over them for sweeps).

    Defaults are the paper's where it gives them (c = 10, delta = 1, alpha = 0.99, Retrace's
    lambda = 1) and OpenAI Baselines' ACER otherwise (q_coef 0.5, ent_coef 0.01, max_grad_norm 10).
    """

    lr: float = hp(7e-4, low=0.0, low_open=True, doc="Learning rate (initial, when annealed).")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor.")
    retrace_lambda: float = hp(1.0, low=0.0, high=1.0, doc="Retrace's trace coefficient: c_t = lambda min(1, rho_t).")
    is_clip: float = hp(10.0, low=0.0, low_open=True,
                        doc="Truncation c of the importance weights in the policy gradient (min(c, rho)).")
    trust_region_delta: float = hp(1.0, low=0.0, doc="delta of the linearised KL constraint k . z <= delta.")
    avg_decay: float = hp(0.99, low=0.0, high=1.0,
                          doc="alpha of the average policy: theta_avg <- alpha theta_avg + (1 - alpha) theta.")
    ent_coef: float = hp(0.01, low=0.0, doc="Entropy bonus coefficient (added to g before the trust region).")
    q_coef: float = hp(0.5, low=0.0, doc="Weight of the critic's loss.")
    max_grad_norm: float = hp(10.0, low=0.0, low_open=True, doc="Global-norm gradient clip.")


@struct.dataclass
class Segment:
    """``segment_length`` consecutive steps of one environment, as the replay stores them (leaves ``[L, ...]``).

    Attributes:
      obs, next_obs: ``[L, *obs_shape]`` (next_obs the true next observation, final on truncation);
      action: ``[L]`` int32; reward: ``[L]``; terminated, truncated: ``[L]`` bool;
      behaviour_probs: ``[L, A]`` mu(.|s_t), the policy that acted.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    behaviour_probs: jax.Array


def split_segments(batch: Segment, segment_length: int) -> Segment:
    """``[T, N, ...] -> [T / L, N, L, ...]``: each env's rollout cut into T / L segments of L steps."""

    def split(x):
        num_steps, num_envs = x.shape[:2]
        x = x.reshape((num_steps // segment_length, segment_length, num_envs) + x.shape[2:])
        return jnp.swapaxes(x, 1, 2)

    return jax.tree.map(split, batch)


@struct.dataclass
class ACERState:
    """ACER's learner state.

    Attributes:
      params: ``{"policy": ..., "critic": ...}``; avg_policy: the average policy's parameters.
      opt_state: one optimiser state over ``params``.
      buffer: the replay of segments (`purejaxpg.replay` on `Segment` items).
      policy, critic: the flax modules (static).
    """

    params: dict
    avg_policy: Any
    opt_state: Any
    buffer: Any
    policy: nn.Module = struct.field(pytree_node=False)
    critic: nn.Module = struct.field(pytree_node=False)

    def dist(self, obs: jax.Array, params: dict | None = None) -> Categorical:
        """The policy's distribution at ``obs`` under ``params`` (default: the current ones)."""
        return self.policy.apply((self.params if params is None else params)["policy"], obs)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ConfigError(f"{name}={value!r} must be {kind} integer.")


@dataclasses.dataclass(frozen=True)
class ACER(common.PolicyAlgorithm):
    """ACER for discrete actions; the fields are its static settings.

    Attributes:
      replay_ratio: off-policy gradient steps per on-policy step (an integer; 0 is on-policy
        ACER, i.e. A2C with Retrace targets, the truncated policy gradient and the trust region).
      segment_length: L, steps per replayed segment; num_steps must be a multiple of it.
      buffer_size: env steps the replay holds (buffer_size // segment_length segments).
      batch_size: segments per off-policy step (0: as many as one batch holds, N T / L).
      trust_region: apply the efficient trust-region step (False: plain g, for ablations).
      optimizer: "adam" or "rmsprop" (`purejaxpg.algorithms.common.optimizer`), after the global-norm clip.
      anneal_lr: linearly anneal the learning rate to 0 over the run.
      hidden, activation: MLP shape of the policy and of the Q-network.
    """

    name: ClassVar[str] = "acer"
    HParams: ClassVar[type] = ACERHParams
    discrete: ClassVar[bool | None] = True

    replay_ratio: int = 4
    segment_length: int = 16
    buffer_size: int = 50_000
    batch_size: int = 0
    trust_region: bool = True
    optimizer: str = "adam"
    anneal_lr: bool = False

    def __post_init__(self):
        if self.optimizer not in common.OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not an option of acer; choose one of "
                              f"{', '.join(repr(o) for o in common.OPTIMIZERS)}.")

    # ---- checks ----

    def validate(self, spec: envs.EnvSpec, config) -> None:
        self.check_policy(spec, config)
        if config.normalize_obs or config.normalize_rewards:
            raise ConfigError("acer does not support normalize_obs / normalize_rewards: the replay would hold data "
                              "normalised by statistics that have since moved. Turn them off.")
        _positive_int("replay_ratio", self.replay_ratio, minimum=0)
        _positive_int("segment_length", self.segment_length)
        _positive_int("buffer_size", self.buffer_size)
        _positive_int("batch_size", self.batch_size, minimum=0)
        if config.num_steps % self.segment_length:
            raise ConfigError(f"num_steps={config.num_steps} is not a multiple of segment_length="
                              f"{self.segment_length}; the rollout is cut into segments of that length. Set "
                              f"num_steps to a multiple of it or segment_length to a divisor of {config.num_steps}.")
        capacity = self.capacity
        per_batch = config.batch_size // self.segment_length
        if per_batch > capacity:
            raise ConfigError(f"one iteration adds {per_batch} segments of {self.segment_length} steps, more than "
                              f"buffer_size={self.buffer_size} holds ({capacity} segments); raise buffer_size to at "
                              f"least num_envs * num_steps = {config.batch_size}.")
        if self.batch_size > capacity:
            raise ConfigError(f"batch_size={self.batch_size} segments is more than buffer_size={self.buffer_size} "
                              f"holds ({capacity} segments of {self.segment_length}); lower batch_size or raise "
                              "buffer_size.")

    @property
    def capacity(self) -> int:
        """Segments the replay holds."""
        return self.buffer_size // self.segment_length

    # ---- state and acting ----

    def _tx(self, max_grad_norm):
        return common.optimizer(self.optimizer, max_grad_norm, self.adam_eps)

    def _buffer(self, batch_size: int = 1):
        return replay.make(self.capacity, batch_size)

    def init(self, key, spec: envs.EnvSpec, hparams: ACERHParams) -> ACERState:
        policy = networks.make_policy(spec, self.hidden, self.activation)
        critic = networks.ActionValueCritic(len(spec.obs_shape), spec.num_actions, tuple(self.hidden), self.activation)
        obs = jnp.zeros((1,) + spec.obs_shape, jnp.float32)
        policy_key, critic_key = jax.random.split(key)
        params = {"policy": policy.init(policy_key, obs), "critic": critic.init(critic_key, obs)}
        length = self.segment_length
        example = Segment(obs=jnp.zeros((length,) + spec.obs_shape, jnp.float32),
                          action=jnp.zeros((length,), jnp.int32), reward=jnp.zeros((length,), jnp.float32),
                          terminated=jnp.zeros((length,), bool), truncated=jnp.zeros((length,), bool),
                          next_obs=jnp.zeros((length,) + spec.obs_shape, jnp.float32),
                          behaviour_probs=jnp.zeros((length, spec.num_actions), jnp.float32))
        return ACERState(params=params, avg_policy=params["policy"], opt_state=self._tx(1.0).init(params),
                         buffer=replay.init(self._buffer(), example), policy=policy, critic=critic)

    def act(self, state: ACERState, obs: jax.Array, key: jax.Array, actor_state: Any = ()):
        """``obs [N, ...] -> (action [N], {"behaviour_probs": mu(.|obs) [N, A]}, actor_state)``."""
        dist = state.dist(obs)
        return dist.sample(key), {"behaviour_probs": dist.probs}, actor_state

    # ---- one gradient step ----

    def loss(self, params: dict, state: ACERState, batch: Segment, hparams: ACERHParams):
        """ACER's loss on a time-major segment batch ``[L, B]``: ``(loss, metrics)``.

        The policy part is the surrogate -mean_t z*_t . logits_t, z*_t stop-gradiented, whose
        gradient is -mean_t (d logits_t / d theta)^T z*_t (the paper's Algorithm 2, in the logits).

        Metrics: ``policy_loss`` (the truncated-IS loss minus ent_coef times the mean entropy, before
        the trust region), ``value_loss``, ``entropy``, ``mean_rho`` (pi / mu of the actions taken),
        ``trust_region_active`` (the fraction of states where k . g > delta), ``kl_to_average``
        (mean KL(pi_avg || pi)).
        """
        num_steps = batch.reward.shape[0]
        both = jnp.concatenate([batch.obs, batch.next_obs])  # one forward pass over s_t and s_{t+1}
        logits_all = state.dist(both, params).logits
        q_all = state.critic.apply(params["critic"], both)
        logits, q_values = logits_all[:num_steps], q_all[:num_steps]
        fixed_logits = jax.lax.stop_gradient(logits_all)
        fixed_q = jax.lax.stop_gradient(q_all)
        pi_all = jax.nn.softmax(fixed_logits)
        values_all = jnp.sum(pi_all * fixed_q, axis=-1)
        pi, next_values = pi_all[:num_steps], values_all[num_steps:]
        taken = batch.action[..., None] == jnp.arange(logits.shape[-1])
        q_taken = jnp.sum(jnp.where(taken, q_values, 0.0), axis=-1)
        pi_taken = jnp.sum(jnp.where(taken, pi, 0.0), axis=-1)
        mu_taken = jnp.sum(jnp.where(taken, batch.behaviour_probs, 0.0), axis=-1)
        rho = pi_taken / jnp.maximum(mu_taken, jnp.finfo(pi.dtype).tiny)
        q_ret = returns.retrace(batch.reward, jax.lax.stop_gradient(q_taken), next_values, rho, batch.terminated,
                                batch.truncated, hparams.gamma, hparams.retrace_lambda)
        critic_loss = objectives.value_loss(q_taken, q_ret)

        # g_t: the ascent direction per state in the logits (the loss is a mean, hence the count)
        count = batch.reward.size
        fixed = fixed_logits[:num_steps]

        def objective(lg):
            pg = -objectives.truncated_is_bias_correction_loss(lg, batch.action, batch.behaviour_probs, q_ret,
                                                                fixed_q[:num_steps], hparams.is_clip)
            return count * (pg + hparams.ent_coef * jnp.mean(Categorical(lg).entropy()))

        g = jax.grad(objective)(fixed)
        avg_logits = state.policy.apply(state.avg_policy, batch.obs).logits
        kl_gradient = pi - jax.nn.softmax(avg_logits)  # d KL(pi_avg || softmax(logits)) / d logits
        if self.trust_region:
            z = objectives.trust_region_projection(g, kl_gradient, hparams.trust_region_delta)
        else:
            z = g
        policy_loss = -jnp.mean(jnp.sum(jax.lax.stop_gradient(z) * logits, axis=-1))
        loss = policy_loss + hparams.q_coef * critic_loss
        metrics = {
            "policy_loss": objective(fixed) / -count,
            "value_loss": critic_loss,
            "entropy": jnp.mean(Categorical(fixed).entropy()),
            "mean_rho": jnp.mean(rho),
            "trust_region_active": jnp.mean((jnp.sum(kl_gradient * g, axis=-1) > hparams.trust_region_delta)
                                            .astype(jnp.float32)),
            "kl_to_average": jnp.mean(Categorical(avg_logits).kl(Categorical(fixed))),
        }
        return loss, metrics

    def gradient_step(self, state: ACERState, batch: Segment, hparams: ACERHParams, lr):
        """One optimiser step on ``batch`` ``[L, B]`` and the average policy's Polyak step: ``(state, metrics)``."""
        grads, metrics = jax.grad(self.loss, has_aux=True)(state.params, state, batch, hparams)
        params, opt_state, grad_norm = common.apply_gradients(self._tx(hparams.max_grad_norm), grads, state.opt_state,
                                                              state.params, lr)
        avg_policy = targets.polyak_update(state.avg_policy, params["policy"], 1.0 - hparams.avg_decay)
        return state.replace(params=params, opt_state=opt_state, avg_policy=avg_policy), \
            {**metrics, "grad_norm": grad_norm}

    # ---- the update ----

    def update(self, state: ACERState, batch: rollout.Transition, key, hparams: ACERHParams, progress):
        lr = common.annealed_lr(hparams.lr, progress, self.anneal_lr)
        fresh = Segment(obs=batch.obs, action=batch.action.astype(jnp.int32), reward=batch.reward,
                        terminated=batch.terminated, truncated=batch.truncated, next_obs=batch.next_obs,
                        behaviour_probs=batch.extras["behaviour_probs"])
        state, metrics = self.gradient_step(state, fresh, hparams, lr)
        state = state.replace(buffer=replay.add(self._buffer(), state.buffer, split_segments(fresh, self.segment_length)))
        metrics = {**metrics, "lr": lr, "buffer_segments": replay.size(state.buffer)}
        if self.replay_ratio == 0:
            return state, metrics
        num_segments = self.batch_size or batch.reward.size // self.segment_length
        buffer = self._buffer(num_segments)

        def replay_step(state, sample_key):
            segments = replay.sample(buffer, state.buffer, sample_key)  # [B, L, ...]
            return self.gradient_step(state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), segments), hparams, lr)

        state, replayed = jax.lax.scan(replay_step, state, jax.random.split(key, self.replay_ratio))
        replayed = jax.tree.map(jnp.mean, replayed)
        return state, {**metrics, **{f"replay_{name}": replayed[name] for name in
                                     ("value_loss", "mean_rho", "trust_region_active", "kl_to_average")}}
