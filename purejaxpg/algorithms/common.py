"""Pieces that several algorithms share: the optimiser step, acting, actor-critic state, critic targets, epochs.

Each is written once here so that an algorithm module shows only what is different about it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxpg import envs, networks, objectives, returns, rollout
from purejaxpg.config import hp, hparams
from purejaxpg.errors import ConfigError
from purejaxpg.rollout import Transition


@hparams
class ActorCriticHParams:
    """Dynamic hyperparameters shared by the actor-critic algorithms with a GAE critic (arrays;
    vmap over them for sweeps). An algorithm's ``HParams`` subclasses it, adds its own fields and
    may change a default by declaring the field again."""

    lr: float = hp(2.5e-4, low=0.0, low_open=True, doc="Adam learning rate (initial, when annealed).")
    gamma: float = hp(0.99, low=0.0, high=1.0, doc="Discount factor.")
    gae_lambda: float = hp(0.95, low=0.0, high=1.0, doc="GAE lambda.")
    ent_coef: float = hp(0.0, low=0.0, doc="Entropy bonus coefficient.")
    vf_coef: float = hp(0.5, low=0.0, doc="Value loss coefficient.")
    max_grad_norm: float = hp(0.5, low=0.0, low_open=True, doc="Global-norm gradient clip.")


OPTIMIZERS = ("adam", "rmsprop")


def optimizer(name: str = "adam", max_grad_norm: jax.Array | float | None = None,
              eps: float = 1e-5) -> optax.GradientTransformation:
    """The direction of a gradient step, before the learning rate: every algorithm's optimiser.

    ``"adam"``: Adam (Kingma & Ba 2015). ``"rmsprop"``: g / (sqrt(v) + eps) with
    v <- 0.99 v + 0.01 g^2, v_0 = 0 (PyTorch's form, which Stable-Baselines3's A2C uses). Both
    optionally after a *global-norm* gradient clip (``optax.clip_by_global_norm``, not
    element-wise). The learning rate is applied by :func:`apply_gradients`, so that it can be a
    traced, annealed hyperparameter; ``max_grad_norm`` may be traced too (optax states do not
    depend on it).
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer={name!r} is not one of {', '.join(repr(o) for o in OPTIMIZERS)}.")
    direction = (optax.scale_by_adam(eps=eps) if name == "adam"
                 else optax.scale_by_rms(decay=0.99, eps=eps, eps_in_sqrt=False))
    if max_grad_norm is None:
        return direction
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), direction)


def apply_gradients(tx: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any, lr: Any):
    """One optimiser step, params - lr * tx(grads): the path every gradient step of every algorithm takes.

    Args:
      tx: from :func:`optimizer`.
      grads, params: pytrees of one structure; opt_state: ``tx.init(params)``.
      lr: a scalar (may be traced), or a dict of scalars keyed like the top level of ``params``
        (e.g. ``{"policy": lr_pi, "critic": lr_v}``: one rate per part, one optimiser state).
    Returns:
      ``(params, opt_state, grad_norm)``, grad_norm the global norm of ``grads`` before clipping.
    """
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda rate, part, step: jax.tree.map(lambda p, u: p - rate * u, part, step),
                          lr, params, updates)
    return params, opt_state, optax.tree.norm(grads)


def gradient_step(loss_fn: Callable[[Any, Any], tuple[jax.Array, dict]], tx: optax.GradientTransformation,
                  lr: Any) -> Callable:
    """A ``lax.scan`` body taking one :func:`apply_gradients` step on ``loss_fn(params, batch) -> (loss, metrics)``.

    Returns:
      ``step((params, opt_state), batch) -> ((params, opt_state), {**metrics, "grad_norm"})``.
    """

    def step(carry, batch):
        params, opt_state = carry
        grads, metrics = jax.grad(loss_fn, has_aux=True)(params, batch)
        params, opt_state, grad_norm = apply_gradients(tx, grads, opt_state, params, lr)
        return (params, opt_state), {**metrics, "grad_norm": grad_norm}

    return step


