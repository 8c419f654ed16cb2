"""Policy-gradient surrogate objectives, value losses and KL estimators.

Losses are scalars to MINIMISE and average over every element of their inputs (e.g. ``[T, N]``
rollouts or ``[B]`` minibatches). Per-sample estimators (``importance_ratio``, ``kl_k1``,
``kl_k3``, ``grpo_k3``) return arrays of the input shape. Advantages are constants of the
surrogate: every loss applies ``jax.lax.stop_gradient`` to them. Hyperparameters (``clip_eps``,
``beta``, ``step_size``, ``kl_target``) are scalars that may be traced; they never enter Python
control flow.
"""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp


def reinforce_loss(log_probs: jax.Array, advantages: jax.Array) -> jax.Array:
    """REINFORCE / vanilla policy-gradient loss (Williams 1992).

    L = -mean(log pi(a_t|s_t) * A_t); its gradient is minus the likelihood-ratio estimator
    E[grad log pi(a|s) A].

    Args:
      log_probs: ``[...]`` log pi_theta(a_t|s_t) of the taken actions.
      advantages: ``[...]`` advantage (or return) estimates, treated as constants.

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, advantages])
    advantages = jax.lax.stop_gradient(advantages)
    return -jnp.mean(log_probs * advantages)


def importance_ratio(log_probs: jax.Array, old_log_probs: jax.Array) -> jax.Array:
    """Per-sample likelihood ratio r = pi_theta(a|s) / pi_old(a|s) = exp(log_probs - old_log_probs).

    Args:
      log_probs: ``[...]`` log pi_theta(a|s).
      old_log_probs: ``[...]`` log pi_old(a|s) of the behaviour policy.

    Returns:
      ``[...]`` ratios.
    """
    chex.assert_equal_shape([log_probs, old_log_probs])
    return jnp.exp(log_probs - old_log_probs)


def surrogate_loss(
    log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array
) -> jax.Array:
    """Importance-sampled surrogate loss of CPI / TRPO.

    Kakade & Langford 2002; Schulman et al. 2015: L = -mean(r_t A_t) with
    r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t).

    Args:
      log_probs: ``[...]`` log pi_theta(a_t|s_t).
      old_log_probs: ``[...]`` log pi_old(a_t|s_t).
      advantages: ``[...]`` advantages under pi_old, treated as constants.

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    advantages = jax.lax.stop_gradient(advantages)
    return -jnp.mean(importance_ratio(log_probs, old_log_probs) * advantages)


def clipped_surrogate_loss(
    log_probs: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    clip_eps: chex.Numeric,
) -> jax.Array:
    """PPO clipped surrogate loss (Schulman et al. 2017, eq. 7).

    L = -mean(min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)). The gradient vanishes where the
    ratio has left [1 - eps, 1 + eps] on the side the advantage pushes it towards.

    Args:
      log_probs: ``[...]`` log pi_theta(a_t|s_t).
      old_log_probs: ``[...]`` log pi_old(a_t|s_t).
      advantages: ``[...]`` advantages, treated as constants.
      clip_eps: scalar clipping range eps (may be traced).

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    chex.assert_rank(clip_eps, 0)
    advantages = jax.lax.stop_gradient(advantages)
    ratio = importance_ratio(log_probs, old_log_probs)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))


def value_loss(
    values: jax.Array,
    targets: jax.Array,
    old_values: Optional[jax.Array] = None,
    clip_eps: Optional[chex.Numeric] = None,
) -> jax.Array:
    """Squared-error critic loss, optionally PPO's clipped form.

    Unclipped: 0.5 * mean((v - target)^2). When both ``old_values`` and ``clip_eps`` are given:
    0.5 * mean(max((v - target)^2, (v_old + clip(v - v_old, -eps, eps) - target)^2)).
    Targets are treated as constants.

    Args:
      values: ``[...]`` predicted values V_theta(s).
      targets: ``[...]`` value targets (e.g. lambda-returns).
      old_values: optional ``[...]`` values predicted when the data were collected.
      clip_eps: optional scalar value-clipping range (may be traced).

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([values, targets])
    targets = jax.lax.stop_gradient(targets)
    sq = (values - targets) ** 2
    if old_values is None or clip_eps is None:
        return 0.5 * jnp.mean(sq)
    chex.assert_equal_shape([values, old_values])
    chex.assert_rank(clip_eps, 0)
    old_values = jax.lax.stop_gradient(old_values)
    clipped_values = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(sq, (clipped_values - targets) ** 2))


