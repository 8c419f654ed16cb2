"""Feature maps phi(s) and phi(s, a) for linear policies (textbook experiments).

A *linear* policy is a policy network with no hidden layer on top of fixed features:

* linear softmax: pi(a|s) = softmax_a(W phi(s) + b), i.e. logits_a = theta . phi(s, a) with
  phi(s, a) = e_a (x) [phi(s), 1] (Sutton & Barto 2018, sec. 13.7; the score is
  grad log pi(a|s) = phi(s, a) - E_{b~pi}[phi(s, b)]);
* linear Gaussian: pi(.|s) = N(W phi(s) + b, diag(sigma^2)) with a state-independent log std
  (score of the mean parameters: (a - mu(s)) phi(s) / sigma^2).

In `purejaxpg.networks` these are ``CategoricalPolicy(hidden=())`` and ``GaussianPolicy(hidden=())``
(linear in the raw observation). This module adds fixed, parameter-free feature maps in front of
them (flax modules ``[..., *obs_shape] -> [..., F]``):

* :class:`PolynomialFeatures`: all monomials of the observation up to a degree;
* :class:`FourierBasis`: cos(pi c . x) over a box, c in {0..order}^d (Konidaris et al. 2011);
* :class:`RandomFourierFeatures`: sqrt(2/F) cos(W x / bandwidth + b) (Rahimi & Recht 2007);
* :class:`RBFFeatures`: Gaussian bumps on a grid of centres;
* :class:`StateAggregation`: one-hot of the grid cell the observation falls in;

and :class:`StateActionLinearSoftmax`, a linear softmax over state-action features phi(s, a)
(``[..., A, F]``, e.g. :class:`OneHotActionFeatures`).

How to plug features in
-----------------------
* Any algorithm with a ``features`` static setting (NPG, TRPO, NAC): pass the module, e.g.
  ``TRPO(hidden=(), features=RBFFeatures.grid(low, high, 5, width=0.5))``; the policy becomes
  ``head(phi(obs))`` with the usual linear head, the critic keeps the raw observation.
* Any other algorithm built on `purejaxpg.algorithms.common.ActorCriticState`: wrap its state after
  ``init`` with :func:`featurize` (``tx`` re-initialises an optimiser over both networks).
* Your own code: ``Featurized(features, networks.CategoricalPolicy(A, 1, hidden=()))`` is a flax
  module like any policy.

The maps hold no trainable parameters (random projections are drawn from a static ``seed`` inside
``__call__``, a constant under ``jit``), so the policy's parameters are exactly the linear head's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from purejaxpg.distributions import Categorical

__all__ = [
    "Featurized",
    "FourierBasis",
    "OneHotActionFeatures",
    "PolynomialFeatures",
    "RBFFeatures",
    "RandomFourierFeatures",
    "StateActionLinearSoftmax",
    "StateAggregation",
    "featurize",
]


def _flat(obs: jax.Array, obs_ndim: int) -> jax.Array:
    """``[..., *obs_shape] -> [..., d]`` float32."""
    return obs.reshape(obs.shape[: obs.ndim - obs_ndim] + (-1,)).astype(jnp.float32)


def _unit_box(x: jax.Array, low: Sequence[float], high: Sequence[float]) -> jax.Array:
    """Scale ``[..., d]`` into [0, 1]^d by the box [low, high] (clipped)."""
    low_a, high_a = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    return jnp.clip((x - low_a) / (high_a - low_a), 0.0, 1.0)


class PolynomialFeatures(nn.Module):
    """All monomials prod_i x_i^{k_i} with 1 <= sum_i k_i <= degree of the flattened observation.

    ``[..., *obs_shape] -> [..., C(d + degree, degree) - 1]`` (the constant 1 is left out: the linear
    head has a bias; ``include_bias=True`` adds it first).
    """

    degree: int = 2
    obs_ndim: int = 1
    include_bias: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flat(obs, self.obs_ndim)
        terms = [jnp.ones_like(x[..., 0])] if self.include_bias else []
        for k in range(1, self.degree + 1):
            for idx in itertools.combinations_with_replacement(range(x.shape[-1]), k):
                terms.append(jnp.prod(x[..., list(idx)], axis=-1))
        return jnp.stack(terms, axis=-1)


class FourierBasis(nn.Module):
    """Fourier basis cos(pi c . u), u = the observation scaled into [0, 1]^d by [low, high],
    c in {0, ..., order}^d (Konidaris, Osentoski & Thomas 2011): ``[..., (order + 1)^d]``."""

    order: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        u = _unit_box(_flat(obs, self.obs_ndim), self.low, self.high)
        coefs = np.array(list(itertools.product(range(self.order + 1), repeat=len(self.low))), np.float32)
        return jnp.cos(math.pi * u @ coefs.T)


class RandomFourierFeatures(nn.Module):
    """Random Fourier features of the Gaussian kernel exp(-||x - y||^2 / (2 bandwidth^2)):
    sqrt(2 / F) cos(W x / bandwidth + b), W ~ N(0, I), b ~ U[0, 2 pi) drawn from the static
    ``seed`` (Rahimi & Recht 2007): ``[..., num_features]``; phi(x).phi(y) ~ the kernel."""

    num_features: int
    bandwidth: float = 1.0
    seed: int = 0
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flat(obs, self.obs_ndim)
        w_key, b_key = jax.random.split(jax.random.PRNGKey(self.seed))
        w = jax.random.normal(w_key, (x.shape[-1], self.num_features))
        b = jax.random.uniform(b_key, (self.num_features,), maxval=2.0 * math.pi)
        return math.sqrt(2.0 / self.num_features) * jnp.cos(x @ w / self.bandwidth + b)


class RBFFeatures(nn.Module):
    """Gaussian radial basis functions exp(-||x - c_j||^2 / (2 width^2)) at fixed centres:
    ``[..., J]`` for ``centers`` a tuple of J points (use :meth:`grid` for a regular grid)."""

    centers: tuple[tuple[float, ...], ...]
    width: float = 1.0
    obs_ndim: int = 1

    @staticmethod
    def grid(low: Sequence[float], high: Sequence[float], num_per_dim: int, width: float,
             obs_ndim: int = 1) -> "RBFFeatures":
        """Centres on the regular grid of ``num_per_dim`` points per dimension of [low, high]."""
        axes = [np.linspace(lo, hi, num_per_dim) for lo, hi in zip(low, high)]
        centers = tuple(tuple(float(v) for v in point) for point in itertools.product(*axes))
        return RBFFeatures(centers, width, obs_ndim)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flat(obs, self.obs_ndim)
        c = jnp.asarray(self.centers, jnp.float32)
        sq = jnp.sum((x[..., None, :] - c) ** 2, axis=-1)
        return jnp.exp(-0.5 * sq / self.width**2)


class StateAggregation(nn.Module):
    """One-hot of the grid cell of the observation: [low, high] split into ``bins`` cells per
    dimension (values outside are clipped into the edge cells): ``[..., bins^d]``.

    With it a linear policy is tabular over the aggregated states.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    bins: int
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        u = _unit_box(_flat(obs, self.obs_ndim), self.low, self.high)
        cell = jnp.clip(jnp.floor(u * self.bins).astype(jnp.int32), 0, self.bins - 1)
        strides = self.bins ** np.arange(len(self.low) - 1, -1, -1)
        index = jnp.sum(cell * jnp.asarray(strides, jnp.int32), axis=-1)
        return jax.nn.one_hot(index, self.bins ** len(self.low), dtype=jnp.float32)


