"""REINFORCE (Williams 1992), with and without a learned state-value baseline.

Per iteration, on a ``[T, N]`` batch of N parallel environments:

    G_t = sum_{k=t}^{end of episode} gamma^{k-t} r_k                 (reward-to-go, the causality trick)
    A_t = G_t                      (``reinforce``)
    A_t = G_t - V(s_t)             (``reinforce_baseline``; V fitted by regression on G)
    L   = -(1/|K|) sum_{t in K} w_t log pi(a_t|s_t) A_t  - ent_coef * mean(H[pi(.|s_t)])

and ONE Adam step on L (Sutton & Barto 2018, sec. 13.3-13.4). K is the set of steps that enter
the gradient and w_t = gamma^{t_ep} when ``discount_weighting`` is on (1 otherwise).

**Time limits.** Without ``cut="bootstrap"`` a time-limit truncation ends the Monte-Carlo return
like a termination: REINFORCE then maximises the return of the time-limited episode, which is the
quantity the benchmark reports (CartPole-v1: the sum of rewards over at most 500 steps). There is
nothing else to do without a critic; with a baseline, ``cut="bootstrap"`` bootstraps both time
limits and batch cuts from V(final observation) instead.

**Episodes cut by the batch end** (``cut``, static):

* ``"mask"`` (default): steps of an episode that has not ended by row T - 1 are dropped from the
  loss (K = steps whose episode ends inside the batch), so every G_t that enters the gradient is an
  exact Monte-Carlo return. The environments are NOT reset between iterations, so the head of a
  batch continues the episode left unfinished by the previous one and is used when that episode
  ends here; only its steps that fell in the previous batch are lost. With ``num_steps`` at least
  the env's time limit, each env loses at most one episode's early part per batch. Caveat: the
  lost steps are the early steps of episodes that straddle a batch boundary, which long episodes
  do more often, so their early states are somewhat under-represented; keep ``num_steps`` long.
* ``"zero"``: the unfinished tail is kept with the cut treated as a 0 return beyond the batch
  (G_t = partial sum); biased towards 0 for the tail, uses every sample.
* ``"bootstrap"`` (only with a baseline): the tail is bootstrapped with gamma * V(s_T), like
  ``purejaxpg.returns.reward_to_go`` with ``next_values``.

**Textbook gamma^t weighting** (``discount_weighting``, static): the gradient of the discounted
objective J = E[sum_t gamma^t r_t] is E[sum_t gamma^t G_t grad log pi(a_t|s_t)], where t counts
from the START of the episode. The batch does not carry that index, so it is recovered from the
batch alone by :func:`episode_step_index`: counting back from the episode's end using its
``finished_length`` (exact for every episode that ends inside the batch, i.e. every step kept by
``"mask"``), or counting forward from an auto-reset seen inside the batch. Only an episode that
neither starts nor ends inside the batch (possible only when ``num_steps`` is below the episode
length) gets an index counted from the batch start, an under-estimate.

The baseline critic has its own Adam and ``critic_epochs`` passes of ``critic_minibatches``
minibatches of 0.5 (V(s_t) - G_t)^2 per batch, after the policy step (the policy step uses V from
before the fit, so A_t does not depend on a_t's own return through V).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from purejaxpg import objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams

CUTS = ("mask", "zero", "bootstrap")


# --------------------------------------------------------------------------------------------
# General pieces (candidates for returns.py): batch-level episode bookkeeping and masked scores
# --------------------------------------------------------------------------------------------


def episode_step_index(done: jax.Array, finished_length: jax.Array) -> jax.Array:
    """Index of each step within its episode (0 at the step after a reset), from a batch alone.

    For a step t whose episode ends at e >= t inside the batch (``done[e]``), the index is
    ``finished_length[e] - 1 - (e - t)`` (exact, even for the head of the batch that continues an
    episode begun in an earlier batch). Otherwise, it is the number of steps since the last
    ``done`` before t in the batch (exact after an auto-reset seen in the batch); a step in an
    episode that neither starts nor ends inside the batch gets t itself (counted from row 0).
    Exact for every step when T >= the longest episode.

    Args:
      done: ``[T, N]`` bool/float, the episode ended at step t (terminated or truncated).
      finished_length: ``[T, N]`` int, the ended episode's length where ``done``.

    Returns:
      ``[T, N]`` int32 step indices t_ep >= 0.
    """
    chex.assert_equal_shape([done, finished_length])
    done = jnp.asarray(done) != 0
    num_steps = done.shape[0]
    t = jnp.arange(num_steps, dtype=jnp.int32).reshape((num_steps,) + (1,) * (done.ndim - 1))
    t = jnp.broadcast_to(t, done.shape)
    last_done = jax.lax.cummax(jnp.where(done, t, -1), axis=0)
    last_done_before = jnp.concatenate([jnp.full_like(last_done[:1], -1), last_done[:-1]], axis=0)
    forward = t - last_done_before - 1
    next_done = jax.lax.cummin(jnp.where(done, t, num_steps), axis=0, reverse=True)
    ends_in_batch = next_done < num_steps
    length_at_end = jnp.take_along_axis(jnp.asarray(finished_length, jnp.int32),
                                        jnp.minimum(next_done, num_steps - 1), axis=0)
    backward = length_at_end - 1 - (next_done - t)
    use_backward = (last_done_before < 0) & ends_in_batch
    return jnp.where(use_backward, backward, forward).astype(jnp.int32)


def ends_in_batch(done: jax.Array) -> jax.Array:
    """``[T, N]`` bool: the episode that step t belongs to ends at some step >= t of the batch.

    ends[t] = OR_{k >= t} done[k] (a reversed cumulative OR along time).
    """
    done = jnp.asarray(done) != 0
    return jax.lax.cummax(done.astype(jnp.int32), axis=0, reverse=True) > 0


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(mask * x) / max(sum(mask), 1): the mean over the kept elements (0 when none is kept)."""
    chex.assert_equal_shape([x, mask])
    mask = jnp.asarray(mask, x.dtype)
    return jnp.sum(mask * x) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_standardize(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """(x - mean) / (std + eps) with mean and population std over the elements where ``mask``.

    As :func:`purejaxpg.returns.standardize`, the data are first shifted by one kept element (an
    exact no-op for the standard score), so all-equal kept values give exact zeros, never rounding
    noise divided by eps. Elements outside the mask are standardised with the same statistics.

    Args:
      x: ``[...]`` values (e.g. ``[T, N]`` advantages).
      mask: ``[...]`` bool/float weights in {0, 1}.
    Returns:
      ``[...]`` standard scores.
    """
    chex.assert_equal_shape([x, mask])
    weights = jnp.asarray(mask != 0, x.dtype)
    ref = x.reshape(-1)[jnp.argmax(weights.reshape(-1))]
    centred = x - ref
    centred = centred - masked_mean(centred, weights)
    var = masked_mean(centred**2, weights)
    positive = var > 0
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
    return centred / (std + eps)


# --------------------------------------------------------------------------------------------
# The algorithms
# --------------------------------------------------------------------------------------------


@hparams
class ReinforceHParams:
    """Dynamic hyperparameters of REINFORCE (arrays; vmap over them for sweeps)."""

    lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate of the policy.")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor of the reward-to-go.")
    ent_coef: float = hp(0.0, low=0.0, doc="Entropy bonus coefficient.")
    max_grad_norm: float = hp(1.0, low=0.0, low_open=True, doc="Global-norm gradient clip.")


