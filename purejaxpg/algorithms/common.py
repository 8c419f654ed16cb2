"""Pieces that several algorithms share: actor-critic state, critic targets, minibatch epochs, Adam.

Each is written once here so that an algorithm module shows only what is different about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from purejaxpg import chunking, envs, networks, returns, shuffle
from purejaxpg.config import ConfigError
from purejaxpg.rollout import Transition


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


def adam(max_grad_norm: jax.Array | float | None = None, eps: float = 1e-5) -> optax.GradientTransformation:
    """Adam direction, optionally after a *global-norm* gradient clip (not element-wise).

    The learning rate is applied by :func:`apply_updates` so that it can be a traced, annealed
    hyperparameter. ``max_grad_norm`` may be traced too: optax transformations are pure functions
    and their state does not depend on it.
    """
    parts = [optax.scale_by_adam(eps=eps)]
    if max_grad_norm is not None:
        parts.insert(0, optax.clip_by_global_norm(max_grad_norm))
    return optax.chain(*parts)


def global_norm(tree: Any) -> jax.Array:
    """sqrt of the sum of squares of every element of a pytree (the norm global-norm clipping uses)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def apply_updates(tx: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any, lr: jax.Array):
    """One optimiser step: params - lr * tx(grads). Returns (params, opt_state, grad_norm)."""
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
    return params, opt_state, global_norm(grads)


def init_actor_critic(key: jax.Array, spec: envs.EnvSpec, hidden: Sequence[int], activation: str,
                      log_std_init: float, tx: optax.GradientTransformation, with_critic: bool = True,
                      critic_hidden: Sequence[int] | None = None) -> ActorCriticState:
    """Initialise separate policy and critic MLPs and one optimiser state over both."""
    policy = networks.make_policy(spec, hidden, activation, log_std_init)
    critic = networks.make_critic(spec, critic_hidden or hidden, activation) if with_critic else None
    dummy = jnp.zeros((1,) + spec.obs_shape, jnp.float32)
    policy_key, critic_key = jax.random.split(key)
    params = {"policy": policy.init(policy_key, dummy),
              "critic": critic.init(critic_key, dummy) if with_critic else None}
    return ActorCriticState(params, tx.init(params), policy, critic, spec.max_episode_steps)


def sample_action(state: ActorCriticState, obs: jax.Array, key: jax.Array):
    """The ``act`` of every stochastic-policy algorithm: sample a ~ pi(.|obs), and keep log pi(a|s).

    ``obs [N, *obs_shape]`` -> ``(action [N] or [N, D], {"log_prob": [N]})``.
    """
    return sample_action_from_noise(state, obs, action_noise(state, obs, key))


def action_noise(state: ActorCriticState, obs: jax.Array, key: jax.Array) -> jax.Array:
    """The noise `sample_action` draws at ``obs`` (Gumbel ``[N, A]`` or normal ``[N, D]``), from
    ``key`` alone: only the shape of the policy's output is evaluated, not the policy."""
    return jax.eval_shape(state.dist, obs).sample_noise(key)


def sample_action_from_noise(state: ActorCriticState, obs: jax.Array, noise: jax.Array):
    """`sample_action` with its noise given (``dist.sample_from_noise``); same numbers for the same key."""
    dist = state.dist(obs)
    action = dist.sample_from_noise(noise)
    return action, {"log_prob": dist.log_prob(action)}


