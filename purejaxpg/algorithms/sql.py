"""Soft Q-learning (Haarnoja et al. 2017, "Reinforcement Learning with Deep Energy-Based Policies").

The policy is the Boltzmann distribution of a soft Q-function, pi(a|s) ~ exp(Q(s, a) / alpha),
sampled by an amortised sampling network a = f_phi(s, xi), xi ~ N(0, I):

* critic: Q_theta(s, a) regressed on y = r + gamma (1 - terminated) V'(s'), the soft value of the
  target critic by importance sampling with M actions drawn uniformly on [-1, 1]^D
  (`purejaxpg.svgd.soft_value`; the paper's eq. 10-11). One critic as in the paper
  (``num_critics=K`` takes the minimum over K critics at each sampled action before the soft maximum);
* sampler: K particles a_i = f_phi(s, xi_i) per state move along the SVGD direction Delta a_i
  (`purejaxpg.svgd.svgd_direction`, RBF kernel with the median-heuristic bandwidth) with score
  grad_a Q(s, a) / alpha, and phi follows sum_i Delta a_i . grad_phi f_phi(s, xi_i), the amortised
  SVGD of the paper's eq. 13-14, as the gradient of the surrogate -mean_i stop_grad(Delta a_i) . f_phi(s, xi_i);
* behaviour: a fresh sample of the sampler (no other exploration noise).

``squash_correction`` (the authors' implementation, not the paper) adds grad_a sum_d log(1 - a_d^2)
to the score: the particles live inside the sampler's tanh, and the extra term keeps them off the
boundary of [-1, 1]^D, where the tanh saturates and passes no gradient.

The temperature alpha is a hyperparameter; the paper fixes alpha = 1 and scales the rewards,
which is the same as alpha = 1 / reward scale up to the scale of Q.

Replay, warm-up, target networks and the gradient-step loop are `purejaxpg.algorithms.offpolicy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxpg import svgd, targets
from purejaxpg.algorithms import offpolicy
from purejaxpg.config import hp, hparams
from purejaxpg.errors import ConfigError
from purejaxpg.networks import MLP, _flatten_obs


class SamplingNetwork(nn.Module):
    """The amortised sampler a = tanh(MLP([s, xi])) in [-1, 1]^D of soft Q-learning (Haarnoja et al. 2017, sec. 3.2).

    ``__call__(obs [..., *obs_shape], noise [..., K, D]) -> [..., K, D]``: one action per noise
    vector, the observation broadcast over the K noise vectors of its state (``noise=None``: one
    zero noise vector, K = 1, as the skeleton's initialisation calls it). The output layer has
    gain 1 (not DDPG's 0.01), so that the first particles are already spread over the action box.
    """

    action_dim: int
    obs_ndim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, noise: jax.Array | None = None) -> jax.Array:
        x = _flatten_obs(obs, self.obs_ndim)[..., None, :]
        if noise is None:
            noise = jnp.zeros(x.shape[:-1] + (self.action_dim,), jnp.float32)
        x = jnp.broadcast_to(x, noise.shape[:-1] + x.shape[-1:])
        x = jnp.concatenate([x, noise.astype(jnp.float32)], axis=-1)
        return jnp.tanh(MLP(self.hidden, self.action_dim, self.activation, 1.0)(x))


@hparams
class SQLHParams(offpolicy.OffPolicyHParams):
    """Soft Q-learning's dynamic hyperparameters (Adam 3e-4 for both networks as in the paper)."""

    actor_lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of the sampling network.")
    critic_lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of the soft Q-function.")
    alpha: float = hp(1.0, low=0.0, low_open=True, doc="Temperature: pi(a|s) ~ exp(Q(s, a) / alpha) "
                      "(the paper's alpha 1 with reward scale c is alpha 1/c here).")


@dataclasses.dataclass(frozen=True)
class SQL(offpolicy.OffPolicyAlgorithm):
    """Soft Q-learning; the fields are its static settings (see `offpolicy.OffPolicyAlgorithm` for the shared ones).

    Attributes:
      num_particles: K, SVGD particles per state in the sampler's update (at least 2; 32 as the
        authors' released code).
      value_samples: M, uniform actions per next state in the soft value estimate (16 as the authors' code).
      squash_correction: add grad_a sum_d log(1 - a_d^2) to the SVGD score (see the module docstring).
    """

    name: ClassVar[str] = "sql"
    HParams: ClassVar[type] = SQLHParams
    target_parts: ClassVar[tuple[str, ...]] = ("critic",)

    num_critics: int = 1
    num_particles: int = 32
    value_samples: int = 16
    squash_correction: bool = True

    def validate(self, spec, config) -> None:
        super().validate(spec, config)
        for name in ("num_particles", "value_samples"):
            offpolicy._positive_int(name, getattr(self, name))
        if self.num_particles < 2:
            raise ConfigError(f"num_particles={self.num_particles} must be at least 2: SVGD's kernel bandwidth "
                              "(the median of pairwise distances) needs two particles; use 8 or more.")

    def make_actor(self, spec):
        return SamplingNetwork(spec.action_dim, len(spec.obs_shape), tuple(self.hidden), self.activation)

    def sample_actions(self, actor_params, state, obs: jax.Array, key: jax.Array, num: int) -> jax.Array:
        """``[B, num, D]`` actions f_phi(s, xi), xi ~ N(0, I), for each of the observations ``[B, ...]``."""
        noise = jax.random.normal(key, (obs.shape[0], num, state.spec.action_dim))
        return state.actor.apply(actor_params, obs, noise)

    def greedy_action(self, state, obs):
        """The sampler at noise xi = 0, f(s, 0), in the env's bounds (the policy itself is a sampler)."""
        noise = jnp.zeros((obs.shape[0], 1, state.spec.action_dim), jnp.float32)
        return self._to_env(state, state.actor.apply(state.params["actor"], obs, noise)[:, 0])

    def explore(self, state, obs, key, actor_state):
        return self.sample_actions(state.params["actor"], state, obs, key, 1)[:, 0], actor_state

    def soft_values(self, state, obs: jax.Array, key: jax.Array, alpha, critic_params=None) -> jax.Array:
        """``[B]`` V(s) of the (target) critic, M uniform actions per state (`purejaxpg.svgd.soft_value`)."""
        batch, dim = obs.shape[0], state.spec.action_dim
        actions = jax.random.uniform(key, (batch, self.value_samples, dim), minval=-1.0, maxval=1.0)
        obs_rep = jnp.repeat(obs, self.value_samples, axis=0)  # [B M, ...]
        q = state.q_values(obs_rep, actions.reshape(batch * self.value_samples, dim), critic_params)
        q = jnp.min(q, axis=0).reshape(batch, self.value_samples)
        return svgd.soft_value(q, svgd.uniform_log_density(dim), alpha)

    def critic_target(self, state, batch, key, hparams: SQLHParams):
        next_value = self.soft_values(state, batch.next_obs, key, hparams.alpha, state.target["critic"])
        return targets.td_target(batch.reward, batch.terminated, next_value, hparams.gamma)

    def actor_loss(self, actor_params, state, obs, key, hparams: SQLHParams):
        actions = self.sample_actions(actor_params, state, obs, key, self.num_particles)  # [B, K, D]
        particles = jax.lax.stop_gradient(actions)
        batch, num, dim = particles.shape

        def log_density(flat):  # sum over particles of log p(a) = Q(s, a) / alpha (+ barrier)
            q = jnp.min(state.q_values(jnp.repeat(obs, num, axis=0), flat), axis=0)
            barrier = jnp.sum(jnp.log(1.0 - jnp.square(flat) + 1e-6), axis=-1) if self.squash_correction else 0.0
            return jnp.sum(q / hparams.alpha + barrier)

        score = jax.grad(log_density)(particles.reshape(batch * num, dim)).reshape(batch, num, dim)
        direction = jax.vmap(svgd.svgd_direction)(particles, score)
        surrogate = jnp.mean(jnp.sum(jax.lax.stop_gradient(direction) * actions, axis=-1))
        return -surrogate, {"svgd_norm": jnp.mean(jnp.linalg.norm(direction, axis=-1)),
                            "action_std": jnp.mean(jnp.std(particles, axis=1))}

    def after_actor_step(self, state, aux, hparams):
        return state, aux