def entropy_loss(entropies: jax.Array) -> jax.Array:
    """Entropy bonus as a loss term: -mean(H[pi(.|s_t)]) (add it scaled by a coefficient).

    Args:
      entropies: ``[...]`` per-state policy entropies.

    Returns:
      scalar loss.
    """
    return -jnp.mean(entropies)


def kl_k1(log_probs: jax.Array, old_log_probs: jax.Array) -> jax.Array:
    """Per-sample k1 estimator of KL(pi_old || pi_theta) from samples a ~ pi_old.

    Schulman, "Approximating KL divergence" (2020): k1 = log pi_old(a) - log pi_theta(a) = -log r.
    Unbiased, high variance, can be negative.

    Args:
      log_probs: ``[...]`` log pi_theta(a).
      old_log_probs: ``[...]`` log pi_old(a) of the sampling policy.

    Returns:
      ``[...]`` per-sample estimates.
    """
    chex.assert_equal_shape([log_probs, old_log_probs])
    return old_log_probs - log_probs


def kl_k3(log_probs: jax.Array, old_log_probs: jax.Array) -> jax.Array:
    """Per-sample k3 estimator of KL(pi_old || pi_theta) from samples a ~ pi_old.

    Schulman, "Approximating KL divergence" (2020): k3 = (r - 1) - log r, r = pi_theta(a) /
    pi_old(a). Unbiased (E_old[r - 1] = 0), low variance and >= 0 (computed as expm1(d) - d,
    d = log r, floored at 0 against rounding).

    Args:
      log_probs: ``[...]`` log pi_theta(a).
      old_log_probs: ``[...]`` log pi_old(a) of the sampling policy.

    Returns:
      ``[...]`` non-negative per-sample estimates.
    """
    chex.assert_equal_shape([log_probs, old_log_probs])
    d = log_probs - old_log_probs
    return jnp.maximum(jnp.expm1(d) - d, 0.0)


def kl_penalty_loss(
    log_probs: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    kl: jax.Array,
    beta: chex.Numeric,
) -> jax.Array:
    """KL-penalised surrogate (PPO adaptive-KL objective, Schulman et al. 2017, eq. 8).

    L = -mean(r_t A_t) + beta * mean(kl_t).

    Args:
      log_probs: ``[...]`` log pi_theta(a_t|s_t).
      old_log_probs: ``[...]`` log pi_old(a_t|s_t).
      advantages: ``[...]`` advantages, treated as constants.
      kl: ``[...]`` per-sample KL(pi_old || pi_theta) values (analytic or an estimator such as
        ``kl_k3``); gradients flow through it.
      beta: scalar penalty coefficient (may be traced).

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    chex.assert_rank(beta, 0)
    return surrogate_loss(log_probs, old_log_probs, advantages) + beta * jnp.mean(kl)


def mirror_descent_loss(
    log_probs: jax.Array,
    old_log_probs: jax.Array,
    advantages: jax.Array,
    kl: jax.Array,
    step_size: chex.Numeric,
) -> jax.Array:
    """On-policy mirror-descent policy optimisation loss (MDPO, Tomar et al. 2020).

    L = -mean(r_t A_t) + mean(kl_t) / t_k, where kl_t = KL(pi_theta(.|s_t) || pi_k(.|s_t)) (note
    the reverse direction from PPO's penalty) and t_k is the mirror-descent step size.

    Args:
      log_probs: ``[...]`` log pi_theta(a_t|s_t).
      old_log_probs: ``[...]`` log pi_k(a_t|s_t).
      advantages: ``[...]`` advantages, treated as constants.
      kl: ``[...]`` per-state KL(pi_theta || pi_k); gradients flow through it.
      step_size: scalar step size t_k > 0 (may be traced).

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages])
    chex.assert_rank(step_size, 0)
    return surrogate_loss(log_probs, old_log_probs, advantages) + jnp.mean(kl) / step_size


