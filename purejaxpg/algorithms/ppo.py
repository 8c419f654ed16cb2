"""Proximal policy optimisation with the clipped surrogate (Schulman et al. 2017, "PPO-Clip").

Per iteration: GAE(gamma, lambda) advantages under the current critic, then ``num_epochs`` passes
over ``num_minibatches`` shuffled minibatches minimising

    L = -mean(min(r A, clip(r, 1-eps, 1+eps) A)) + vf_coef * L_V - ent_coef * mean(H[pi]),

r = pi_theta(a|s) / pi_old(a|s), L_V the (optionally clipped) squared error to the TD(lambda)
targets, with separate actor and critic MLPs, orthogonal init, one Adam over both after a
global-norm gradient clip, optional linear learning-rate annealing and per-minibatch advantage
normalisation (the implementation details of Huang et al. 2022, "The 37 implementation details").
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from purejaxpg import objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import hp, hparams


@hparams
class PPOHParams(common.ActorCriticHParams):
    """Dynamic hyperparameters of PPO (arrays; vmap over them for sweeps): the actor-critic ones
    with an entropy bonus of 0.01 by default, plus the clip."""

    ent_coef: float = hp(0.01, low=0.0, doc="Entropy bonus coefficient.")
    clip_eps: float = hp(0.2, low=0.0, low_open=True, doc="Ratio clip epsilon (also the value clip).")


@dataclasses.dataclass(frozen=True)
class PPO(common.PolicyAlgorithm):
    """PPO-Clip; the fields are its static settings.

    Attributes:
      num_epochs: passes over the batch per iteration.
      num_minibatches: minibatches per pass; must divide num_envs * num_steps.
      hidden, activation, log_std_init, use_sde, sde_sample_freq: the policy (`common.PolicyAlgorithm`);
        the critic has the same MLP shape.
      anneal_lr: linearly anneal the learning rate to 0 over the run.
      normalize_advantages: standardise advantages within each minibatch.
      clip_value_loss: PPO's clipped value loss around the rollout-time values.
    """

    name: ClassVar[str] = "ppo"
    HParams: ClassVar[type] = PPOHParams

    num_epochs: int = 4
    num_minibatches: int = 4
    anneal_lr: bool = True
    normalize_advantages: bool = True
    clip_value_loss: bool = True

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)
        common.check_minibatches(config, self.num_minibatches)

    def init(self, key, spec, hparams: PPOHParams) -> common.ActorCriticState:
        return common.init_actor_critic(key, spec, self,
                                        common.optimizer("adam", 1.0, self.adam_eps))

    def loss(self, params, state: common.ActorCriticState, minibatch: dict, hparams: PPOHParams):
        """PPO-Clip loss on a flat minibatch ``{obs, action, log_prob, advantage, target, value}``."""
        dist = state.dist(minibatch["obs"], params)
        log_prob = dist.log_prob(minibatch["action"])
        advantages = minibatch["advantage"]
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        policy_loss = objectives.clipped_surrogate_loss(log_prob, minibatch["log_prob"], advantages,
                                                        hparams.clip_eps)
        values = state.value(minibatch["obs"], params)
        old_values = minibatch["value"] if self.clip_value_loss else None
        value_loss = objectives.value_loss(values, minibatch["target"], old_values,
                                           hparams.clip_eps if self.clip_value_loss else None)
        entropy = jnp.mean(dist.entropy())
        loss = policy_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
        ratio = objectives.importance_ratio(log_prob, minibatch["log_prob"])
        metrics = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": jnp.mean(objectives.kl_k3(log_prob, minibatch["log_prob"])),
            "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > hparams.clip_eps),
        }
        return loss, metrics

    def update(self, state: common.ActorCriticState, batch, key, hparams: PPOHParams, progress):
        advantages, targets, values = common.gae_targets(state, batch, hparams.gamma, hparams.gae_lambda)
        data = common.flatten_batch({
            "obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"],
            "advantage": advantages, "target": targets, "value": values,
        })
        lr = common.annealed_lr(hparams.lr, progress, self.anneal_lr)
        params, opt_state, metrics = common.minibatch_sgd(
            key, data, state.params, state.opt_state, lambda p, mb: self.loss(p, state, mb, hparams),
            common.optimizer("adam", hparams.max_grad_norm, self.adam_eps), lr, self.num_epochs, self.num_minibatches)
        return state.replace(params=params, opt_state=opt_state), {**metrics, "lr": lr}