@struct.dataclass
class ActorCriticState:
    """Parameters of a policy and a critic and the state of one optimiser over both.

    ``params`` is ``{"policy": ..., "critic": ...}`` (the critic entry may be ``None``).
    ``max_episode_steps`` is the env's time limit (``EnvSpec.max_episode_steps``, 0 when unknown):
    it bounds how many truncated steps a batch can hold (`values_and_next_values`), so it must be
    the limit the batches were collected under; set it to 0 for batches from elsewhere.
    """

    params: dict
    opt_state: Any
    policy: nn.Module = struct.field(pytree_node=False)
    critic: nn.Module | None = struct.field(pytree_node=False)
    max_episode_steps: int = struct.field(pytree_node=False, default=0)

    def dist(self, obs: jax.Array, params: dict | None = None):
        """The policy's distribution at ``obs`` under ``params`` (default: the current ones)."""
        return self.policy.apply((self.params if params is None else params)["policy"], obs)

    def value(self, obs: jax.Array, params: dict | None = None) -> jax.Array:
        return self.critic.apply((self.params if params is None else params)["critic"], obs)


def init_actor_critic(key: jax.Array, spec: envs.EnvSpec, settings: "PolicyAlgorithm",
                      tx: optax.GradientTransformation | None, with_critic: bool = True,
                      critic_hidden: Sequence[int] | None = None) -> ActorCriticState:
    """Initialise separate policy and critic MLPs (shapes from ``settings``) and one optimiser state over both.

    ``tx=None`` leaves ``opt_state`` as ``None`` (for algorithms that build their own).
    """
    policy = networks.make_policy(spec, settings.hidden, settings.activation, settings.log_std_init,
                                  settings.use_sde)
    critic = networks.make_critic(spec, critic_hidden or settings.hidden, settings.activation) if with_critic else None
    dummy = jnp.zeros((1,) + spec.obs_shape, jnp.float32)
    policy_key, critic_key = jax.random.split(key)
    params = {"policy": policy.init(policy_key, dummy),
              "critic": critic.init(critic_key, dummy) if with_critic else None}
    return ActorCriticState(params, None if tx is None else tx.init(params), policy, critic, spec.max_episode_steps)


def sample_action(state: ActorCriticState, obs: jax.Array, key: jax.Array):
    """Sample a ~ pi(.|obs) and keep log pi(a|s): ``obs [N, ...] -> (action [N] or [N, D], {"log_prob": [N]})``."""
    dist = state.dist(obs)
    action = dist.sample(key)
    return action, {"log_prob": dist.log_prob(action)}


