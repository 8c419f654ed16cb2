"""Group relative policy optimisation for environments (GRPO; Shao et al. 2024, "DeepSeekMath", sec. 4.1).

Every iteration the training skeleton resets all N environments; each group of G consecutive
environments shares a reset key, so the G members start from the same state and diverge through
their own action and step keys (``episode_group_size`` = G, see :class:`purejaxpg.train.Trainer`).
``num_steps`` must cover a whole episode. For environment i only its FIRST episode of the batch is
used (later steps belong to auto-reset episodes that do not share a start state); its undiscounted
return R_i is scored against its group (outcome supervision):

    A_i = (R_i - mean_{j in group} R_j) / (std_{j in group} R_j + eps)      (0 for a group of equal returns)

and every step of that episode gets A_i. There is no critic. The loss, minimised over
``num_epochs`` passes of ``num_minibatches`` shuffled minibatches of the (masked) steps, is

    L = -wmean(min(r A, clip(r, 1-eps, 1+eps) A)) + beta * wmean(D_k3) - ent_coef * wmean(H[pi]),

r = pi_theta(a|s) / pi_old(a|s), D_k3 = rho - log rho - 1 with rho = pi_ref(a|s) / pi_theta(a|s)
(:func:`purejaxpg.objectives.grpo_k3`, KL to a reference policy), and wmean a weighted mean whose
weights are zero after the first episode: ``loss_aggregation="step"`` weighs every valid step
equally (sum over valid steps / number of valid steps); ``"episode"`` is Shao et al.'s
(1/G) sum_i (1/|o_i|) sum_t, every episode weighing the same whatever its length. A minibatch's
weighted sums are divided by (total weight of the batch) / num_minibatches, so each minibatch
loss is an unbiased piece of the full-batch loss, and a minibatch that holds only masked steps
gives 0, never 0/0. ``num_minibatches=1`` gives full-batch steps.

The reference policy pi_ref is the initial policy (``ref_update_interval=0``) or the policy at
the start of every ``ref_update_interval``-th iteration.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import chex
import jax
import jax.numpy as jnp
from flax import struct

from purejaxpg import objectives, returns, rollout
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams

LOSS_AGGREGATIONS = ("step", "episode")


# --------------------------------------------------------------------------------------------
# General pieces (candidates for returns.py / objectives.py)
# --------------------------------------------------------------------------------------------


def first_episode_mask(done: jax.Array) -> jax.Array:
    """Which steps of a batch belong to each environment's first episode.

    mask[t, n] = 1 if no episode of env n ended before step t (the step that ends the first episode
    is included), i.e. sum_{s < t} done[s, n] == 0.

    Args:
      done: ``[T, N]`` bool/float, an episode ended at step t (terminated or truncated).
    Returns:
      ``[T, N]`` bool mask.
    """
    chex.assert_rank(done, 2)
    done = (jnp.asarray(done) != 0).astype(jnp.int32)
    ended_before = jnp.cumsum(done, axis=0) - done
    return ended_before == 0


def first_episode_returns(rewards: jax.Array, done: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Mask, undiscounted return and length of each environment's first episode in a batch.

    R_n = sum_t mask[t, n] r[t, n], L_n = sum_t mask[t, n] (see :func:`first_episode_mask`). When an
    env's first episode does not end inside the batch, R_n and L_n are those of its first T steps.

    Args:
      rewards: ``[T, N]`` rewards.
      done: ``[T, N]`` bool/float episode ends.
    Returns:
      ``(mask [T, N] bool, returns [N], lengths [N] int32)``.
    """
    chex.assert_equal_shape([rewards, done])
    mask = first_episode_mask(done)
    episode_returns = jnp.sum(jnp.where(mask, rewards, 0.0), axis=0)
    return mask, episode_returns, jnp.sum(mask, axis=0).astype(jnp.int32)