class SamplesActions:
    """Acting for algorithms whose policy is ``policy_state(learner_state).dist``: a mixin.

    ``act(learner_state, obs, key)`` samples; ``act_noise`` and ``act_from_noise`` split that into
    the random draw, which needs only ``key`` and the shape of ``obs``, and the deterministic
    rest. The trainer uses the split form: it draws the noise of a whole rollout before the loop
    (`purejaxpg.rollout.collect`'s ``act_noise``).
    """

    def policy_state(self, learner_state: Any) -> ActorCriticState:
        """The `ActorCriticState` holding the policy (the learner state itself unless overridden)."""
        return learner_state

    @property
    def act_is_split(self) -> bool:
        """True while ``act`` is this mixin's, i.e. ``act_from_noise(act_noise(...))``; a subclass
        that overrides ``act`` turns the split form off, so the trainer calls its ``act``."""
        return type(self).act is SamplesActions.act

    def act(self, learner_state: Any, obs: jax.Array, key: jax.Array):
        return sample_action(self.policy_state(learner_state), obs, key)

    def act_noise(self, learner_state: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        return action_noise(self.policy_state(learner_state), obs, key)

    def act_from_noise(self, learner_state: Any, obs: jax.Array, noise: jax.Array):
        return sample_action_from_noise(self.policy_state(learner_state), obs, noise)


def values_and_next_values(state: ActorCriticState, batch: Transition, params: dict | None = None,
                           max_rows: chunking.MaxRows = "auto"):
    """V(obs) and the bootstrap value of the true next observation, ``[T, N]`` each.

    ``next_values[t]`` is V(next_obs[t]) wherever the episode did not terminate at step t, and 0
    where it did (the value of a terminal state; the returns in `purejaxpg.returns` mask it out
    anyway).

    Inside an episode ``next_obs[t]`` is ``obs[t + 1]``, so the critic runs only on the ``T N``
    observations, the ``N`` observations after the last step and the final observations of the
    truncated steps before it (`truncation_budget` rows, gathered with a static size), instead of
    on all ``2 T N`` observations; the numbers are those of the critic on ``next_obs``
    (``tests/test_chunking.py`` checks it). Rows go through the critic at most ``max_rows`` at a
    time (`purejaxpg.chunking.map_rows`).
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
    out = chunking.map_rows(lambda obs: state.value(obs, params), rows, max_rows)
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


def check_minibatches(config, num_minibatches: int) -> None:
    """The batch of num_envs * num_steps samples must split evenly into minibatches."""
    if num_minibatches < 1 or config.batch_size % num_minibatches:
        raise ConfigError(
            f"num_minibatches={num_minibatches} does not divide the batch num_envs * num_steps = "
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
        perm = shuffle.permutation(epoch_key, batch_size)
        shuffled = jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1) + x.shape[1:]), data)
        return jax.lax.scan(step, state, shuffled)[0], None

    sums = jnp.zeros((metrics_def.num_leaves,), jnp.float32)
    (carry, sums), _ = jax.lax.scan(epoch, (carry, sums), jax.random.split(key, num_epochs))
    return carry, jax.tree.unflatten(metrics_def, list(sums / (num_epochs * num_minibatches)))


def annealed_lr(lr: jax.Array, progress: jax.Array, anneal: bool) -> jax.Array:
    """lr * (1 - progress) when annealing linearly to 0 over the run, else lr."""
    return lr * (1.0 - progress) if anneal else lr


def minibatch_sgd(key: jax.Array, data: Any, params: Any, opt_state: Any,
                  loss_fn: Callable[[Any, Any], tuple[jax.Array, dict]], num_epochs: int, num_minibatches: int,
                  lr: jax.Array, max_grad_norm: jax.Array | None, adam_eps: float):
    """Epochs of shuffled minibatch Adam steps on ``loss_fn(params, minibatch) -> (loss, metrics)``.

    The optimiser is :func:`adam` (global-norm clip, then Adam) with step ``lr``. Returns
    ``(params, opt_state, metrics averaged over all steps, with "grad_norm")``, both in the
    caller's layout.

    Inside the loop the parameters and Adam's moments are one flat vector each
    (``jax.flatten_util.ravel_pytree``): Adam and the norm clip are elementwise or global, so
    the arithmetic is the same, but each minibatch step runs one optimiser kernel instead of a
    few per parameter leaf. With small networks on CPU that per-kernel overhead, not FLOPs,
    was the larger part of the update (``benchmarks/ppo_cartpole.py``).
    """
    tx = adam(max_grad_norm, adam_eps)
    flat, unravel, flat_state, unravel_state = _flatten_params_and_state(params, opt_state)

    def step(carry, minibatch):
        flat, flat_state = carry
        grads, metrics = jax.grad(lambda f: loss_fn(unravel(f), minibatch), has_aux=True)(flat)
        flat, flat_state, grad_norm = apply_updates(tx, grads, flat_state, flat, lr)
        return (flat, flat_state), {**metrics, "grad_norm": grad_norm}

    (flat, flat_state), metrics = minibatch_epochs(key, data, (flat, flat_state), num_epochs, num_minibatches,
                                                   step)
    return unravel(flat), unravel_state(flat_state), metrics


def _flatten_params_and_state(params: Any, opt_state: Any):
    """``(flat_params, unravel, flat_opt_state, unravel_opt_state)``.

    The params-shaped subtrees of the optax state (Adam's mu and nu) are flattened like the
    parameters; the two ``unravel`` functions give back the caller's layouts. Parameters that
    are already one array are left as they are.
    """
    treedef = jax.tree.structure(params)
    if treedef.num_leaves <= 1:
        return params, (lambda x: x), opt_state, (lambda x: x)
    flat, unravel = ravel_pytree(params)

    def params_like(x):
        return jax.tree.structure(x) == treedef

    flat_state = jax.tree.map(lambda x: ravel_pytree(x)[0] if params_like(x) else x, opt_state, is_leaf=params_like)

    def unravel_state(flat_state):
        return jax.tree.map(lambda orig, f: unravel(f) if params_like(orig) else f, opt_state, flat_state,
                            is_leaf=params_like)

    return flat, unravel, flat_state, unravel_state


def check_action_space(name: str, spec: envs.EnvSpec, discrete: bool | None) -> None:
    """Raise when an algorithm restricted to one kind of action space gets the other."""
    if discrete is None or spec.discrete == discrete:
        return
    want, got = ("discrete (Discrete)", "continuous (Box)") if discrete else ("continuous (Box)", "discrete (Discrete)")
    raise ConfigError(f"algorithm {name!r} supports only {want} actions, but env_id={spec.env_id!r} "
                      f"has {got} actions; pick another environment or algorithm.")