def adaptive_kl_beta(
    beta: chex.Numeric, kl: chex.Numeric, kl_target: chex.Numeric
) -> jax.Array:
    """Adaptive KL-penalty coefficient update (Schulman et al. 2017, sec. 4).

    beta / 2 if kl < kl_target / 1.5; beta * 2 if kl > 1.5 * kl_target; otherwise beta.

    Args:
      beta: scalar current coefficient.
      kl: scalar measured mean KL of the last update.
      kl_target: scalar target KL d_targ.

    Returns:
      scalar updated beta.
    """
    chex.assert_rank([beta, kl, kl_target], 0)
    beta = jnp.asarray(beta)
    return jnp.where(
        kl < kl_target / 1.5, beta / 2.0, jnp.where(kl > 1.5 * kl_target, beta * 2.0, beta)
    )


def grpo_k3(log_probs: jax.Array, ref_log_probs: jax.Array) -> jax.Array:
    """GRPO's per-token KL-to-reference estimator (Shao et al. 2024, "DeepSeekMath").

    D = rho - log rho - 1 with rho = pi_ref(o) / pi_theta(o), an unbiased, non-negative estimate
    of KL(pi_theta || pi_ref) from samples of pi_theta (computed as expm1(d) - d, d = log rho,
    floored at 0 against rounding).

    Args:
      log_probs: ``[...]`` log pi_theta of the sampled tokens/actions.
      ref_log_probs: ``[...]`` log pi_ref of the same tokens/actions.

    Returns:
      ``[...]`` non-negative per-sample estimates.
    """
    chex.assert_equal_shape([log_probs, ref_log_probs])
    d = ref_log_probs - log_probs
    return jnp.maximum(jnp.expm1(d) - d, 0.0)


# ---------------------------------------------------------------------------------------------
# Off-policy actor-critic objectives


def q_ensemble_loss(q_values: jax.Array, targets: jax.Array) -> jax.Array:
    """Critic loss of an ensemble of K Q-functions regressed on one target:
    sum_k 0.5 * mean_b (Q_k(s_b, a_b) - y_b)^2 (TD3 and SAC train both critics on the same y).

    Args:
      q_values: ``[K, B]``, or ``[K, B, A]`` for A critics with their own targets (MADDPG's one
        critic per agent), whose losses are summed; targets: ``[B]`` / ``[B, A]`` (constants).
    Returns:
      scalar loss.
    """
    chex.assert_rank(q_values, {2, 3})
    chex.assert_equal_shape([q_values[0], targets])
    targets = jax.lax.stop_gradient(targets)
    return 0.5 * jnp.sum(jnp.mean((q_values - targets) ** 2, axis=1))


def counterfactual_joint_actions(joint_action: jax.Array, own_action: jax.Array) -> jax.Array:
    """For each agent i, the joint action with agent i's entry replaced by its own policy's action:
    out[i, b, j] = own_action[b, i] if j == i else joint_action[b, j] (MADDPG's actor update,
    Lowe et al. 2017, eq. 6: grad of Q_i(x, a_1, ..., a_i = mu_i(o_i), ..., a_N) through a_i only).

    Args:
      joint_action: ``[B, A, K]`` the replayed actions of the A agents.
      own_action: ``[B, A, K]`` each agent's action from its current policy (differentiable).
    Returns:
      ``[A, B, A, K]``.
    """
    chex.assert_equal_shape([joint_action, own_action])
    num_agents = joint_action.shape[1]
    mine = jnp.eye(num_agents, dtype=bool)[:, None, :, None]  # [A(i), 1, A(j), 1]
    return jnp.where(mine, own_action[None], joint_action[None])