def grouped_advantages(episode_returns: jax.Array, group_size: int, eps: float = 1e-8) -> jax.Array:
    """GRPO's outcome advantages for groups of consecutive environments.

    Env n belongs to group n // G; A_n = (R_n - mean_group R) / (std_group R + eps)
    (population std; :func:`purejaxpg.returns.group_standardize`), exactly 0 in a group of equal returns.

    Args:
      episode_returns: ``[N]`` returns R_n, N divisible by G.
      group_size: G (static).
      eps: added to the group std.
    Returns:
      ``[N]`` advantages.
    """
    chex.assert_rank(episode_returns, 1)
    num_envs = episode_returns.shape[0]
    if num_envs % group_size:
        raise ValueError(f"{num_envs} returns do not split into groups of {group_size}.")
    grouped = episode_returns.reshape(num_envs // group_size, group_size).T  # [G, groups]
    return returns.group_standardize(grouped, eps).T.reshape(num_envs)


def weighted_mean(values: jax.Array, weights: jax.Array, total_weight: jax.Array | None = None) -> jax.Array:
    """sum(weights * values) / total_weight (default: sum(weights)); 0 when every weight is 0.

    With ``total_weight`` the (expected) weight of a minibatch, the minibatch means are unbiased
    pieces of a full-batch weighted mean.

    Args:
      values, weights: arrays of one shape, weights >= 0.
      total_weight: optional scalar normaliser.
    Returns:
      scalar.
    """
    chex.assert_equal_shape([values, weights])
    total = jnp.sum(weights) if total_weight is None else total_weight
    return jnp.sum(weights * values) / jnp.maximum(total, jnp.finfo(jnp.float32).tiny)


def weighted_clipped_surrogate_loss(log_probs, old_log_probs, advantages, clip_eps, weights,
                                    total_weight=None) -> jax.Array:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) as a weighted mean.

    L = -sum_t w_t min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t) / W, W = total_weight or sum(w).
    Since min(r A w, clip(r) A w) = w min(r A, clip(r) A) for w >= 0, this is
    :func:`purejaxpg.objectives.clipped_surrogate_loss` on advantages A w, rescaled from a mean
    over all samples to a division by W.

    Args:
      log_probs, old_log_probs, advantages, weights: ``[...]`` of one shape, weights >= 0.
      clip_eps: scalar (may be traced).
      total_weight: optional scalar normaliser.
    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, weights])
    total = jnp.sum(weights) if total_weight is None else total_weight
    mean_loss = objectives.clipped_surrogate_loss(log_probs, old_log_probs, advantages * weights, clip_eps)
    return mean_loss * weights.size / jnp.maximum(total, jnp.finfo(jnp.float32).tiny)


# --------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------


@hparams
class GRPOHParams:
    """Dynamic hyperparameters of GRPO (arrays; vmap over them for sweeps)."""

    lr: float = hp(1e-3, low=0.0, low_open=True, doc="Adam learning rate (initial, when annealed).")
    clip_eps: float = hp(0.2, low=0.0, low_open=True, doc="Ratio clip epsilon.")
    beta: float = hp(0.04, low=0.0, doc="Coefficient of the k3 KL-to-reference penalty (Shao et al.: 0.04).")
    ent_coef: float = hp(0.0, low=0.0, doc="Entropy bonus coefficient.")
    max_grad_norm: float = hp(0.5, low=0.0, low_open=True, doc="Global-norm gradient clip.")


@struct.dataclass
class GRPOState:
    """Learner state of :class:`GRPO`.

    Attributes:
      actor_critic: policy parameters (no critic) and the optimiser state.
      ref_policy: parameters of the reference policy pi_ref.
      iteration: updates done so far (int32 scalar), for the reference refresh.
    """

    actor_critic: common.ActorCriticState
    ref_policy: Any
    iteration: jax.Array


