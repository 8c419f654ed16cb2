"""Policies and critics as flax.linen modules.

A policy module maps observations ``[..., *obs_shape]`` to a distribution from
`purejaxpg.distributions` with the same leading batch shape; a critic maps them to ``[...]`` values.
Initialisation follows the PPO implementation details of Engstrom et al. (2020) and Huang et al.
(2022): orthogonal weights with gain sqrt(2) in hidden layers, 0.01 for the policy head and 1.0
for the value head, zero biases.

The orthogonal initialiser is our own (:func:`orthogonal`): flax's calls jaxlib's LAPACK QR,
whose batched CPU kernel deadlocked when two vmapped QRs ran at once on a 2-thread pool (see
the function's docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.distributions import Categorical, DiagGaussian, TanhGaussian
from purejaxpg.envs import EnvSpec

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
}

#: Bounds of the Gaussian log standard deviation (sigma in [6.7e-3, 7.4]).
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def _orthonormal_columns(a: jax.Array) -> jax.Array:
    """Q of the QR decomposition ``a = Q R`` with ``diag(R) > 0``, for ``a`` of shape ``[m, n]``, m >= n.

    Classical Gram-Schmidt with re-orthogonalisation ("CGS2"; Giraud et al. 2005): column j is
    projected off the j finished columns twice, then normalised. The columns not yet computed are
    zero, so ``q @ (q.T @ v)`` projects onto exactly the finished ones. Twice is enough for
    orthogonality to working precision. Positive ``diag(R)`` is the sign convention that makes Q of
    a Gaussian matrix Haar-distributed (Mezzadri 2007), the same Q as flax's initialiser.
    """

    def column(j, q):
        v = jax.lax.dynamic_index_in_dim(a, j, axis=1, keepdims=False)
        for _ in range(2):
            v = v - q @ (q.T @ v)
        v = v / jnp.sqrt(jnp.sum(v * v))
        return jax.lax.dynamic_update_index_in_dim(q, v, j, axis=1)

    return jax.lax.fori_loop(0, a.shape[1], column, jnp.zeros_like(a))


def orthogonal(scale: float = 1.0) -> Callable:
    """Orthogonal initialiser (Saxe et al. 2014), a drop-in for ``flax.linen.initializers.orthogonal``.

    For a kernel of shape ``[..., n_out]`` with ``n_in = prod(shape[:-1])``: draw a Gaussian
    matrix of shape ``[max, min]`` of (n_in, n_out), take Q of its QR decomposition with positive
    ``diag(R)`` (transposed when n_in < n_out), multiply by ``scale``. Same key, same Gaussian
    draw and the same Q as flax's initialiser up to float rounding (tested).

    Why not flax's: it calls jaxlib's LAPACK ``geqrf`` custom call. Under ``vmap`` over seeds that
    kernel splits the batch over XLA's intra-op thread pool and blocks until the pieces finish;
    on a 2-core machine, two such QRs (one per layer) started at once on the pool's two threads
    and each waited forever for work queued behind the other (seen in CI, stacks in
    ``jax::ParallelBatchMap``). Gram-Schmidt in a ``fori_loop`` uses no custom call.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        n_in, n_out = math.prod(shape[:-1]), shape[-1]
        tall = n_in >= n_out
        gaussian = jax.random.normal(key, (n_in, n_out) if tall else (n_out, n_in), jnp.float32)
        q = _orthonormal_columns(gaussian)
        q = q if tall else q.T
        return (scale * q).reshape(tuple(shape)).astype(dtype)

    return init


def _flatten_obs(obs: jax.Array, obs_ndim: int) -> jax.Array:
    """``[..., *obs_shape] -> [..., prod(obs_shape)]``."""
    batch_shape = obs.shape[: obs.ndim - obs_ndim]
    return obs.reshape(batch_shape + (-1,)).astype(jnp.float32)


class MLP(nn.Module):
    """Dense layers with an activation between them and a linear output of ``out_dim`` units."""

    hidden: Sequence[int]
    out_dim: int
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out_dim, kernel_init=orthogonal(self.out_scale))(x)


class CategoricalPolicy(nn.Module):
    """MLP logits -> ``Categorical``. ``hidden=()`` gives a linear-softmax policy in the inputs."""

    num_actions: int
    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> Categorical:
        x = _flatten_obs(obs, self.obs_ndim)
        return Categorical(MLP(self.hidden, self.num_actions, self.activation, 0.01)(x))