@dataclasses.dataclass(frozen=True)
class PolicyAlgorithm:
    """Base of the algorithms whose policy is a `networks.make_policy` module: shape and exploration.

    Its fields are static settings every such algorithm has, and it provides the acting half of
    the algorithm protocol (`purejaxpg.train.Algorithm`): ``init_actor`` and ``act``, which sample
    from ``policy_state(learner_state).dist``.

    Attributes:
      hidden, activation: MLP shape of the policy (and, unless the algorithm says otherwise, the critic).
      log_std_init: initial log std of a Gaussian policy (with ``use_sde``: of every entry of the
        exploration matrix's scale).
      use_sde: generalized state-dependent exploration (gSDE; Raffin et al. 2022) for a Gaussian
        policy: the action is mean(s) + phi(s)^T W, with phi(s) the policy's last hidden layer and
        W ~ N(0, sigma^2) a ``[F, D]`` matrix per environment, held for ``sde_sample_freq`` steps
        (`purejaxpg.networks.GSDEPolicy`).
      sde_sample_freq: steps between draws of W (-1: once per iteration, at the start of each rollout).
      adam_eps: the optimiser's epsilon (Adam's; RMSprop's for A2C with ``optimizer="rmsprop"``).
    """

    rollout_options: ClassVar[rollout.RolloutOptions] = rollout.RolloutOptions()
    #: the action spaces it takes: True discrete only, False continuous only, None both
    discrete: ClassVar[bool | None] = None

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    use_sde: bool = False
    sde_sample_freq: int = -1
    adam_eps: float = 1e-5

    def check_policy(self, spec: envs.EnvSpec, config) -> None:
        """Raise ConfigError for an action space the algorithm does not take or a bad gSDE setting."""
        check_action_space(self.name, spec, self.discrete)
        if not self.use_sde:
            return
        if spec.discrete:
            raise ConfigError(f"use_sde=True needs a continuous (Box) action space; env_id={spec.env_id!r} has "
                              "discrete actions. Drop use_sde.")
        if getattr(self, "features", None) is not None:
            raise ConfigError("use_sde=True cannot be combined with features=...: gSDE draws its noise from the "
                              "policy's last hidden layer. Drop one of them.")
        if isinstance(self.sde_sample_freq, bool) or not isinstance(self.sde_sample_freq, int) \
                or self.sde_sample_freq == 0 or self.sde_sample_freq < -1:
            raise ConfigError(f"sde_sample_freq={self.sde_sample_freq!r} must be a positive number of steps, or -1 "
                              "(once per iteration).")

    def policy_state(self, learner_state: Any) -> ActorCriticState:
        """The `ActorCriticState` holding the policy (the learner state itself unless overridden)."""
        return learner_state

    def init_actor(self, learner_state: Any, config, key: jax.Array) -> Any:
        """Per-environment exploration state, carried from step to step and iteration to iteration.

        ``()`` for independent noise at every step; with ``use_sde``:
        ``{"noise": [N, F, D] standard normal, "step": int32, "period": int32}``.
        """
        if not self.use_sde:
            return ()
        log_sigma = self.policy_state(learner_state).params["policy"]["params"]["log_std"]  # [F, D]
        shape = (config.num_envs,) + log_sigma.shape
        period = config.num_steps if self.sde_sample_freq == -1 else self.sde_sample_freq
        return {"noise": jax.random.normal(key, shape), "step": jnp.zeros((), jnp.int32),
                "period": jnp.asarray(period, jnp.int32)}

    def greedy_action(self, learner_state: Any, obs: jax.Array) -> jax.Array:
        """``obs [N, ...] -> [N]`` / ``[N, D]``: the policy's mode (most likely action, or the Gaussian
        mean), for deterministic evaluation."""
        return self.policy_state(learner_state).dist(obs).mode()

    def act(self, learner_state: Any, obs: jax.Array, key: jax.Array, actor_state: Any = ()):
        """``obs [N, ...] -> (action, {"log_prob": [N]}, actor_state)``: a ~ pi(.|obs) and log pi(a|obs)."""
        state = self.policy_state(learner_state)
        if not self.use_sde:
            action, extras = sample_action(state, obs, key)
            return action, extras, actor_state
        fresh = actor_state["step"] % actor_state["period"] == 0
        noise = jnp.where(fresh, jax.random.normal(key, actor_state["noise"].shape), actor_state["noise"])
        dist, action = state.policy.apply(state.params["policy"], obs, noise)
        actor_state = {**actor_state, "noise": noise, "step": actor_state["step"] + 1}
        return action, {"log_prob": dist.log_prob(action)}, actor_state