@hparams
class ReinforceBaselineHParams(ReinforceHParams):
    """REINFORCE's hyperparameters plus the baseline critic's learning rate."""

    critic_lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate of the baseline V(s).")


@dataclasses.dataclass(frozen=True)
class Reinforce(common.PolicyAlgorithm):
    """Monte-Carlo policy gradient with reward-to-go (see the module docstring for the estimator).

    Attributes:
      cut: how an episode cut by the batch end is handled: "mask" (drop it) or "zero" (partial
        sum); "bootstrap" needs a baseline.
      discount_weighting: multiply each term by gamma^{t_ep} (the textbook, unbiased gradient of
        the discounted objective; t_ep from :func:`episode_step_index`).
      normalize_advantages: standardise G_t (or G_t - V) over the kept steps. Off by default:
        standardising subtracts the batch mean, itself a (constant) baseline.
      hidden, activation: policy MLP.
    """

    name: ClassVar[str] = "reinforce"
    HParams: ClassVar[type] = ReinforceHParams
    baseline: ClassVar[bool] = False

    cut: str = "mask"
    discount_weighting: bool = False
    normalize_advantages: bool = False

    def __post_init__(self):
        allowed = CUTS if self.baseline else CUTS[:2]
        if self.cut not in allowed:
            hint = " (bootstrapping needs a critic: use reinforce_baseline)" if self.cut == "bootstrap" else ""
            raise ConfigError(f"cut={self.cut!r} is not supported by {self.name}{hint}; "
                              f"choose one of {', '.join(repr(c) for c in allowed)}.")

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)

    def init(self, key, spec, hparams) -> common.ActorCriticState:
        tx = common.optimizer("adam", 1.0, self.adam_eps)
        state = common.init_actor_critic(key, spec, self, tx,
                                         with_critic=self.baseline,
                                         critic_hidden=getattr(self, "critic_hidden", None))
        # separate optimiser states: the critic takes several steps per policy step
        opt_state = {"policy": tx.init(state.params["policy"]),
                     "critic": tx.init(state.params["critic"]) if self.baseline else None}
        return state.replace(opt_state=opt_state)

    def returns_and_weights(self, state: common.ActorCriticState, batch, gamma):
        """Reward-to-go G ``[T, N]``, the per-step loss weights w ``[T, N]`` and the kept mask.

        mask = 1 on the steps that enter the loss (see ``cut``); w = mask * gamma^{t_ep} with
        ``discount_weighting``, else mask.
        """
        done = batch.done
        if self.cut == "bootstrap":
            _, next_values = common.values_and_next_values(state, batch)
            g = returns.reward_to_go(batch.reward, batch.terminated, batch.truncated, gamma, next_values)
        else:  # time limits end the Monte-Carlo return; the batch end contributes 0 beyond it
            g = returns.reward_to_go(batch.reward, done, jnp.zeros_like(done), gamma)
        mask = ends_in_batch(done) if self.cut == "mask" else jnp.ones(done.shape, bool)
        mask = mask.astype(g.dtype)
        weights = mask
        if self.discount_weighting:
            t_ep = episode_step_index(done, batch.finished_length)
            weights = weights * gamma ** t_ep.astype(g.dtype)
        return g, weights, mask

    def policy_loss(self, policy_params, state: common.ActorCriticState, batch, advantages, weights, mask,
                    ent_coef):
        """-(1/|K|) sum_K w_t log pi(a_t|s_t) A_t - ent_coef * mean H, via objectives.reinforce_loss."""
        dist = state.dist(batch.obs, {"policy": policy_params})
        log_prob = dist.log_prob(batch.action)
        # reinforce_loss averages over all T*N elements: rescale so that it averages over the kept ones
        scale = mask.size / jnp.maximum(jnp.sum(mask), 1.0)
        pg_loss = objectives.reinforce_loss(log_prob, advantages * weights * scale)
        entropy = jnp.mean(dist.entropy())
        return pg_loss - ent_coef * entropy, {"policy_loss": pg_loss, "entropy": entropy}

    def policy_gradient(self, state: common.ActorCriticState, batch, hparams):
        """The REINFORCE gradient estimate on a batch, at the current parameters.

        Returns:
          ``(grads, returns, mask, metrics)``: grads of the policy loss w.r.t. the policy
          parameters, the reward-to-go G and the kept mask (``[T, N]`` each), scalar metrics.
        """
        g, weights, mask = self.returns_and_weights(state, batch, hparams.gamma)
        advantages = g - state.value(batch.obs) if self.baseline else g
        if self.normalize_advantages:
            advantages = masked_standardize(advantages, mask)
        grads, metrics = jax.grad(self.policy_loss, has_aux=True)(
            state.params["policy"], state, batch, advantages, weights, mask, hparams.ent_coef)
        metrics = {**metrics, "kept_fraction": jnp.mean(mask), "mean_return_to_go": masked_mean(g, mask)}
        return grads, g, mask, metrics

    def update(self, state: common.ActorCriticState, batch, key, hparams, progress):
        grads, g, mask, metrics = self.policy_gradient(state, batch, hparams)
        tx = common.optimizer("adam", hparams.max_grad_norm, self.adam_eps)
        policy, policy_opt, grad_norm = common.apply_gradients(tx, grads, state.opt_state["policy"],
                                                             state.params["policy"], hparams.lr)
        params = {**state.params, "policy": policy}
        opt_state = {**state.opt_state, "policy": policy_opt}
        metrics["grad_norm"] = grad_norm
        if self.baseline:
            critic, critic_opt, critic_metrics = self.fit_baseline(state, batch, g, mask, key, hparams)
            params["critic"], opt_state["critic"] = critic, critic_opt
            metrics.update(critic_metrics)
        return state.replace(params=params, opt_state=opt_state), metrics