def dpg_actor_loss(q_values: jax.Array) -> jax.Array:
    """Deterministic policy-gradient actor loss -mean_b Q(s_b, mu_theta(s_b)) (Silver et al. 2014, eq. 6).

    Its gradient in theta is -mean_b grad_a Q(s_b, a)|_{a = mu(s_b)} grad_theta mu_theta(s_b), the
    deterministic policy gradient, when ``q_values`` is computed from ``mu_theta``'s actions by a
    critic whose parameters are not differentiated (pass them through ``stop_gradient`` or take the
    gradient in the actor's parameters only).

    Args:
      q_values: ``[B]`` Q(s, mu_theta(s)) (one critic: DDPG, TD3's first).
    Returns:
      scalar loss.
    """
    return -jnp.mean(q_values)


def sac_actor_loss(q_values: jax.Array, log_probs: jax.Array, alpha: chex.Numeric) -> jax.Array:
    """SAC's policy loss mean_b [alpha log pi(a_b|s_b) - Q(s_b, a_b)], a_b = f_theta(eps_b; s_b)
    reparameterised (Haarnoja et al. 2018b, eq. 7 with eq. 11's reparameterisation).

    Args:
      q_values: ``[B]`` min_k Q_k(s, a) at the reparameterised actions.
      log_probs: ``[B]`` log pi(a|s) of those actions (tanh-corrected: `purejaxpg.distributions.TanhGaussian`).
      alpha: temperature, scalar (treated as a constant).
    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([q_values, log_probs])
    return jnp.mean(jax.lax.stop_gradient(alpha) * log_probs - q_values)


def temperature_loss(log_alpha: jax.Array, log_probs: jax.Array, target_entropy: chex.Numeric) -> jax.Array:
    """SAC's automatic temperature loss -mean_b log(alpha) (log pi(a_b|s_b) + H_target)
    (Haarnoja et al. 2018b, eq. 18, in log alpha as most implementations optimise it).

    Its gradient in log alpha is -(mean log pi + H_target) = E[H(pi)] - H_target, so gradient descent
    raises alpha while the policy's entropy is below the target and lowers it above. The usual target is -|A| (the action
    dimension), e.g. -1 for Pendulum.

    Args:
      log_alpha: scalar, the learnt log temperature.
      log_probs: ``[B]`` log-probabilities of actions sampled from the current policy (constants).
      target_entropy: scalar H_target.
    Returns:
      scalar loss.
    """
    chex.assert_rank(log_alpha, 0)
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_probs + target_entropy))


# ---------------------------------------------------------------------------------------------
# ACER (Wang et al. 2017): off-policy policy gradient with truncated importance sampling


def truncated_is_bias_correction_loss(
    logits: jax.Array,
    actions: jax.Array,
    behaviour_probs: jax.Array,
    q_ret: jax.Array,
    q_values: jax.Array,
    clip: chex.Numeric,
) -> jax.Array:
    """ACER's truncated importance sampling with bias correction, as a surrogate loss.

    Wang et al. 2017, "Sample Efficient Actor-Critic with Experience Replay", eq. 9 (discrete
    actions, marginalised correction). With pi = softmax(logits), rho(a) = pi(a|s) / mu(a|s),
    V(s) = sum_a pi(a|s) Q(s, a), the loss is L = -mean_t l_t with

      l_t = min(c, rho_t(a_t)) log pi(a_t|s_t) (Q^ret_t - V(s_t))
            + sum_a [1 - c / rho_t(a)]_+ pi(a|s_t) log pi(a|s_t) (Q(s_t, a) - V(s_t)),

    every factor but the log pi stop-gradiented, so the gradient of l_t in the logits of s_t is
    g_t = min(c, rho_t(a_t)) (onehot(a_t) - pi)(Q^ret_t - V)
          + sum_a [1 - c / rho_t(a)]_+ pi(a) (onehot(a) - pi)(Q(s_t, a) - V).
    The correction weight is computed as [1 - c mu(a) / pi(a)]_+ (0 where pi(a) = 0), so a
    behaviour probability of 0 gives no NaN.

    Args:
      logits: ``[..., A]`` the current policy's logits at s_t (differentiated).
      actions: ``[...]`` int actions a_t, drawn from mu.
      behaviour_probs: ``[..., A]`` mu(.|s_t), the behaviour policy's probabilities.
      q_ret: ``[...]`` Retrace targets Q^ret_t (`purejaxpg.returns.retrace`).
      q_values: ``[..., A]`` Q(s_t, .) of the critic.
      clip: scalar truncation threshold c > 0 (may be traced; 10 in the paper).

    Returns:
      scalar loss.
    """
    chex.assert_equal_shape([logits, behaviour_probs, q_values])
    chex.assert_equal_shape([actions, q_ret])
    chex.assert_rank(clip, 0)
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    pi = jax.lax.stop_gradient(jnp.exp(log_pi))
    mu = jax.lax.stop_gradient(behaviour_probs)
    q_values = jax.lax.stop_gradient(q_values)
    q_ret = jax.lax.stop_gradient(q_ret)
    values = jnp.sum(pi * q_values, axis=-1)
    taken = actions.astype(jnp.int32)[..., None] == jnp.arange(logits.shape[-1])
    log_pi_taken = jnp.sum(jnp.where(taken, log_pi, 0.0), axis=-1)
    pi_taken = jnp.sum(jnp.where(taken, pi, 0.0), axis=-1)
    mu_taken = jnp.sum(jnp.where(taken, mu, 0.0), axis=-1)
    rho_taken = pi_taken / jnp.maximum(mu_taken, jnp.finfo(pi.dtype).tiny)
    truncated_term = jnp.minimum(clip, rho_taken) * log_pi_taken * (q_ret - values)
    correction_weight = jnp.where(pi > 0, jax.nn.relu(1.0 - clip * mu / jnp.maximum(pi, jnp.finfo(pi.dtype).tiny)), 0.0)
    # where pi(a) = 0 the term is 0 (not 0 * log 0 = NaN)
    correction_term = jnp.sum(jnp.where(pi > 0, correction_weight * pi * log_pi * (q_values - values[..., None]), 0.0),
                              axis=-1)
    return -jnp.mean(truncated_term + correction_term)


def trust_region_projection(gradient: jax.Array, kl_gradient: jax.Array, delta: chex.Numeric) -> jax.Array:
    """ACER's efficient trust-region step: the closest direction to g whose linearised KL stays below delta.

    Wang et al. 2017, eq. 12-13: per sample, the solution of
    min_z 1/2 ||z - g||^2 subject to k . z <= delta is

      z* = g - max(0, (k . g - delta) / ||k||^2) k,

    with g the policy gradient and k = d KL(pi_avg || pi_theta) / d phi, both in the
    distribution's parameters phi (e.g. the logits). Where k = 0 (the policy equals the average
    policy) nothing is constrained and z* = g.

    Args:
      gradient: ``[..., P]`` g, the ascent direction per sample.
      kl_gradient: ``[..., P]`` k per sample.
      delta: scalar constraint delta >= 0 (may be traced; 1 in the paper).

    Returns:
      ``[..., P]`` z*.
    """
    chex.assert_equal_shape([gradient, kl_gradient])
    chex.assert_rank(delta, 0)
    excess = jnp.sum(kl_gradient * gradient, axis=-1, keepdims=True) - delta
    norm_sq = jnp.sum(kl_gradient**2, axis=-1, keepdims=True)
    scale = jnp.maximum(excess, 0.0) / jnp.maximum(norm_sq, jnp.finfo(norm_sq.dtype).tiny)
    return gradient - scale * kl_gradient