def values_and_next_values(state: ActorCriticState, batch: Transition, params: dict | None = None):
    """V(obs) and the bootstrap value of the true next observation, ``[T, N]`` each.

    ``next_values[t]`` is V(next_obs[t]) wherever the episode did not terminate at step t, and 0
    where it did (the value of a terminal state; the returns in `purejaxpg.returns` mask it out
    anyway).

    Inside an episode ``next_obs[t]`` is ``obs[t + 1]``, so the critic runs only on the ``T N``
    observations, the ``N`` observations after the last step and the final observations of the
    truncated steps before it (`truncation_budget` rows, gathered with a static size), instead of
    on all ``2 T N`` observations; the numbers are those of the critic on ``next_obs``
    (``tests/test_critic_targets.py`` checks it).
    """
    num_steps, num_envs = batch.obs.shape[:2]
    obs_shape = batch.obs.shape[2:]
    inner = (num_steps - 1) * num_envs  # steps t < T - 1, whose next observation may be obs[t + 1]
    budget = truncation_budget(num_steps, num_envs, state.max_episode_steps)
    if budget >= inner:  # any step may be truncated: evaluate every next observation
        index = jnp.arange(inner)
    else:  # flat indices (t * N + n, t < T - 1) of the truncated steps; unused slots point past the end
        index = jnp.nonzero(batch.truncated[:-1].reshape(-1), size=budget, fill_value=inner)[0]
    finals = jnp.take(batch.next_obs[:-1].reshape((-1,) + obs_shape), index, axis=0, mode="clip")
    rows = jnp.concatenate([batch.obs.reshape((-1,) + obs_shape), batch.next_obs[-1], finals])
    out = state.value(rows, params)
    values = out[: num_steps * num_envs].reshape(num_steps, num_envs)
    last = out[num_steps * num_envs: (num_steps + 1) * num_envs]
    shifted = values[1:].reshape(-1).at[index].set(out[(num_steps + 1) * num_envs:], mode="drop")
    next_values = jnp.concatenate([shifted.reshape(num_steps - 1, num_envs), last[None]])
    return values, jnp.where(batch.terminated, jnp.zeros_like(next_values), next_values)


