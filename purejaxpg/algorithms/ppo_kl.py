"""PPO with a KL penalty instead of a clip (Schulman et al. 2017, sec. 4, "adaptive KL penalty").

Per iteration: GAE(gamma, lambda) advantages under the current critic, the old policy pi_old
recomputed from the pre-update parameters on the batch (held constant), then ``num_epochs``
passes over ``num_minibatches`` shuffled minibatches minimising

    L = -mean(r A) + beta * mean(KL(pi_old(.|s) || pi_theta(.|s))) + vf_coef * L_V - ent_coef * mean(H[pi]),

r = pi_theta(a|s) / pi_old(a|s), KL the analytic divergence between the two distributions
(``Distribution.kl``), L_V the squared error to the TD(lambda) targets. After the epochs the mean KL
d = mean_s KL(pi_old || pi_new) over the whole batch is measured and (``objective="adaptive"``)

    beta <- beta / 2 if d < kl_target / 1.5,   beta <- 2 beta if d > 1.5 kl_target,

clipped to [beta_min, beta_max] (:func:`purejaxpg.objectives.adaptive_kl_beta`). With
``objective="fixed"`` beta stays at ``beta_init``: the KL-regularised ("exact") objective
max E[r A] - beta KL of the lecture notes. beta lives in the learner state, so it is carried
through the compiled loop, checkpoints and vmapped sweeps like the parameters.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg import objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams

OBJECTIVES = ("adaptive", "fixed")


@hparams
class PPOKLHParams(common.ActorCriticHParams):
    """Dynamic hyperparameters of PPO with a KL penalty (arrays; vmap over them for sweeps)."""

    beta_init: float = hp(1.0, low=0.0, doc="Initial KL-penalty coefficient beta (the fixed one when "
                                            "objective='fixed').")
    kl_target: float = hp(0.01, low=0.0, low_open=True, doc="Target KL d_targ of the adaptive rule "
                                                           "(Schulman et al. try 0.003, 0.01, 0.03).")
    beta_min: float = hp(1e-2, low=0.0, low_open=True,
                         doc="Lower bound of the adapted beta. Near 0 the objective is the unclipped surrogate and a "
                             "few large steps can wreck the policy (CartPole: 1e-4 left a seed in 16 near 150, "
                             "1e-2 none).")
    beta_max: float = hp(1e4, low=0.0, low_open=True, doc="Upper bound of the adapted beta.")


@struct.dataclass
class KLPenaltyState:
    """Learner state of :class:`PPOKL`: actor-critic parameters and the current penalty beta (scalar)."""

    actor_critic: common.ActorCriticState
    beta: jax.Array


@dataclasses.dataclass(frozen=True)
class PPOKL(common.PolicyAlgorithm):
    """PPO with an (adaptive) KL penalty; the fields are its static settings.

    Attributes:
      objective: ``"adaptive"`` (beta adapted to hit ``kl_target``) or ``"fixed"`` (beta = beta_init).
      num_epochs, num_minibatches, anneal_lr, normalize_advantages, adam_eps: as PPO's
        (`purejaxpg.algorithms.ppo.PPO`); the policy and critic as there.

    Metrics: ``beta`` (the coefficient used in this iteration's loss), ``kl`` (the measured mean
    KL(pi_old || pi_new) of the whole update, which sets the next beta), ``minibatch_kl``,
    ``policy_loss`` (surrogate + beta KL), ``value_loss``, ``entropy``, ``grad_norm``, ``lr``.
    """

    name: ClassVar[str] = "ppo_kl"
    HParams: ClassVar[type] = PPOKLHParams

    objective: str = "adaptive"
    num_epochs: int = 4
    num_minibatches: int = 4
    anneal_lr: bool = True
    normalize_advantages: bool = True

    def validate(self, spec, config) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective={self.objective!r} is not one of {OBJECTIVES}; use 'adaptive' "
                              "(adaptive KL penalty) or 'fixed' (constant beta = beta_init).")
        self.check_policy(spec, config)
        common.check_minibatches(config, self.num_minibatches)

    def init(self, key, spec, hparams: PPOKLHParams) -> KLPenaltyState:
        actor_critic = common.init_actor_critic(key, spec, self,
                                                common.optimizer("adam", 1.0, self.adam_eps))
        return KLPenaltyState(actor_critic, jnp.asarray(hparams.beta_init, jnp.float32))

    def policy_state(self, state: KLPenaltyState) -> common.ActorCriticState:
        return state.actor_critic

    def loss(self, params, state: common.ActorCriticState, minibatch: dict, beta, hparams: PPOKLHParams):
        """KL-penalised loss on a flat minibatch ``{obs, action, log_prob, old_dist, advantage, target}``.

        ``old_dist`` holds pi_old's distribution parameters ``[B, ...]`` (constants); ``beta`` is a scalar.
        """
        dist = state.dist(minibatch["obs"], params)
        log_prob = dist.log_prob(minibatch["action"])
        advantages = minibatch["advantage"]
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        kl = minibatch["old_dist"].kl(dist)  # KL(pi_old || pi_theta), analytic, per state
        policy_loss = objectives.kl_penalty_loss(log_prob, minibatch["log_prob"], advantages, kl, beta)
        value_loss = objectives.value_loss(state.value(minibatch["obs"], params), minibatch["target"])
        entropy = jnp.mean(dist.entropy())
        loss = policy_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
        metrics = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "minibatch_kl": jnp.mean(kl),
        }
        return loss, metrics

    def update(self, state: KLPenaltyState, batch, key, hparams: PPOKLHParams, progress):
        ac = state.actor_critic
        advantages, targets, _ = common.gae_targets(ac, batch, hparams.gamma, hparams.gae_lambda)
        old_dist = jax.lax.stop_gradient(ac.dist(batch.obs))
        data = common.flatten_batch({
            "obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"],
            "old_dist": old_dist, "advantage": advantages, "target": targets,
        })
        lr = common.annealed_lr(hparams.lr, progress, self.anneal_lr)
        params, opt_state, metrics = common.minibatch_sgd(
            key, data, ac.params, ac.opt_state, lambda p, mb: self.loss(p, ac, mb, state.beta, hparams),
            common.optimizer("adam", hparams.max_grad_norm, self.adam_eps), lr, self.num_epochs, self.num_minibatches)
        # the measured KL of the whole update, on the whole batch
        kl = jnp.mean(old_dist.kl(ac.dist(batch.obs, params)))
        if self.objective == "adaptive":
            beta = jnp.clip(objectives.adaptive_kl_beta(state.beta, kl, hparams.kl_target),
                            hparams.beta_min, hparams.beta_max)
        else:
            beta = state.beta
        new_state = KLPenaltyState(ac.replace(params=params, opt_state=opt_state), beta)
        return new_state, {**metrics, "lr": lr, "beta": state.beta, "kl": kl}