@dataclasses.dataclass(frozen=True)
class ReinforceBaseline(Reinforce):
    """REINFORCE with a learned state-value baseline: A_t = G_t - V(s_t) (Sutton & Barto sec. 13.4).

    V is fitted by regression on the same reward-to-go targets G_t (masked like the policy loss)
    with ``critic_epochs`` passes of ``critic_minibatches`` Adam steps per batch, at ``critic_lr``
    (its own Adam state, the same global-norm clip ``max_grad_norm``).

    Attributes (besides those of :class:`Reinforce`):
      critic_epochs: passes over the batch for the critic regression.
      critic_minibatches: minibatches per pass; must divide num_envs * num_steps.
      critic_hidden: critic MLP (default: ``hidden``).
    """

    name: ClassVar[str] = "reinforce_baseline"
    HParams: ClassVar[type] = ReinforceBaselineHParams
    baseline: ClassVar[bool] = True

    critic_epochs: int = 5
    critic_minibatches: int = 4
    critic_hidden: tuple[int, ...] | None = None

    def validate(self, spec, config) -> None:
        super().validate(spec, config)
        if not isinstance(self.critic_epochs, int) or self.critic_epochs < 1:
            raise ConfigError(f"critic_epochs={self.critic_epochs!r} must be a positive integer.")
        common.check_minibatches(config, self.critic_minibatches, "critic_minibatches")

    def fit_baseline(self, state: common.ActorCriticState, batch, targets, mask, key, hparams):
        """Regress V(s_t) on G_t: 0.5 * masked mean (V - G)^2 over minibatches.

        Returns:
          ``(critic_params, critic_opt_state, metrics)``.
        """
        tx = common.optimizer("adam", hparams.max_grad_norm, self.adam_eps)
        data = common.flatten_batch({"obs": batch.obs, "target": targets, "mask": mask})

        def value_loss(critic_params, minibatch):
            values = state.value(minibatch["obs"], {"critic": critic_params})
            loss = 0.5 * masked_mean((values - minibatch["target"]) ** 2, minibatch["mask"])
            return loss, {"value_loss": loss}

        critic, opt, metrics = common.minibatch_sgd(
            key, data, state.params["critic"], state.opt_state["critic"], value_loss, tx, hparams.critic_lr,
            self.critic_epochs, self.critic_minibatches)
        return critic, opt, {"value_loss": metrics["value_loss"]}