def truncation_budget(num_steps: int, num_envs: int, max_episode_steps: int) -> int:
    """The most truncated steps among the first ``T - 1`` steps of a ``[T, N]`` batch.

    An episode is truncated only when it has run ``max_episode_steps`` steps (gymnax's time limit,
    ``state.time >= max_steps_in_episode``), so one env truncates at most
    ``ceil((T - 1) / max_episode_steps)`` times in ``T - 1`` steps. With no known limit
    (``max_episode_steps <= 0``) every step may be truncated: ``(T - 1) N``.
    """
    inner = (num_steps - 1) * num_envs
    if max_episode_steps <= 0:
        return inner
    return min(inner, num_envs * -(-(num_steps - 1) // max_episode_steps))


def gae_targets(state: ActorCriticState, batch: Transition, gamma, lam):
    """GAE advantages and TD(lambda) critic targets for a batch, plus the values used.

    Returns:
      ``(advantages, targets, values)``, each ``[T, N]``; targets = advantages + values.
    """
    values, next_values = values_and_next_values(state, batch)
    advantages = returns.gae(batch.reward, values, next_values, batch.terminated, batch.truncated, gamma, lam)
    return advantages, advantages + values, values


def flatten_batch(tree: Any) -> Any:
    """``[T, N, ...] -> [T * N, ...]`` on every leaf."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def check_minibatches(config, num_minibatches: int, field: str = "num_minibatches") -> None:
    """The batch of num_envs * num_steps samples must split evenly into ``num_minibatches`` (named ``field``)."""
    if isinstance(num_minibatches, bool) or not isinstance(num_minibatches, int) or num_minibatches < 1 \
            or config.batch_size % num_minibatches:
        raise ConfigError(
            f"{field}={num_minibatches!r} does not divide the batch num_envs * num_steps = "
            f"{config.num_envs} * {config.num_steps} = {config.batch_size}; pick a divisor of "
            f"{config.batch_size} or change num_envs/num_steps."
        )


def minibatch_epochs(key: jax.Array, data: Any, carry: Any, num_epochs: int, num_minibatches: int,
                     update_fn: Callable[[Any, Any], tuple[Any, dict]]) -> tuple[Any, dict]:
    """Run ``num_epochs`` passes over shuffled minibatches of ``data`` with ``lax.scan``.

    Args:
      key: shuffling key.
      data: pytree with leaves ``[B, ...]`` (a flattened batch).
      carry: what ``update_fn`` threads through (parameters, optimiser state, ...).
      num_epochs, num_minibatches: static counts; B must be divisible by num_minibatches.
      update_fn: ``update_fn(carry, minibatch) -> (carry, metrics)``.
    Returns:
      ``(carry, metrics averaged over all minibatch updates)``; a metric that is not a scalar is
      averaged over its elements too.
    """
    batch_size = jax.tree.leaves(data)[0].shape[0]
    minibatch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch_size // num_minibatches,) + x.shape[1:], x.dtype),
                             data)
    metrics_def = jax.tree.structure(jax.eval_shape(update_fn, carry, minibatch)[1])

    def step(state, minibatch):
        carry, sums = state
        carry, metrics = update_fn(carry, minibatch)
        # the metrics are summed in the carry as one vector: one kernel per step, not one per metric
        return (carry, sums + jnp.stack([jnp.mean(m) for m in jax.tree.leaves(metrics)])), None

    def epoch(state, epoch_key):
        perm = jax.random.permutation(epoch_key, batch_size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1) + x.shape[1:]), data)
        return jax.lax.scan(step, state, shuffled)[0], None

    sums = jnp.zeros((metrics_def.num_leaves,), jnp.float32)
    (carry, sums), _ = jax.lax.scan(epoch, (carry, sums), jax.random.split(key, num_epochs))
    return carry, jax.tree.unflatten(metrics_def, list(sums / (num_epochs * num_minibatches)))


def annealed_lr(lr: jax.Array, progress: jax.Array, anneal: bool) -> jax.Array:
    """lr * (1 - progress) when annealing linearly to 0 over the run, else lr."""
    return lr * (1.0 - progress) if anneal else lr


def minibatch_sgd(key: jax.Array, data: Any, params: Any, opt_state: Any,
                  loss_fn: Callable[[Any, Any], tuple[jax.Array, dict]], tx: optax.GradientTransformation,
                  lr: Any, num_epochs: int, num_minibatches: int):
    """Epochs of shuffled minibatch :func:`gradient_step` steps on ``loss_fn(params, minibatch) -> (loss, metrics)``.

    Returns:
      ``(params, opt_state, metrics averaged over all steps, with "grad_norm")``.
    """
    (params, opt_state), metrics = minibatch_epochs(key, data, (params, opt_state), num_epochs, num_minibatches,
                                                    gradient_step(loss_fn, tx, lr))
    return params, opt_state, metrics


def fit_critic(state: ActorCriticState, data: dict, key: jax.Array, tx: optax.GradientTransformation, lr: Any,
               num_epochs: int, num_minibatches: int):
    """Regress V on targets by :func:`minibatch_sgd`; ``state.opt_state`` is ``tx``'s state over the critic alone.

    Minimises 0.5 mean((V(s) - target)^2) (`purejaxpg.objectives.value_loss`), as algorithms whose
    policy moves by a closed-form step (NPG, TRPO, natural actor-critic) fit their critic.

    Args:
      data: ``{"obs": [B, *obs_shape], "target": [B]}``.
      key: shuffling key; lr: scalar (may be traced); num_epochs, num_minibatches: static counts.
    Returns:
      ``(critic_params, opt_state, mean value loss over the minibatch steps)``.
    """

    def loss_fn(params, minibatch):
        loss = objectives.value_loss(state.critic.apply(params, minibatch["obs"]), minibatch["target"])
        return loss, {"value_loss": loss}

    params, opt_state, metrics = minibatch_sgd(key, data, state.params["critic"], state.opt_state, loss_fn, tx, lr,
                                               num_epochs, num_minibatches)
    return params, opt_state, metrics["value_loss"]


def check_action_space(name: str, spec: envs.EnvSpec, discrete: bool | None) -> None:
    """Raise when an algorithm restricted to one kind of action space gets the other."""
    if discrete is None or spec.discrete == discrete:
        return
    want, got = ("discrete (Discrete)", "continuous (Box)") if discrete else ("continuous (Box)", "discrete (Discrete)")
    raise ConfigError(f"algorithm {name!r} supports only {want} actions, but env_id={spec.env_id!r} "
                      f"has {got} actions; pick another environment or algorithm.")
