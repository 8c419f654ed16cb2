"""Policies and critics as flax.linen modules.

A policy module maps observations ``[..., *obs_shape]`` to a distribution from
`purejaxpg.distributions` with the same leading batch shape; a critic maps them to ``[...]`` values.
Initialisation follows the PPO implementation details of Engstrom et al. (2020) and Huang et al.
(2022): orthogonal weights with gain sqrt(2) in hidden layers, 0.01 for the policy head and 1.0
for the value head, zero biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.distributions import Categorical, DiagGaussian
from purejaxpg.envs import EnvSpec

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
}

#: Bounds of the Gaussian log standard deviation (sigma in [6.7e-3, 7.4]).
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


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
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


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
                log_std_init: float = 0.0) -> nn.Module:
    """The policy module for an environment: categorical for Discrete, Gaussian for Box."""
    obs_ndim = len(spec.obs_shape)
    if spec.discrete:
        return CategoricalPolicy(spec.num_actions, obs_ndim, tuple(hidden), activation)
    return GaussianPolicy(spec.action_dim, obs_ndim, tuple(hidden), activation, log_std_init)


def make_critic(spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> nn.Module:
    """The state-value module for an environment."""
    return Critic(len(spec.obs_shape), tuple(hidden), activation)
