"""Advantage actor-critic (A2C) and the actor-critic family of the lecture, as static options.

Synchronous A2C (Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", in
its synchronous form): N parallel actors collect a ``[T, N]`` batch, then ONE gradient step on

    L = -mean(log pi(a_t|s_t) A_t) + vf_coef * L_critic - ent_coef * mean(H[pi(.|s_t)]).

``critic`` and ``advantage`` (static) choose the critic and the advantage A_t:

=========================  =================  ================================================
critic / advantage          critic target       policy weight A_t
=========================  =================  ================================================
"v" / "gae"                 G^lambda_t          GAE(gamma, lambda) (Schulman et al. 2016)
"v" / "nstep"               n-step return       G^(n)_t - V(s_t)  (``returns.n_step_targets``)
"v" / "td"                  r + gamma V(s')     TD error delta_t = r_t + gamma (1-term) V(s') - V(s)
"v" / "td_lambda_traces"    backward view       eligibility traces, see below (== "gae" exactly)
"q" / "td"                  r + gamma V_Q(s')   Q(s_t, a_t) [- V_Q(s_t) with ``q_baseline``]
=========================  =================  ================================================

**Q actor-critic** (Sutton & Barto 2018, sec. 13.5; Konda & Tsitsiklis 2000): a TD(0) action-value
critic. Discrete actions: one output per action, Q(s, .) ``[..., A]``; continuous: Q over
concat(obs, action). Its target is r + gamma (1 - terminated) V_Q(s') with
V_Q(s') = sum_a pi(a|s') Q(s', a) (discrete, "expected SARSA") or Q(s', a'), a' ~ pi(.|s')
(continuous, one sample). With ``q_baseline`` the policy weight is Q(s, a) - V_Q(s), V_Q(s) exact
for discrete actions and a one-sample estimate Q(s, a''), a'' ~ pi(.|s) drawn independently of a
for continuous ones (still an unbiased baseline).
The critic must learn faster than the actor (the two time-scales of Konda & Tsitsiklis): a
Q(s, a) trained only on the actions taken lags for the rarely taken ones while values grow, so
Q(s, a) - V_Q(s) favours whatever the policy already prefers and, with Adam's normalised steps,
the policy collapses to one action within a few hundred updates. ``policy_lr_scale`` ~ 0.1 (the
policy learns at lr * 0.1) fixes this on CartPole-v1 (see the tests).

**TD(lambda) actor-critic with eligibility traces** (Sutton & Barto 2018, sec. 13.5, "Actor-Critic
with Eligibility Traces"), backward view. Online, the lecture updates after every step:

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
    z^w_t = gamma lambda z^w_{t-1} + grad_w V(s_t),     w += alpha_w delta_t z^w_t
    z^th_t = gamma lambda z^th_{t-1} + grad_th log pi(a_t|s_t),  th += alpha_th delta_t z^th_t

with traces reset to 0 when an episode ends (the importance factor I = gamma^t is left out, as in
common practice). Here the parameters are held FIXED over the ``[T, N]`` batch (offline backward
view): one ``lax.scan`` over T carries per-env traces (per-sample gradients by
``jax.vmap(jax.grad(...))`` over N; fine for small networks), the updates delta_t z_t are summed
over the batch, divided by T * N and fed to the optimiser as one (negated) gradient. Because the
parameters do not move within the batch, sum_t delta_t z_t = sum_t grad_t * sum_{k >= t}
(gamma lambda)^{k-t} delta_k = sum_t grad_t A^GAE_t (chains cut at episode and batch ends), i.e.
exactly the forward-view lambda-return update, which is what ``advantage="gae"`` computes; the
tests check both equalities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import chex
import jax
import jax.numpy as jnp
import optax

from purejaxpg import envs, objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams
from purejaxpg.networks import ActionValueCritic

CRITICS = ("v", "q")
ADVANTAGES = ("gae", "nstep", "td", "td_lambda_traces")


# --------------------------------------------------------------------------------------------
# General pieces (candidates for common.py / networks.py)
# --------------------------------------------------------------------------------------------


def eligibility_trace_sum(grad_fn: Callable[[Any, Any], Any], params: Any, inputs: Any, deltas: jax.Array,
                          done: jax.Array, decay: jax.Array) -> Any:
    """Offline backward-view TD(lambda) update: sum_{t, n} delta_{t,n} z_{t,n}, parameters held fixed.

    Accumulating traces per env (Sutton & Barto 2018, sec. 12.2 and 13.5):
    z_{t} = decay * (1 - done_{t-1}) * z_{t-1} + grad_fn(params, inputs_t), z_{-1} = 0,
    i.e. the trace is reset after an episode ends; decay = gamma * lambda.

    Args:
      grad_fn: ``grad_fn(params, x) -> pytree`` for ONE sample x (e.g. grad of log pi or of V);
        vmapped over N.
      params: parameters, fixed during the batch.
      inputs: pytree with leaves ``[T, N, ...]``, the per-sample inputs of ``grad_fn``.
      deltas: ``[T, N]`` TD errors delta_t.
      done: ``[T, N]`` bool/float, the episode ended at step t (the trace is reset after t).
      decay: scalar gamma * lambda (may be traced).
    Returns:
      a pytree like ``grad_fn``'s output: sum over t and n of delta_{t,n} z_{t,n} (a sum, not a mean).
    """
    chex.assert_equal_shape([deltas, done])
    per_sample = jax.vmap(grad_fn, in_axes=(None, 0))
    first = jax.tree.map(lambda x: x[0], inputs)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(per_sample, params, first))
    total = jax.tree.map(lambda z: jnp.zeros(z.shape[1:], z.dtype), zeros)

    def step(carry, xs):
        trace, total = carry
        x, delta, ended = xs
        trace = jax.tree.map(lambda z, g: decay * z + g, trace, per_sample(params, x))
        total = jax.tree.map(lambda s, z: s + jnp.tensordot(delta.astype(z.dtype), z, axes=1), total, trace)
        keep = 1.0 - jnp.asarray(ended, jnp.float32)
        trace = jax.tree.map(lambda z: z * keep.reshape((-1,) + (1,) * (z.ndim - 1)).astype(z.dtype), trace)
        return (trace, total), None

    (_, total), _ = jax.lax.scan(step, (zeros, total), (inputs, deltas, done))
    return total


# --------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------


@hparams
class A2CHParams(common.ActorCriticHParams):
    """Dynamic hyperparameters of A2C (arrays; vmap over them for sweeps).

    Defaults are those of Stable-Baselines3's A2C (lr 7e-4, lambda 1, no entropy bonus, value
    coefficient 0.5, clip 0.5).
    """

    lr: float = hp(7e-4, low=0.0, low_open=True, doc="Learning rate (initial, when annealed).")
    gae_lambda: float = hp(1.0, low=0.0, high=1.0, doc="GAE lambda; also the trace decay of td_lambda_traces.")
    policy_lr_scale: float = hp(1.0, low=0.0, low_open=True,
                                doc="Policy learning rate = lr * policy_lr_scale; < 1 makes the critic the faster "
                                    "learner (two time-scales; about 0.1 for critic='q').")


@dataclasses.dataclass(frozen=True)
class A2C(common.PolicyAlgorithm):
    """Synchronous advantage actor-critic and its variants; the fields are its static settings.

    Attributes:
      critic: "v" (state-value critic) or "q" (TD(0) action-value critic; needs advantage="td").
      advantage: "gae", "nstep", "td" or "td_lambda_traces" (see the module docstring).
      n_step: n of the n-step targets (advantage="nstep").
      q_baseline: with critic="q", weight the policy gradient by Q(s, a) - V_Q(s) instead of Q(s, a).
      optimizer: "adam" or "rmsprop" (decay 0.99), both after a global-norm clip.
      anneal_lr: linearly anneal the learning rate to 0 over the run.
      normalize_advantages: standardise A_t over the batch (not with td_lambda_traces, whose
        backward view never holds all A_t at once).
      hidden, activation, log_std_init, use_sde, sde_sample_freq: the policy (`common.PolicyAlgorithm`);
        the critic has the same MLP shape.
    """

    name: ClassVar[str] = "a2c"
    HParams: ClassVar[type] = A2CHParams

    critic: str = "v"
    advantage: str = "gae"
    n_step: int = 5
    q_baseline: bool = True
    optimizer: str = "adam"
    anneal_lr: bool = False
    normalize_advantages: bool = False

    def __post_init__(self):
        for field, value, allowed in (("critic", self.critic, CRITICS), ("advantage", self.advantage, ADVANTAGES),
                                      ("optimizer", self.optimizer, common.OPTIMIZERS)):
            if value not in allowed:
                raise ConfigError(f"{field}={value!r} is not an option of a2c; choose one of "
                                  f"{', '.join(repr(a) for a in allowed)}.")
        if self.critic == "q" and self.advantage != "td":
            raise ConfigError(f"critic='q' is the TD(0) Q actor-critic and takes advantage='td', not "
                              f"advantage={self.advantage!r}; set advantage='td' or use critic='v'.")
        if isinstance(self.n_step, bool) or not isinstance(self.n_step, int) or self.n_step < 1:
            raise ConfigError(f"n_step={self.n_step!r} must be a positive integer.")
        if self.advantage == "td_lambda_traces" and self.normalize_advantages:
            raise ConfigError("normalize_advantages=True cannot be combined with advantage='td_lambda_traces' "
                              "(the backward view never holds all advantages); use advantage='gae', which "
                              "is the same update, or set normalize_advantages=False.")

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)

    # ---- state and acting ----

    def _tx(self, max_grad_norm):
        return common.optimizer(self.optimizer, max_grad_norm, self.adam_eps)

    def init(self, key, spec: envs.EnvSpec, hparams: A2CHParams) -> common.ActorCriticState:
        tx = self._tx(1.0)
        if self.critic == "v":
            return common.init_actor_critic(key, spec, self, tx)
        policy_key, critic_key = jax.random.split(key)
        state = common.init_actor_critic(policy_key, spec, self, tx,
                                         with_critic=False)
        q_critic = ActionValueCritic(len(spec.obs_shape), spec.num_actions if spec.discrete else 0,
                                     tuple(self.hidden), self.activation)
        dummy_obs = jnp.zeros((1,) + spec.obs_shape, jnp.float32)
        dummy_action = None if spec.discrete else jnp.zeros((1, spec.action_dim), jnp.float32)
        params = {"policy": state.params["policy"], "critic": q_critic.init(critic_key, dummy_obs, dummy_action)}
        return state.replace(params=params, opt_state=tx.init(params), critic=q_critic)

    # ---- advantages and critic targets (parameters fixed) ----

    def v_targets(self, state: common.ActorCriticState, batch, hparams: A2CHParams):
        """``(advantages, targets)``, ``[T, N]`` each, for critic="v" and a forward-view advantage."""
        if self.advantage == "gae":
            advantages, targets, _ = common.gae_targets(state, batch, hparams.gamma, hparams.gae_lambda)
            return advantages, targets
        values, next_values = common.values_and_next_values(state, batch)
        n = self.n_step if self.advantage == "nstep" else 1
        targets = returns.n_step_targets(batch.reward, next_values, batch.terminated, batch.truncated,
                                         hparams.gamma, n)
        return targets - values, targets

    def q_values(self, state: common.ActorCriticState, obs, action, params=None):
        """Q(s, a) ``[...]`` from the action-value critic."""
        critic_params = (state.params if params is None else params)["critic"]
        if state.critic.num_actions:
            all_q = state.critic.apply(critic_params, obs)
            return jnp.take_along_axis(all_q, action.astype(jnp.int32)[..., None], axis=-1)[..., 0]
        return state.critic.apply(critic_params, obs, action)

    def q_state_values(self, state: common.ActorCriticState, obs, key, params=None):
        """V_Q(s) = E_pi Q(s, .) ``[...]``: exact for discrete actions, one sample a ~ pi(.|s) otherwise."""
        params = state.params if params is None else params
        dist = state.dist(obs, params)
        if state.critic.num_actions:
            return jnp.sum(dist.probs * state.critic.apply(params["critic"], obs), axis=-1)
        return state.critic.apply(params["critic"], obs, dist.sample(key))

    def q_targets(self, state: common.ActorCriticState, batch, key, hparams: A2CHParams):
        """``(policy weights, targets)`` for critic="q": target r + gamma (1 - term) V_Q(s')."""
        next_key, baseline_key = jax.random.split(key)
        next_v = self.q_state_values(state, batch.next_obs, next_key)
        targets = batch.reward + hparams.gamma * jnp.where(batch.terminated, 0.0, next_v)
        weights = self.q_values(state, batch.obs, batch.action)
        if self.q_baseline:
            weights = weights - self.q_state_values(state, batch.obs, baseline_key)
        return weights, targets

    # ---- losses and the update ----

    def loss(self, params, state: common.ActorCriticState, batch, advantages, targets, hparams: A2CHParams):
        """policy + vf_coef * critic - ent_coef * entropy on a ``[T, N]`` batch (advantages, targets fixed)."""
        dist = state.dist(batch.obs, params)
        log_prob = dist.log_prob(batch.action)
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        policy_loss = objectives.reinforce_loss(log_prob, advantages)
        if self.critic == "q":
            predictions = self.q_values(state, batch.obs, batch.action, params)
        else:
            predictions = state.value(batch.obs, params)
        critic_loss = objectives.value_loss(predictions, targets)
        entropy = jnp.mean(dist.entropy())
        loss = policy_loss + hparams.vf_coef * critic_loss - hparams.ent_coef * entropy
        return loss, {"policy_loss": policy_loss, "value_loss": critic_loss, "entropy": entropy,
                      "mean_advantage": jnp.mean(advantages)}

    def trace_gradient(self, state: common.ActorCriticState, batch, hparams: A2CHParams):
        """The gradient of the backward-view TD(lambda) actor-critic, parameters fixed over the batch.

        Returns ``(grads, metrics)`` with grads = {"policy": -mean(delta z^th) - ent_coef grad mean H,
        "critic": -vf_coef mean(delta z^w)} (the mean is the sum divided by T * N). The backward view
        never forms a loss, so there is no ``policy_loss`` metric and ``value_loss`` is the TD(0)
        error 0.5 mean(delta^2).
        """
        params = state.params
        values, next_values = common.values_and_next_values(state, batch)
        deltas = batch.reward + hparams.gamma * jnp.where(batch.terminated, 0.0, next_values) - values

        def sample_grads(p, x):
            obs, action = x
            log_pi = lambda pp: state.dist(obs, {"policy": pp}).log_prob(action)  # noqa: E731
            value = lambda w: state.value(obs, {"critic": w})  # noqa: E731
            return {"policy": jax.grad(log_pi)(p["policy"]), "critic": jax.grad(value)(p["critic"])}

        sums = eligibility_trace_sum(sample_grads, params, (batch.obs, batch.action), deltas, batch.done,
                                     hparams.gamma * hparams.gae_lambda)
        count = deltas.size

        def entropy_loss(policy_params):
            return -hparams.ent_coef * jnp.mean(state.dist(batch.obs, {"policy": policy_params}).entropy())

        ent_grad = jax.grad(entropy_loss)(params["policy"])
        grads = {
            "policy": jax.tree.map(lambda s, e: -s / count + e, sums["policy"], ent_grad),
            "critic": jax.tree.map(lambda s: -hparams.vf_coef * s / count, sums["critic"]),
        }
        entropy = jnp.mean(state.dist(batch.obs).entropy())
        return grads, {"value_loss": 0.5 * jnp.mean(deltas**2), "entropy": entropy,
                       "mean_advantage": jnp.mean(deltas)}

    def gradient(self, state: common.ActorCriticState, batch, key, hparams: A2CHParams):
        """``(grads, metrics)`` of this variant on a batch, at the current parameters."""
        if self.advantage == "td_lambda_traces":
            return self.trace_gradient(state, batch, hparams)
        if self.critic == "q":
            advantages, targets = self.q_targets(state, batch, key, hparams)
        else:
            advantages, targets = self.v_targets(state, batch, hparams)
        return jax.grad(self.loss, has_aux=True)(state.params, state, batch, advantages, targets, hparams)

    def apply_gradient(self, state: common.ActorCriticState, grads, hparams: A2CHParams, progress):
        """One optimiser step of ``grads`` on ``state``: ``(state, {"grad_norm", "lr"})``.

        The policy moves at lr * policy_lr_scale, the critic at lr (lr annealed when ``anneal_lr``).
        """
        lr = hparams.lr * (1.0 - progress) if self.anneal_lr else hparams.lr
        lrs = {"policy": lr * hparams.policy_lr_scale, "critic": lr}
        params, opt_state, grad_norm = common.apply_gradients(self._tx(hparams.max_grad_norm), grads,
                                                              state.opt_state, state.params, lrs)
        return state.replace(params=params, opt_state=opt_state), {"grad_norm": grad_norm, "lr": lr}

    def update(self, state: common.ActorCriticState, batch, key, hparams: A2CHParams, progress):
        grads, metrics = self.gradient(state, batch, key, hparams)
        state, step_metrics = self.apply_gradient(state, grads, hparams, progress)
        return state, {**metrics, **step_metrics}