class GaussianPolicy(nn.Module):
    """MLP mean and a state-independent log std parameter -> ``DiagGaussian``.

    The log std is clipped to [LOG_STD_MIN, LOG_STD_MAX] so that it cannot run away.
    """

    action_dim: int
    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> DiagGaussian:
        x = _flatten_obs(obs, self.obs_ndim)
        mean = MLP(self.hidden, self.action_dim, self.activation, 0.01)(x)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
        return DiagGaussian(mean, jnp.broadcast_to(log_std, mean.shape))


class GSDEPolicy(nn.Module):
    """Gaussian policy with generalized state-dependent exploration (gSDE; Raffin et al. 2022, sec. 3).

    With phi(s) ``[F]`` the last hidden layer (``F = hidden[-1]``, or the flattened observation
    for ``hidden=()``) and a ``[F, D]`` parameter log sigma, exploration adds phi(s)^T W to the
    mean, W_ij ~ N(0, sigma_ij^2) drawn per environment and held for several steps, so that the
    noise is a smooth function of the state instead of white noise. Given s, the action is then
    Gaussian with independent coordinates of variance

        sigma_j(s)^2 = sum_i phi_i(s)^2 sigma_ij^2 (+ 1e-6),

    which is the ``DiagGaussian`` this module returns for log-probabilities, entropies and KLs.
    As in Stable-Baselines3 (``learn_features=False``), the variance sees phi(s) through a
    ``stop_gradient``: the exploration scale is learnt by sigma alone.

    ``__call__(obs) -> DiagGaussian``; ``__call__(obs, noise)`` with ``noise [..., F, D] ~ N(0, 1)``
    returns ``(dist, mean + phi^T (sigma * noise))``, a sample under the exploration matrix sigma * noise.
    """

    action_dim: int
    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = -2.0

    @nn.compact
    def __call__(self, obs: jax.Array, noise: jax.Array | None = None):
        phi = _flatten_obs(obs, self.obs_ndim)
        for width in self.hidden:
            phi = ACTIVATIONS[self.activation](nn.Dense(width, kernel_init=orthogonal(np.sqrt(2.0)))(phi))
        mean = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01))(phi)
        log_sigma = self.param("log_std", nn.initializers.constant(self.log_std_init),
                               (phi.shape[-1], self.action_dim))
        sigma = jnp.exp(jnp.clip(log_sigma, LOG_STD_MIN, LOG_STD_MAX))
        fixed_phi = jax.lax.stop_gradient(phi)
        dist = DiagGaussian(mean, 0.5 * jnp.log(jnp.square(fixed_phi) @ jnp.square(sigma) + 1e-6))
        if noise is None:
            return dist
        return dist, mean + jnp.einsum("...f,...fd->...d", fixed_phi, sigma * noise)


class Critic(nn.Module):
    """MLP state-value function V(s): ``[..., *obs_shape] -> [...]``."""

    obs_ndim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flatten_obs(obs, self.obs_ndim)
        return MLP(self.hidden, 1, self.activation, 1.0)(x)[..., 0]


def make_policy(spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                log_std_init: float = 0.0, use_sde: bool = False) -> nn.Module:
    """The policy module for an environment: categorical for Discrete, Gaussian for Box
    (`GSDEPolicy` with ``use_sde``)."""
    obs_ndim = len(spec.obs_shape)
    if spec.discrete:
        return CategoricalPolicy(spec.num_actions, obs_ndim, tuple(hidden), activation)
    if use_sde:
        return GSDEPolicy(spec.action_dim, obs_ndim, tuple(hidden), activation, log_std_init)
    return GaussianPolicy(spec.action_dim, obs_ndim, tuple(hidden), activation, log_std_init)


def make_critic(spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> nn.Module:
    """The state-value module for an environment."""
    return Critic(len(spec.obs_shape), tuple(hidden), activation)


# ---------------------------------------------------------------------------------------------
# Off-policy actor-critics: actions live in [-1, 1]^D (the algorithm rescales to the env's bounds)


class DeterministicActor(nn.Module):
    """mu(s) = tanh(MLP(s)) in [-1, 1]^D, the deterministic policy of DDPG and TD3.

    The output layer starts small (gain 0.01), as Lillicrap et al. (2016) initialise it near 0.
    """

    action_dim: int
    obs_ndim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flatten_obs(obs, self.obs_ndim)
        return jnp.tanh(MLP(self.hidden, self.action_dim, self.activation, 0.01)(x))


class TanhGaussianActor(nn.Module):
    """SAC's policy: an MLP with two heads, mean and state-dependent log std (clipped to
    [LOG_STD_MIN, LOG_STD_MAX]) -> `purejaxpg.distributions.TanhGaussian` over [-1, 1]^D."""

    action_dim: int
    obs_ndim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> TanhGaussian:
        x = _flatten_obs(obs, self.obs_ndim)
        out = MLP(self.hidden, 2 * self.action_dim, self.activation, 0.01)(x)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return TanhGaussian(mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))