@dataclasses.dataclass(frozen=True)
class GRPO(common.PolicyAlgorithm):
    """GRPO on episodic groups; the fields are its static settings.

    Attributes:
      episode_group_size: G >= 2 rollouts per group sharing a start state; must divide num_envs.
      ref_update_interval: M; pi_ref <- pi_theta at the start of every M-th iteration (0 = the
        initial policy for the whole run).
      loss_aggregation: ``"step"`` (every valid step weighs the same) or ``"episode"`` (Shao et
        al.: mean over episodes of the mean over their steps).
      num_epochs: passes over the batch per iteration.
      num_minibatches: minibatches per pass (1 = full-batch steps); must divide num_envs * num_steps.
      hidden, activation, log_std_init, use_sde, sde_sample_freq: the policy (`common.PolicyAlgorithm`).
      anneal_lr: linearly anneal the learning rate to 0 over the run.
      adv_eps: eps of the group standardisation.

    Metrics: ``group_return`` (mean first-episode return R_i of the batch), ``degenerate_groups``
    (fraction of groups whose returns are all equal, hence zero advantages), ``valid_fraction``
    (fraction of the batch's steps inside first episodes), ``kl_ref`` (weighted mean k3 to pi_ref),
    ``policy_loss``, ``entropy``, ``clip_fraction``, ``grad_norm``, ``lr``.
    """

    name: ClassVar[str] = "grpo"
    HParams: ClassVar[type] = GRPOHParams

    episode_group_size: int = 8
    ref_update_interval: int = 5
    loss_aggregation: str = "step"
    num_epochs: int = 4
    num_minibatches: int = 4
    anneal_lr: bool = False
    adv_eps: float = 1e-8

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)
        g = self.episode_group_size
        if isinstance(g, bool) or not isinstance(g, int) or g < 2:
            raise ConfigError(f"episode_group_size={g!r} must be an integer >= 2: GRPO compares the returns of "
                              "a group of rollouts from one start state; set episode_group_size=8, say.")
        if config.num_envs % g:
            raise ConfigError(f"episode_group_size={g} does not divide num_envs={config.num_envs}; set num_envs "
                              f"to a multiple of {g} (e.g. {g * max(1, config.num_envs // g)}).")
        if spec.max_episode_steps and config.num_steps < spec.max_episode_steps:
            raise ConfigError(f"num_steps={config.num_steps} is shorter than an episode of {spec.env_id} "
                              f"({spec.max_episode_steps} steps); GRPO scores whole episodes, so set "
                              f"num_steps={spec.max_episode_steps}.")
        if isinstance(self.ref_update_interval, bool) or not isinstance(self.ref_update_interval, int) \
                or self.ref_update_interval < 0:
            raise ConfigError(f"ref_update_interval={self.ref_update_interval!r} must be an integer >= 0 "
                              "(0 = keep the initial policy as the reference).")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            raise ConfigError(f"loss_aggregation={self.loss_aggregation!r} is not one of {LOSS_AGGREGATIONS}.")
        common.check_minibatches(config, self.num_minibatches)

    def init(self, key, spec, hparams: GRPOHParams) -> GRPOState:
        actor_critic = common.init_actor_critic(key, spec, self,
                                                common.optimizer("adam", 1.0, self.adam_eps), with_critic=False)
        return GRPOState(actor_critic, actor_critic.params["policy"], jnp.asarray(0, jnp.int32))

    @property
    def rollout_options(self) -> rollout.RolloutOptions:
        """Every iteration starts from fresh group-shared start states."""
        return rollout.RolloutOptions(episodic_groups=self.episode_group_size)

    def policy_state(self, state: GRPOState) -> common.ActorCriticState:
        return state.actor_critic

    def advantages(self, batch) -> dict[str, jax.Array]:
        """Per-step advantages and loss weights of a batch ``[T, N]``.

        Returns:
          ``{"advantage": [T, N], "weight": [T, N], "mask": [T, N] bool, "episode_return": [N],
          "episode_length": [N]}``; advantage and weight are 0 after each env's first episode.
        """
        mask, episode_returns, lengths = first_episode_returns(batch.reward, batch.done)
        per_env = grouped_advantages(episode_returns, self.episode_group_size, self.adv_eps)
        advantage = jnp.where(mask, per_env[None, :], 0.0)
        weight = mask.astype(jnp.float32)
        if self.loss_aggregation == "episode":
            weight = weight / jnp.maximum(lengths, 1)[None, :].astype(jnp.float32)
        return {"advantage": advantage, "weight": weight, "mask": mask, "episode_return": episode_returns,
                "episode_length": lengths}

    def loss(self, params, state: common.ActorCriticState, minibatch: dict, total_weight, hparams: GRPOHParams):
        """GRPO loss on a flat minibatch ``{obs, action, log_prob, ref_log_prob, advantage, weight}``."""
        dist = state.dist(minibatch["obs"], params)
        log_prob = dist.log_prob(minibatch["action"])
        weight = minibatch["weight"]
        surrogate = weighted_clipped_surrogate_loss(log_prob, minibatch["log_prob"], minibatch["advantage"],
                                                    hparams.clip_eps, weight, total_weight)
        kl = weighted_mean(objectives.grpo_k3(log_prob, minibatch["ref_log_prob"]), weight, total_weight)
        entropy = weighted_mean(dist.entropy(), weight, total_weight)
        loss = surrogate + hparams.beta * kl - hparams.ent_coef * entropy
        ratio = objectives.importance_ratio(log_prob, minibatch["log_prob"])
        clipped = (jnp.abs(ratio - 1.0) > hparams.clip_eps).astype(jnp.float32)
        metrics = {"policy_loss": surrogate, "kl_ref": kl, "entropy": entropy,
                   "clip_fraction": weighted_mean(clipped, weight, total_weight)}
        return loss, metrics

    def update(self, state: GRPOState, batch, key, hparams: GRPOHParams, progress):
        ac = state.actor_critic
        ref_policy = state.ref_policy
        if self.ref_update_interval > 0:
            refresh = state.iteration % self.ref_update_interval == 0
            ref_policy = jax.tree.map(lambda cur, ref: jnp.where(refresh, cur, ref), ac.params["policy"], ref_policy)
        scored = self.advantages(batch)
        ref_log_prob = ac.dist(batch.obs, {"policy": ref_policy}).log_prob(batch.action)
        data = common.flatten_batch({
            "obs": batch.obs, "action": batch.action, "log_prob": batch.extras["log_prob"],
            "ref_log_prob": jax.lax.stop_gradient(ref_log_prob),
            "advantage": scored["advantage"], "weight": scored["weight"],
        })
        # each minibatch is normalised by its share of the batch's weight (an unbiased piece of the full loss)
        total_weight = jnp.sum(scored["weight"]) / self.num_minibatches
        lr = common.annealed_lr(hparams.lr, progress, self.anneal_lr)
        params, opt_state, metrics = common.minibatch_sgd(
            key, data, ac.params, ac.opt_state, lambda p, mb: self.loss(p, ac, mb, total_weight, hparams),
            common.optimizer("adam", hparams.max_grad_norm, self.adam_eps), lr, self.num_epochs, self.num_minibatches)
        group_returns = scored["episode_return"].reshape(-1, self.episode_group_size)
        new_state = GRPOState(ac.replace(params=params, opt_state=opt_state), ref_policy, state.iteration + 1)
        return new_state, {
            **metrics,
            "lr": lr,
            "group_return": jnp.mean(scored["episode_return"]),
            "degenerate_groups": jnp.mean(jnp.all(group_returns == group_returns[:, :1], axis=1)),
            "valid_fraction": jnp.mean(scored["mask"]),
        }
