"""Natural policy gradient (NPG) and trust region policy optimisation (TRPO).

Both share one update (Kakade 2001; Schulman et al. 2015, "Trust Region Policy Optimization";
the practical form of Spinning Up and Stable-Baselines3-contrib). Per iteration, on a ``[T, N]``
batch collected by the current policy pi_old = pi_{theta_old}:

1. GAE(gamma, lambda) advantages A under the current critic (`common.gae_targets`), standardised
   over the batch (`returns.standardize`);
2. the surrogate L(theta) = mean(pi_theta(a|s) / pi_old(a|s) * A) and its gradient
   g = grad L(theta_old) (= the policy gradient, since the ratio is 1 at theta_old);
3. x ~= (F + damping I)^{-1} g by ``cg_iters`` steps of conjugate gradient, where F v is the
   Fisher-vector product J^T M J v of the batch's observations with pi_old held constant
   (`natural.make_fisher_vector_product`, linearised once);
4. the full step s = sqrt(2 delta / x^T (F + damping I) x) x, whose quadratic KL model is delta
   (`natural.natural_step`);
5. * NPG (Spinning Up's "normalised" NPG): theta = theta_old + s, no line search
     (``normalize_step=False`` gives Kakade's fixed step theta_old + step_size * x);
   * TRPO: backtracking line search over theta_old + c^k s, k = 0..K-1, all K candidates
     evaluated at once under ``vmap``; the first with mean KL(pi_old || pi_candidate) <= delta and
     a positive surrogate improvement is taken, and theta_old is kept bit-for-bit when none is
     (`natural.backtracking_line_search`);
6. the critic V is fitted to the TD(lambda) targets A^GAE + V_old with Adam for ``critic_epochs``
   passes of ``critic_minibatches`` minibatches (`common.minibatch_epochs`).

The policy has no optimiser; the state's ``opt_state`` is an Adam state over the CRITIC's
parameters only (see :func:`init_critic_optimizer`).

Metrics per iteration: ``kl`` (mean KL(pi_old || pi_new) over the batch after the step; 0 when a
line search keeps theta_old), ``surrogate_improvement`` (L(theta_new) - L(theta_old)),
``cg_residual`` (||g - (F + damping I) x||), ``xFx``, ``step_norm`` (||s||, the full proposed
step), ``value_loss`` (mean over the critic's minibatch steps), ``entropy`` (mean entropy of
pi_old); TRPO also ``backtrack_index`` (the accepted k, -1 when none) and
``line_search_failed`` (1.0 when no candidate qualified).

Defaults are those of ``shared/REFERENCES.md`` (delta 0.01, 10 CG iterations, damping 0.1,
backtrack coefficient 0.8, 10 candidates, GAE lambda 0.97) except the cost of the two inner
loops. TRPO estimates the Fisher on every 10th sample (``fisher_subsample``; Schulman's PhD
thesis, UC Berkeley EECS-2016-217, computes the Fisher-vector products on 10% of the data so that
they cost about as much as the gradient; NPG uses the whole batch), and fits the critic for 1
epoch x 8 minibatches at Adam lr 2e-2 (NPG: 2 x 8 at 1e-2) rather than 5-20 epochs at 1e-3. With
them TRPO runs at least at PPO's steps/s at the same batch (``benchmarks/throughput.py algos``)
and reaches 500 on CartPole-v1 on seeds 0-7 at its 1e5-step preset (an 8-seed sweep of critic
learning rates, see the README). Pendulum's preset keeps a critic of 10 x 8 at 3e-3 (lighter
critics left seeds between -420 and -770) and the Fisher on every 5th sample (every 10th, with
the same critic, left one of 8 seeds at -666).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from purejaxpg import features as feature_maps
from purejaxpg import natural, objectives, returns
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError, hp, hparams


@hparams
class NaturalHParams:
    """Dynamic hyperparameters shared by NPG and TRPO (arrays; vmap over them for sweeps)."""

    max_kl: float = hp(0.01, low=0.0, low_open=True, doc="Trust-region radius delta on the mean KL.")
    damping: float = hp(0.1, low=0.0, doc="Damping added to the Fisher matrix in conjugate gradient.")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor.")
    gae_lambda: float = hp(0.97, low=0.0, high=1.0, doc="GAE lambda.")
    critic_lr: float = hp(1e-2, low=0.0, low_open=True, doc="Adam learning rate of the critic.")


@hparams
class NPGHParams(NaturalHParams):
    """NPG's hyperparameters: the shared ones plus Kakade's fixed step size."""

    step_size: float = hp(0.1, low=0.0, low_open=True,
                          doc="Fixed natural step eta (theta += eta F^-1 g); used only with normalize_step=False.")


@hparams
class TRPOHParams(NaturalHParams):
    """TRPO's hyperparameters: the shared ones plus the line search's shrink factor."""

    backtrack_coef: float = hp(0.8, low=0.0, high=1.0, low_open=True, high_open=True,
                               doc="Line-search step shrink factor c (candidates c^k * step).")
    critic_lr: float = hp(2e-2, low=0.0, low_open=True,
                          doc="Adam learning rate of the critic (TRPO fits it for 1 epoch by default).")


@dataclasses.dataclass(frozen=True)
class NPG(common.PolicyAlgorithm):
    """Natural policy gradient with a GAE critic; the fields are its static settings.

    Attributes:
      normalize_step: NPG as in Spinning Up, one step of KL model size ``max_kl``
        (theta += sqrt(2 delta / x^T F x) x); False gives Kakade's fixed step theta += step_size x.
      cg_iters: conjugate-gradient iterations.
      fisher_subsample: the Fisher-vector products use every k-th sample of the flattened batch
        (1: all of it; TRPO's default is 10, as in Schulman's TRPO). The policy gradient, the KL
        of the line search and the metrics always use the whole batch, so TRPO's trust region is
        checked on every sample. NPG keeps 1: it has no line search, so its step is only as good
        as the Fisher estimate (Pendulum, 8 seeds: -155.9 mean with 1, -217.2 with 5).
      critic_epochs, critic_minibatches: Adam passes over the batch for the critic, and
        minibatches per pass (must divide num_envs * num_steps).
      hidden, activation: MLP shape of the policy (``hidden=()``: a linear policy).
      critic_hidden: MLP shape of the critic (default: ``hidden``, or (64, 64) when hidden is ()).
      normalize_advantages: standardise the advantages over the batch.
      features: optional flax feature map phi(obs) -> [..., F] placed in front of the policy
        (see `purejaxpg.features`); the critic keeps the raw observation.
    """

    name: ClassVar[str] = "npg"
    HParams: ClassVar[type] = NPGHParams
    line_search: ClassVar[bool] = False

    normalize_step: bool = True
    cg_iters: int = 10
    fisher_subsample: int = 1
    critic_epochs: int = 2
    critic_minibatches: int = 8
    critic_hidden: tuple[int, ...] | None = None
    normalize_advantages: bool = True
    features: Any = None

    def validate(self, spec, config) -> None:
        self.check_policy(spec, config)
        common.check_minibatches(config, self.critic_minibatches, "critic_minibatches")
        if not 1 <= self.fisher_subsample <= config.batch_size:
            raise ConfigError(f"fisher_subsample={self.fisher_subsample} must be between 1 (the whole batch) and "
                              f"the batch size num_envs * num_steps = {config.batch_size}; TRPO's default is 10, NPG's 1.")

    def _critic_tx(self) -> optax.GradientTransformation:
        return common.optimizer("adam", None, self.adam_eps)

    def init(self, key, spec, hparams) -> common.ActorCriticState:
        state_key, feature_key = jax.random.split(key)
        state = common.init_actor_critic(state_key, spec, self,
                                         self._critic_tx(), critic_hidden=self.critic_hidden or self.hidden or (64, 64))
        if self.features is not None:
            state = feature_maps.featurize(state, self.features, feature_key, spec)
        return state.replace(opt_state=self._critic_tx().init(state.params["critic"]))

    def policy_step(self, state: common.ActorCriticState, obs: jax.Array, action: jax.Array,
                    advantages: jax.Array, hparams) -> tuple[Any, dict]:
        """One natural-gradient (NPG) or trust-region (TRPO) step of the policy parameters.

        Args:
          state: the actor-critic state (its policy parameters are theta_old).
          obs: ``[B, *obs_shape]`` observations; action: ``[B]`` or ``[B, D]`` actions taken.
          advantages: ``[B]`` advantages (already normalised if wanted), constants.
          hparams: NPGHParams or TRPOHParams.
        Returns:
          ``(new policy params, metrics)``.
        """
        theta = state.params["policy"]
        dist_fn = lambda p: state.policy.apply(p, obs)  # noqa: E731
        # one forward pass gives pi_old and the pullback for the surrogate's gradient
        old, pullback = jax.vjp(dist_fn, theta)
        old = jax.lax.stop_gradient(old)
        old_log_prob = old.log_prob(action)
        surrogate_old = jnp.mean(advantages)  # the ratio is exactly 1 at theta_old

        def surrogate(dist):
            return -objectives.surrogate_loss(dist.log_prob(action), old_log_prob, advantages)

        (grad,) = pullback(jax.grad(surrogate)(old))

        def evaluate(candidate):
            new = dist_fn(candidate)
            return surrogate(new) - surrogate_old, jnp.mean(old.kl(new))

        # the Fisher is estimated on every k-th sample (``fisher_subsample``: TRPO's default 10 is
        # Schulman's 10%, baselines uses 5); the gradient, the line search's KL and the surrogate
        # use the whole batch
        fisher_obs = obs[::self.fisher_subsample]
        matvec = natural.make_fisher_vector_product(lambda p: state.policy.apply(p, fisher_obs), theta,
                                                    hparams.damping)
        metrics: dict[str, jax.Array] = {"entropy": jnp.mean(old.entropy())}
        if self.line_search or self.normalize_step:
            step, info = natural.natural_step(grad, matvec, hparams.max_kl, self.cg_iters)
        else:
            direction, info = natural.natural_gradient_direction(grad, matvec, self.cg_iters)
            step = jax.tree.map(lambda x: hparams.step_size * x, direction)
            info = {**info, "step_norm": otu.tree_norm(step)}
        if self.line_search:
            new_theta, search = natural.backtracking_line_search(
                evaluate, theta, step, hparams.max_kl, hparams.backtrack_coef, self.num_candidates)
            metrics.update(kl=search["kl"], surrogate_improvement=search["improvement"],
                           backtrack_index=search["accepted_index"],
                           line_search_failed=search["failed"].astype(jnp.float32))
        else:
            new_theta = jax.tree.map(lambda p, s: (p + s).astype(p.dtype), theta, step)
            improvement, kl = evaluate(new_theta)
            metrics.update(kl=kl, surrogate_improvement=improvement)
        metrics.update(cg_residual=info["cg_residual"], xFx=info["xFx"], step_norm=info["step_norm"])
        return new_theta, metrics

    def update(self, state: common.ActorCriticState, batch, key, hparams, progress):
        advantages, targets, _ = common.gae_targets(state, batch, hparams.gamma, hparams.gae_lambda)
        if self.normalize_advantages:
            advantages = returns.standardize(advantages)
        data = common.flatten_batch({"obs": batch.obs, "action": batch.action, "advantage": advantages,
                                     "target": targets})
        policy_params, metrics = self.policy_step(state, data["obs"], data["action"], data["advantage"], hparams)
        critic_params, opt_state, value_loss = common.fit_critic(
            state, {"obs": data["obs"], "target": data["target"]}, key, self._critic_tx(), hparams.critic_lr,
            self.critic_epochs, self.critic_minibatches)
        state = state.replace(params={"policy": policy_params, "critic": critic_params}, opt_state=opt_state)
        return state, {**metrics, "value_loss": value_loss}


@dataclasses.dataclass(frozen=True)
class TRPO(NPG):
    """TRPO: NPG's step followed by a vmapped backtracking line search (see the module docstring).

    Attributes (besides NPG's; ``normalize_step`` is ignored, TRPO always scales to the KL model):
      num_candidates: line-search candidates K (static).
      fisher_subsample: 10 here (NPG: 1); see NPG.
      critic_epochs: 1 here (NPG: 2), with ``TRPOHParams.critic_lr`` 2e-2 (NPG: 1e-2).
    """

    name: ClassVar[str] = "trpo"
    HParams: ClassVar[type] = TRPOHParams
    line_search: ClassVar[bool] = True

    num_candidates: int = 10
    fisher_subsample: int = 10
    critic_epochs: int = 1