class QCritic(nn.Module):
    """Action-value function Q(s, a) = MLP([s, a]): ``([..., *obs_shape], [..., D]) -> [...]``.

    An ensemble of K critics is K parameter sets of this module, initialised and applied with
    ``jax.vmap`` (`purejaxpg.algorithms.offpolicy`), one batched matrix product per layer.
    """

    obs_ndim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([_flatten_obs(obs, self.obs_ndim), action.astype(jnp.float32)], axis=-1)
        return MLP(self.hidden, 1, self.activation, 1.0)(x)[..., 0]


class ActionValueCritic(nn.Module):
    """MLP action-value function Q(s, a).

    Discrete (``num_actions > 0``): ``obs [..., *obs_shape] -> [..., A]``, one output per action
    (``action`` is ignored). Continuous (``num_actions == 0``): ``(obs, action [..., D]) -> [...]``
    on concat(obs, action). Orthogonal init with gain 1.0 on the output layer, as the V critic.
    """

    obs_ndim: int
    num_actions: int = 0
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
        x = _flatten_obs(obs, self.obs_ndim)
        if self.num_actions:
            return MLP(self.hidden, self.num_actions, self.activation, 1.0)(x)
        x = jnp.concatenate([x, action.astype(x.dtype)], axis=-1)
        return MLP(self.hidden, 1, self.activation, 1.0)(x)[..., 0]


class CategoricalQCritic(nn.Module):
    """Distributional action-value: logits of Z(s, a) over ``num_atoms`` fixed atoms (C51, Bellemare
    et al. 2017; D4PG's critic, Barth-Maron et al. 2018): ``([..., *obs_shape], [..., D]) -> [..., num_atoms]``.

    P(Z = z_i) = softmax(logits)_i; Q(s, a) = sum_i P(Z = z_i) z_i. The output layer starts small
    (gain 0.01), so the initial distribution is near uniform over the support.
    """

    obs_ndim: int
    num_atoms: int = 51
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([_flatten_obs(obs, self.obs_ndim), action.astype(jnp.float32)], axis=-1)
        return MLP(self.hidden, self.num_atoms, self.activation, 0.01)(x)


class PerAgentMLP(nn.Module):
    """A separate `MLP` (own parameters) for each of A agents, as one batched module (``nn.vmap``
    over stacked parameters ``[A, ...]``).

    ``shared_input=False``: ``[..., A, F] -> [..., A, out_dim]``, agent i's MLP on row i.
    ``shared_input=True``: ``[..., F] -> [..., A, out_dim]``, every agent's MLP on the same input
    (MADDPG's centralised critics all read the joint observation and action).
    """

    num_agents: int
    out_dim: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "relu"
    out_scale: float = 1.0
    shared_input: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        stacked = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=None if self.shared_input else -2, out_axes=-2, axis_size=self.num_agents)
        return stacked(self.hidden, self.out_dim, self.activation, self.out_scale)(x.astype(jnp.float32))


class MultiAgentActor(nn.Module):
    """Decentralised actors: agent i's logits from its own observation only,
    ``[..., A, obs_dim] -> [..., A, num_actions]`` (MADDPG's mu_i(o_i))."""

    num_agents: int
    num_actions: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return PerAgentMLP(self.num_agents, self.num_actions, self.hidden, self.activation, 0.01)(obs)


class MultiAgentQCritic(nn.Module):
    """One Q-function per agent, ``(obs [..., A, obs_dim], action [..., A, K]) -> [..., A]``.

    ``centralised=True``: Q_i(x, a_1, ..., a_A) reads every agent's observation and action (MADDPG,
    Lowe et al. 2017); ``False``: Q_i(o_i, a_i) reads agent i's own (independent DDPG learners).
    """

    num_agents: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "relu"
    centralised: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        obs, action = obs.astype(jnp.float32), action.astype(jnp.float32)
        if self.centralised:
            batch = obs.shape[:-2]
            x = jnp.concatenate([obs.reshape(batch + (-1,)), action.reshape(batch + (-1,))], axis=-1)
        else:
            x = jnp.concatenate([obs, action], axis=-1)
        return PerAgentMLP(self.num_agents, 1, self.hidden, self.activation, 1.0, self.centralised)(x)[..., 0]