class Featurized(nn.Module):
    """``head(features(obs))``: a policy or critic ``head`` (built for flat ``[..., F]`` inputs,
    i.e. ``obs_ndim=1``) on top of a feature map ``[..., *obs_shape] -> [..., F]``."""

    features: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(self, obs: jax.Array):
        return self.head(self.features(obs))


def featurize(state, features: nn.Module, key: jax.Array, spec, tx=None, critic: bool = False):
    """Put ``features`` in front of the policy (and optionally the critic) of an actor-critic state.

    The policy module becomes ``Featurized(features, policy.clone(obs_ndim=1))`` with freshly
    initialised parameters (the head's input size is F).

    Args:
      state: a `purejaxpg.algorithms.common.ActorCriticState`.
      features: a feature module ``[..., *spec.obs_shape] -> [..., F]``.
      key: PRNG key for the new parameters.
      spec: the environment's `purejaxpg.envs.EnvSpec`.
      tx: optimiser to re-initialise ``opt_state`` over all params (None: leave it to the caller).
      critic: featurize the critic too (a linear critic when it was built with ``hidden=()``).
    Returns:
      the new state.
    """
    dummy = jnp.zeros((1,) + tuple(spec.obs_shape), jnp.float32)
    policy_key, critic_key = jax.random.split(key)
    policy = Featurized(features, state.policy.clone(obs_ndim=1))
    params = {**state.params, "policy": policy.init(policy_key, dummy)}
    critic_module = state.critic
    if critic and state.critic is not None:
        critic_module = Featurized(features, state.critic.clone(obs_ndim=1))
        params["critic"] = critic_module.init(critic_key, dummy)
    opt_state = tx.init(params) if tx is not None else state.opt_state
    return state.replace(params=params, policy=policy, critic=critic_module, opt_state=opt_state)


class OneHotActionFeatures(nn.Module):
    """State-action features phi(s, a) = e_a (x) [x(s), 1] (``[..., A, A (d + 1)]``): with them
    :class:`StateActionLinearSoftmax` is exactly the linear softmax ``CategoricalPolicy(hidden=())``
    (a weight matrix and a bias per action)."""

    num_actions: int
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = _flat(obs, self.obs_ndim)
        x = jnp.concatenate([x, jnp.ones_like(x[..., :1])], axis=-1)  # [..., d + 1]
        eye = jnp.eye(self.num_actions, dtype=x.dtype)  # [A, A]
        return (eye[:, :, None] * x[..., None, None, :]).reshape(x.shape[:-1] + (self.num_actions, -1))


class StateActionLinearSoftmax(nn.Module):
    """Linear softmax over state-action features: pi(a|s) = exp(theta . phi(s,a)) / sum_b exp(theta . phi(s,b)).

    ``state_action_features`` maps ``[..., *obs_shape] -> [..., A, F]``; the only parameter is
    ``theta`` ``[F]`` (initialised to zero: the uniform policy). Score:
    grad_theta log pi(a|s) = phi(s, a) - sum_b pi(b|s) phi(s, b) (Sutton & Barto 2018, eq. 13.9).
    """

    state_action_features: nn.Module

    @nn.compact
    def __call__(self, obs: jax.Array) -> Categorical:
        phi = self.state_action_features(obs)
        theta = self.param("theta", nn.initializers.zeros, (phi.shape[-1],))
        return Categorical(phi @ theta)
