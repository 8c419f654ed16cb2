"""Natural actor-critic with compatible function approximation (Kakade 2001; Peters & Schaal 2008).

The compatible critic Q_w(s, a) = w^T psi(s, a), with psi(s, a) = grad_theta log pi_theta(a|s)
the score, is fitted by least squares to advantage estimates A_i of a batch of B samples:

    w = argmin_w (1/B) ||Psi w - A||^2 + ridge ||w||^2
      = (F_hat + ridge I)^{-1} g_hat,   F_hat = Psi^T Psi / B,   g_hat = Psi^T A / B,

Psi the ``[B, P]`` matrix of per-sample scores. F_hat = mean_i psi_i psi_i^T is the *empirical*
Fisher and g_hat the likelihood-ratio policy gradient, so the compatible critic's weights ARE the
natural gradient (Kakade 2001, theorem 1; Peters & Schaal 2008, "Natural Actor-Critic", eq. 13).
The policy then moves along w: theta += step_size * w, or (``normalize_step``) by
sqrt(2 delta / w^T F_hat w) w, whose quadratic KL model under F_hat is delta, as NPG.

Psi is built with ``jax.vmap(jax.grad(log_prob))`` (fine for small policies: B * P floats) and the
system is solved by conjugate gradient (`purejaxpg.natural.natural_gradient_direction`) with the
matrix-free product v -> Psi^T (Psi v) / B + ridge v.

Advantages A are GAE(gamma, lambda) under a state-value critic V fitted with Adam (as TRPO), or,
with ``use_critic=False``, discounted reward-to-go (Monte-Carlo returns, no V; the compatible fit
ignores any function of s alone in expectation, since E_pi[psi] = 0, only with more variance).

Note the Fisher here is the empirical one, mean over the SAMPLED actions; `purejaxpg.natural`'s
Fisher-vector product is the expected one, with the expectation over actions taken analytically.
They agree when every state's actions are weighted by pi(a|s) (see
``tests/test_nac.py::test_weighted_over_all_actions_equals_expected_fisher_solution``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import chex
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from purejaxpg import features as feature_maps
from purejaxpg import natural, returns
from purejaxpg.algorithms import common
from purejaxpg.config import hp, hparams

__all__ = ["NAC", "NACHParams", "compatible_natural_gradient", "score_matrix"]


def score_matrix(log_prob_fn: Callable[[Any, jax.Array, jax.Array], jax.Array], params: Any,
                 obs: jax.Array, actions: jax.Array) -> tuple[jax.Array, Callable]:
    """Per-sample scores Psi[i] = grad_theta log pi_theta(a_i | s_i), flattened.

    Args:
      log_prob_fn: ``(params, obs [*obs_shape], action) -> scalar log pi(action|obs)`` for ONE sample.
      params: pytree theta with P scalars in all.
      obs: ``[B, *obs_shape]``; actions: ``[B]`` or ``[B, D]``.
    Returns:
      ``(Psi [B, P], unravel)`` with ``unravel`` mapping a ``[P]`` vector back to ``params``' pytree.
    """
    flat, unravel = ravel_pytree(params)
    score = jax.grad(lambda f, o, a: log_prob_fn(unravel(f), o, a))
    return jax.vmap(score, in_axes=(None, 0, 0))(flat, obs, actions), unravel


def compatible_natural_gradient(scores: jax.Array, advantages: jax.Array, ridge: jax.typing.ArrayLike,
                                cg_iters: int, weights: jax.Array | None = None, *,
                                cg_tol: jax.typing.ArrayLike = 1e-10):
    """Least-squares weights of the compatible critic = empirical natural gradient.

    Solves the weighted ridge regression of A on the scores (Peters & Schaal 2008, eq. 13):

        w = argmin_w sum_i c_i (psi_i . w - A_i)^2 + ridge ||w||^2
          = (Psi^T C Psi + ridge I)^{-1} Psi^T C A,   C = diag(c),  c_i = 1/B by default,

    i.e. (F_hat + ridge I) w = g_hat with the empirical Fisher F_hat and policy gradient g_hat, by
    ``cg_iters`` iterations of conjugate gradient on the matrix-free product.

    Args:
      scores: ``[B, P]`` per-sample scores Psi (see :func:`score_matrix`).
      advantages: ``[B]`` regression targets A_i (constants).
      ridge: scalar >= 0 (may be traced).
      cg_iters: static number of CG iterations (P or more for an exact solve).
      weights: optional ``[B]`` non-negative sample weights c_i (default 1/B).
      cg_tol: CG's absolute tolerance on the squared residual.
    Returns:
      ``(w [P], info)`` with ``info``: ``grad`` g_hat ``[P]``, ``matvec`` (the damped empirical
      Fisher product, a function), ``xFx`` (w^T (F_hat + ridge) w), ``cg_residual``.
    """
    chex.assert_rank(scores, 2)
    chex.assert_shape(advantages, scores.shape[:1])
    advantages = jax.lax.stop_gradient(advantages)
    if weights is None:
        weights = jnp.full(advantages.shape, 1.0 / scores.shape[0], scores.dtype)
    chex.assert_equal_shape([weights, advantages])

    def matvec(v):
        return scores.T @ (weights * (scores @ v)) + ridge * v

    grad = scores.T @ (weights * advantages)
    w, info = natural.natural_gradient_direction(grad, matvec, cg_iters, cg_tol=cg_tol)
    return w, {**info, "grad": grad, "matvec": matvec}


@hparams
class NACHParams:
    """Dynamic hyperparameters of the natural actor-critic (arrays; vmap over them for sweeps)."""

    step_size: float = hp(0.05, low=0.0, low_open=True,
                          doc="Fixed step along w (theta += step_size * w); used only with normalize_step=False.")
    max_kl: float = hp(0.01, low=0.0, low_open=True,
                       doc="KL model size of the normalised step (used only with normalize_step=True).")
    ridge: float = hp(1e-3, low=0.0, doc="Ridge added to the empirical Fisher (Tikhonov damping).")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor.")
    gae_lambda: float = hp(0.97, low=0.0, high=1.0, doc="GAE lambda (with use_critic).")
    critic_lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate of the V critic.")


@dataclasses.dataclass(frozen=True)
class NAC(common.PolicyAlgorithm):
    """Natural actor-critic with a least-squares compatible critic; the fields are its static settings.

    Attributes:
      normalize_step: scale w to the KL model size ``max_kl`` (True) or take step_size * w.
      use_critic: GAE advantages from a V critic (True) or Monte-Carlo reward-to-go (False).
      cg_iters: conjugate-gradient iterations for the least-squares solve.
      critic_epochs, critic_minibatches: Adam passes / minibatches of the V critic.
      hidden, activation: policy MLP (``hidden=()``: a linear policy); P parameters give a
        ``[B, P]`` score matrix, so keep the policy small.
      critic_hidden: V critic MLP (default (64, 64)).
      normalize_advantages: standardise the advantages over the batch before the fit.
      features: optional feature map in front of the policy (see `purejaxpg.features`).
    """

    name: ClassVar[str] = "nac"
    HParams: ClassVar[type] = NACHParams

    normalize_step: bool = True
    use_critic: bool = True
    cg_iters: int = 10
    critic_epochs: int = 10
    critic_minibatches: int = 8
    hidden: tuple[int, ...] = (32, 32)
    critic_hidden: tuple[int, ...] = (64, 64)
    normalize_advantages: bool = True
    features: Any = None

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)
        if self.use_critic:
            common.check_minibatches(config, self.critic_minibatches, "critic_minibatches")

    def _critic_tx(self):
        return common.optimizer("adam", None, self.adam_eps)

    def init(self, key, spec, hparams) -> common.ActorCriticState:
        state_key, feature_key = jax.random.split(key)
        state = common.init_actor_critic(state_key, spec, self,
                                         self._critic_tx(), with_critic=self.use_critic,
                                         critic_hidden=self.critic_hidden)
        if self.features is not None:
            state = feature_maps.featurize(state, self.features, feature_key, spec)
        if not self.use_critic:
            return state.replace(opt_state=None)
        return state.replace(opt_state=self._critic_tx().init(state.params["critic"]))

    def update(self, state: common.ActorCriticState, batch, key, hparams: NACHParams, progress):
        if self.use_critic:
            advantages, targets, _ = common.gae_targets(state, batch, hparams.gamma, hparams.gae_lambda)
        else:
            advantages = returns.reward_to_go(batch.reward, batch.terminated, batch.truncated, hparams.gamma)
            targets = advantages
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        data = common.flatten_batch({"obs": batch.obs, "action": batch.action, "advantage": advantages,
                                     "target": targets})
        theta = state.params["policy"]

        def log_prob_fn(params, obs, action):
            return state.policy.apply(params, obs).log_prob(action)

        scores, unravel = score_matrix(log_prob_fn, theta, data["obs"], data["action"])
        w, info = compatible_natural_gradient(scores, data["advantage"], hparams.ridge, self.cg_iters)
        if self.normalize_step:
            ok = jnp.isfinite(info["xFx"]) & (info["xFx"] > 0)
            scale = jnp.where(ok, jnp.sqrt(2.0 * hparams.max_kl / jnp.where(ok, info["xFx"], 1.0)), 0.0)
        else:
            scale = hparams.step_size
        step = scale * w
        flat_theta, _ = ravel_pytree(theta)
        new_theta = unravel(flat_theta + step)

        obs = data["obs"]
        old = jax.lax.stop_gradient(state.policy.apply(theta, obs))
        new = state.policy.apply(new_theta, obs)
        fit_error = jnp.mean((scores @ w - data["advantage"]) ** 2)
        metrics = {
            "kl": jnp.mean(old.kl(new)),
            "entropy": jnp.mean(old.entropy()),
            "step_norm": jnp.linalg.norm(step),
            "w_norm": jnp.linalg.norm(w),
            "xFx": info["xFx"],
            "cg_residual": info["cg_residual"],
            # fraction of the advantages' variance the compatible critic explains (1 - mse / var)
            "compatible_r2": 1.0 - fit_error / jnp.maximum(jnp.var(data["advantage"]), 1e-8),
        }
        params = {**state.params, "policy": new_theta}
        if self.use_critic:
            critic_params, opt_state, value_loss = common.fit_critic(
                state, {"obs": obs, "target": data["target"]}, key, self._critic_tx(), hparams.critic_lr,
                self.critic_epochs, self.critic_minibatches)
            params["critic"] = critic_params
            state = state.replace(opt_state=opt_state)
            metrics["value_loss"] = value_loss
        return state.replace(params=params), metrics
