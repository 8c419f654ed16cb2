"""On-policy mirror-descent policy optimisation (MDPO; Tomar et al. 2020, "Mirror Descent Policy
Optimization", sec. 4.1).

Iteration k approximately solves the mirror-descent step

    pi_{k+1} = argmax_theta  E_{s, a ~ pi_k}[ r A^{pi_k}(s, a) ] - (1 / t_k) E_s[ KL(pi_theta(.|s) || pi_k(.|s)) ],

r = pi_theta(a|s) / pi_k(a|s), by ``num_sgd_steps`` (m) full-batch Adam steps from theta_k on

    L = -mean(r A) + mean(KL(pi_theta || pi_k)) / t_k + vf_coef * L_V - ent_coef * mean(H[pi]),

(:func:`purejaxpg.objectives.mirror_descent_loss`), with pi_k's distribution recomputed from the
pre-update parameters on the batch and held constant (``stop_gradient``), the KL analytic
(``Distribution.kl``; note the direction, the reverse of PPO's penalty), A the GAE(gamma, lambda)
advantages and L_V the squared error of the critic to the TD(lambda) targets.

Step-size schedule (the paper's annealing): t_k = 1 - k/K for iteration k of K, i.e.
t_k = 1 - progress, so the weight 1/t_k of the KL term grows from 1 to K over the run. The
training loop's ``progress`` is k/K with k = 0..K-1, so t_k >= 1/K > 0 already; the schedule is
still floored at ``min_step_size`` (:func:`mirror_descent_step_size`) so that no progress value
(e.g. a resumed or extended run with progress >= 1) ever divides by ~0.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from purejaxpg import objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams


def mirror_descent_step_size(progress: jax.Array, min_step_size: jax.Array) -> jax.Array:
    """MDPO's annealed mirror-descent step size t_k = max(1 - k/K, min_step_size).

    Tomar et al. 2020, sec. 4.1 (t_k = 1 - k/K); the floor guards the division by t_k.

    Args:
      progress: scalar k/K, the fraction of iterations done before this one (may be traced).
      min_step_size: scalar floor > 0 (may be traced).
    Returns:
      scalar t_k; the KL term of the loss is weighted 1 / t_k.
    """
    return jnp.maximum(1.0 - jnp.asarray(progress, jnp.float32), min_step_size)


@hparams
class MDPOHParams(common.ActorCriticHParams):
    """Dynamic hyperparameters of on-policy MDPO (arrays; vmap over them for sweeps)."""

    lr: float = hp(3e-4, low=0.0, low_open=True, doc="Adam learning rate of the m full-batch steps.")
    min_step_size: float = hp(1e-2, low=0.0, low_open=True, high=1.0,
                              doc="Floor of the step size t_k = 1 - k/K (the KL weight 1/t_k is at most its inverse).")


@dataclasses.dataclass(frozen=True)
class MDPO(common.PolicyAlgorithm):
    """On-policy MDPO; the fields are its static settings.

    Attributes:
      num_sgd_steps: m, full-batch Adam steps per iteration (the paper uses 5-10).
      anneal_step_size: t_k = 1 - k/K (the paper's schedule); False keeps t_k = 1.
      anneal_lr: linearly anneal Adam's learning rate to 0 over the run (as PPO's, and the
        baselines PPO code the paper's on-policy MDPO is built on).
      hidden, activation, log_std_init, use_sde, sde_sample_freq: the policy (`common.PolicyAlgorithm`);
        the critic has the same MLP shape.
      normalize_advantages: standardise advantages over the batch.

    Metrics: ``step_size`` (t_k), ``kl_weight`` (1 / t_k), ``lr``, ``kl`` (mean KL(pi_{k+1} || pi_k) of the
    whole update), ``policy_loss`` (surrogate + KL / t_k), ``value_loss``, ``entropy``, ``grad_norm``
    (averaged over the m steps).
    """

    name: ClassVar[str] = "mdpo"
    HParams: ClassVar[type] = MDPOHParams

    num_sgd_steps: int = 10
    anneal_step_size: bool = True
    anneal_lr: bool = False
    normalize_advantages: bool = True

    def validate(self, spec, config) -> None:
        if not isinstance(self.num_sgd_steps, int) or self.num_sgd_steps < 1:
            raise ConfigError(f"num_sgd_steps={self.num_sgd_steps!r} must be a positive integer "
                              "(Tomar et al. use 5-10 full-batch steps per iteration).")
        self.check_policy(spec, config)

    def init(self, key, spec, hparams: MDPOHParams) -> common.ActorCriticState:
        return common.init_actor_critic(key, spec, self,
                                        common.optimizer("adam", 1.0, self.adam_eps))

    def loss(self, params, state: common.ActorCriticState, data: dict, step_size, hparams: MDPOHParams):
        """MDPO loss on a batch ``{obs, action, log_prob, old_dist, advantage, target}`` (leaves ``[T, N, ...]``).

        ``old_dist`` is pi_k's distribution (constants); ``step_size`` is the scalar t_k.
        """
        dist = state.dist(data["obs"], params)
        log_prob = dist.log_prob(data["action"])
        kl = dist.kl(data["old_dist"])  # KL(pi_theta || pi_k), analytic, per state
        policy_loss = objectives.mirror_descent_loss(log_prob, data["log_prob"], data["advantage"], kl, step_size)
        value_loss = objectives.value_loss(state.value(data["obs"], params), data["target"])
        entropy = jnp.mean(dist.entropy())
        loss = policy_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
        return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def update(self, state: common.ActorCriticState, batch, key, hparams: MDPOHParams, progress):
        advantages, targets, _ = common.gae_targets(state, batch, hparams.gamma, hparams.gae_lambda)
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        old_dist = jax.lax.stop_gradient(state.dist(batch.obs))
        data = {"obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"],
                "old_dist": old_dist, "advantage": advantages, "target": targets}
        if self.anneal_step_size:
            step_size = mirror_descent_step_size(progress, hparams.min_step_size)
        else:
            step_size = jnp.ones((), jnp.float32)
        tx = common.optimizer("adam", hparams.max_grad_norm, self.adam_eps)
        lr = common.annealed_lr(hparams.lr, progress, self.anneal_lr)
        step = common.gradient_step(lambda p, batch: self.loss(p, state, batch, step_size, hparams), tx, lr)
        (params, opt_state), metrics = jax.lax.scan(lambda carry, _: step(carry, data), (state.params, state.opt_state),
                                                    None, length=self.num_sgd_steps)
        metrics = jax.tree.map(jnp.mean, metrics)
        kl = jnp.mean(state.dist(batch.obs, params).kl(old_dist))  # KL(pi_{k+1} || pi_k) of the whole update
        return state.replace(params=params, opt_state=opt_state), {
            **metrics, "step_size": step_size, "kl_weight": 1.0 / step_size, "kl": kl, "lr": lr}
