"""Soft actor-critic with automatic temperature (Haarnoja et al. 2018a, 2018b, "Soft Actor-Critic Algorithms and Applications").

A tanh-squashed Gaussian policy (`purejaxpg.distributions.TanhGaussian`, log-densities with the
change-of-variables correction) maximises reward plus alpha times entropy:

* critics: K = 2 Q-functions on the soft Bellman target with a' ~ pi(.|s')
  (`purejaxpg.targets.soft_bellman_target`), target critics by Polyak averaging (no target actor);
* actor: mean[alpha log pi(a|s) - min_k Q_k(s, a)], a reparameterised (`purejaxpg.objectives.sac_actor_loss`);
* temperature: log alpha by gradient descent on `purejaxpg.objectives.temperature_loss` towards
  the target entropy ``target_entropy_per_dim * |A|`` (default -|A|), or fixed (``learn_alpha=False``).

Replay, warm-up and the gradient-step loop are `purejaxpg.algorithms.offpolicy`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from purejaxpg import objectives, targets
from purejaxpg.algorithms import common, offpolicy
from purejaxpg.config import hp, hparams
from purejaxpg.networks import TanhGaussianActor


@hparams
class SACHParams(offpolicy.OffPolicyHParams):
    """SAC's dynamic hyperparameters (Haarnoja et al. 2018b's defaults: Adam 3e-4, tau 0.005)."""

    actor_lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of the actor.")
    critic_lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of the critics.")
    alpha_lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of log alpha.")
    init_alpha: float = hp(1.0, low=0.0, low_open=True, doc="Initial temperature alpha (the fixed one with learn_alpha off).")
    target_entropy_per_dim: float = hp(-1.0, high=0.69, doc="Target entropy per action dimension (target = this * |A|); "
                                       "at most log 2, the entropy of the uniform law on [-1, 1].")


@dataclasses.dataclass(frozen=True)
class SAC(offpolicy.OffPolicyAlgorithm):
    """SAC; the fields are its static settings (see `offpolicy.OffPolicyAlgorithm` for the shared ones).

    Attributes:
      learn_alpha: learn the temperature towards the target entropy (else alpha = init_alpha throughout).
    """

    name: ClassVar[str] = "sac"
    HParams: ClassVar[type] = SACHParams
    target_parts: ClassVar[tuple[str, ...]] = ("critic",)

    learn_alpha: bool = True

    def make_actor(self, spec):
        return TanhGaussianActor(spec.action_dim, len(spec.obs_shape), tuple(self.hidden), self.activation)

    def extra_params(self, spec, hparams: SACHParams) -> dict:
        return {"log_alpha": jnp.log(jnp.asarray(hparams.init_alpha, jnp.float32))}

    @staticmethod
    def alpha(state) -> jax.Array:
        """The current temperature exp(log alpha)."""
        return jnp.exp(state.params["log_alpha"])

    def explore(self, state, obs, key, actor_state):
        action, _ = state.actor.apply(state.params["actor"], obs).sample_and_log_prob(key)
        return action, actor_state

    def critic_target(self, state, batch, key, hparams: SACHParams):
        next_action, next_log_prob = state.actor.apply(state.params["actor"], batch.next_obs).sample_and_log_prob(key)
        next_q = state.q_values(batch.next_obs, next_action, state.target["critic"])
        return targets.soft_bellman_target(batch.reward, batch.terminated, next_q, next_log_prob, self.alpha(state),
                                           hparams.gamma)

    def actor_loss(self, actor_params, state, obs, key, hparams):
        action, log_prob = state.actor.apply(actor_params, obs).sample_and_log_prob(key)
        q = jnp.min(state.q_values(obs, action), axis=0)
        return objectives.sac_actor_loss(q, log_prob, self.alpha(state)), {"log_prob": log_prob}

    def after_actor_step(self, state, aux, hparams: SACHParams):
        metrics = {"entropy": -jnp.mean(aux["log_prob"])}
        if self.learn_alpha:
            target_entropy = hparams.target_entropy_per_dim * state.spec.action_dim
            grad = jax.grad(objectives.temperature_loss)(state.params["log_alpha"], aux["log_prob"], target_entropy)
            log_alpha, opt, _ = common.apply_gradients(self._tx(), grad, state.opt_state["log_alpha"],
                                                       state.params["log_alpha"], hparams.alpha_lr)
            state = state.replace(params={**state.params, "log_alpha": log_alpha},
                                  opt_state={**state.opt_state, "log_alpha": opt})
        return state, {**metrics, "alpha": self.alpha(state)}
