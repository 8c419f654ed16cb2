"""Action distributions as pytrees: categorical and diagonal Gaussian.

Both are immutable pytrees whose leaves are the distribution parameters, so they pass through
`jax.jit`, `jax.vmap`, `jax.grad`, `jax.jvp` and `jax.vjp` unchanged. Batch dimensions are any
leading dimensions (time-major rollouts give ``[T, N]``); the event dimension is last.

Every method is a closed form:

* ``Categorical(logits)``: p = softmax(logits).
  log_prob(a) = logits[a] - logsumexp(logits); entropy = -sum_a p_a log p_a;
  KL(p || q) = sum_a p_a (log p_a - log q_a).
* ``DiagGaussian(mean, log_std)``: independent normals over the last axis.
  log_prob(a) = -sum_i [ (a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi)/2 ];
  entropy = sum_i [ log sigma_i + (1 + log 2 pi)/2 ];
  KL(p || q) = sum_i [ log(sigma_q/sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2 ].

``fisher_matvec`` multiplies a tangent of the distribution parameters by the Fisher information
of the distribution in those same parameters (M in F = J^T M J, the Gauss-Newton form used by
`purejaxpg.natural.fisher_vector_product`).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    """Categorical distribution over ``A`` actions, parameterised by unnormalised logits.

    Attributes:
      logits: ``[..., A]`` float logits; any leading batch shape.
    """

    logits: jax.Array

    @property
    def log_probs_all(self) -> jax.Array:
        """``[..., A]`` normalised log-probabilities, logits - logsumexp(logits)."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    @property
    def probs(self) -> jax.Array:
        """``[..., A]`` probabilities softmax(logits)."""
        return jax.nn.softmax(self.logits, axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """log pi(a) for integer actions.

        Args:
          action: ``[...]`` integer actions with the batch shape of ``logits[..., 0]``.
        Returns:
          ``[...]`` log-probabilities.
        """
        chex.assert_equal_shape_prefix([self.logits, action], action.ndim)
        # a one-hot select rather than take_along_axis: same value, but its gradient is an
        # elementwise select instead of a scatter-add, which is several kernels per call on CPU
        chosen = action.astype(jnp.int32)[..., None] == jnp.arange(self.logits.shape[-1])
        return jnp.sum(jnp.where(chosen, self.log_probs_all, 0.0), axis=-1)

    def entropy(self) -> jax.Array:
        """``[...]`` entropy -sum_a p_a log p_a (0 log 0 taken as 0, also in the gradient)."""
        log_p = self.log_probs_all
        possible = log_p > -jnp.inf
        safe_log_p = jnp.where(possible, log_p, 0.0)  # masked (-inf) logits: no 0 * inf anywhere
        return -jnp.sum(jnp.where(possible, jnp.exp(safe_log_p) * safe_log_p, 0.0), axis=-1)

    def kl(self, other: "Categorical") -> jax.Array:
        """``[...]`` analytic KL(self || other) = sum_a p_a (log p_a - log q_a), 0 where p_a = 0."""
        chex.assert_equal_shape([self.logits, other.logits])
        log_p, log_q = self.log_probs_all, other.log_probs_all
        possible = log_p > -jnp.inf
        terms = jnp.exp(log_p) * (jnp.where(possible, log_p, 0.0) - jnp.where(possible, log_q, 0.0))
        return jnp.sum(jnp.where(possible, terms, 0.0), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """``[...]`` int32 actions drawn by the Gumbel-max trick: argmax_a (logits_a + g_a), g ~ Gumbel(0, 1).

        The same numbers as ``jax.random.categorical(key, logits)``.
        """
        return self.sample_from_noise(self.sample_noise(key))

    def sample_noise(self, key: jax.Array) -> jax.Array:
        """``[..., A]`` the standard Gumbel noise of `sample`. Reads only the logits' shape and dtype,
        so it also works on ``jax.eval_shape``'s abstract distribution (noise drawn ahead of a loop)."""
        return jax.random.gumbel(key, self.logits.shape, self.logits.dtype)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """``[...]`` int32 argmax_a (logits_a + noise_a): `sample` with its noise ``[..., A]`` given."""
        return jnp.argmax(self.logits + noise, axis=-1).astype(jnp.int32)

    def mode(self) -> jax.Array:
        """``[...]`` int32 most likely actions."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def fisher_matvec(self, tangent: "Categorical") -> "Categorical":
        """Fisher of the categorical in logit space times a logit tangent, per sample.

        M = diag(p) - p p^T (the Hessian of logsumexp), so M t = p * t - p (p . t).

        Args:
          tangent: a ``Categorical`` whose ``logits`` ``[..., A]`` is the tangent direction.
        Returns:
          a ``Categorical`` holding M t in ``logits``.
        """
        p = self.probs
        t = tangent.logits
        return Categorical(p * t - p * jnp.sum(p * t, axis=-1, keepdims=True))


@struct.dataclass
class DiagGaussian:
    """Multivariate normal with diagonal covariance, parameterised by mean and log std.

    Attributes:
      mean: ``[..., D]`` means.
      log_std: ``[..., D]`` log standard deviations, the same shape as ``mean`` (broadcast a
        state-independent ``[D]`` parameter with ``jnp.broadcast_to`` before building).
    """

    mean: jax.Array
    log_std: jax.Array

    @property
    def std(self) -> jax.Array:
        """``[..., D]`` standard deviations exp(log_std)."""
        return jnp.exp(self.log_std)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """``[...]`` log density of ``action`` ``[..., D]``, summed over the last axis."""
        chex.assert_equal_shape([self.mean, self.log_std, action])
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return -jnp.sum(0.5 * z**2 + self.log_std + 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        """``[...]`` differential entropy sum_i (log sigma_i + (1 + log 2 pi) / 2)."""
        return jnp.sum(self.log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def kl(self, other: "DiagGaussian") -> jax.Array:
        """``[...]`` analytic KL(self || other), summed over the last axis."""
        chex.assert_equal_shape([self.mean, other.mean, self.log_std, other.log_std])
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        return jnp.sum(0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """``[..., D]`` reparameterised sample mean + std * eps, eps ~ N(0, I)."""
        return self.sample_from_noise(self.sample_noise(key))

    def sample_noise(self, key: jax.Array) -> jax.Array:
        """``[..., D]`` the standard normal eps of `sample`. Reads only the mean's shape and dtype,
        so it also works on ``jax.eval_shape``'s abstract distribution (noise drawn ahead of a loop)."""
        return jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def sample_from_noise(self, noise: jax.Array) -> jax.Array:
        """``[..., D]`` mean + std * noise: `sample` with its eps ``[..., D]`` given."""
        return self.mean + self.std * noise

    def mode(self) -> jax.Array:
        """``[..., D]`` the mean."""
        return self.mean

    def fisher_matvec(self, tangent: "DiagGaussian") -> "DiagGaussian":
        """Fisher of the Gaussian in (mean, log_std) space times a tangent, per sample.

        The Fisher is block diagonal: 1/sigma^2 for each mean and 2 for each log std.
        """
        return DiagGaussian(tangent.mean * jnp.exp(-2.0 * self.log_std), 2.0 * tangent.log_std)


def tanh_log_det_jacobian(pre_tanh: jax.Array) -> jax.Array:
    """``[...]`` sum_i log(1 - tanh(u_i)^2) over the last axis, the log |det| of a = tanh(u)'s Jacobian.

    Computed as 2 (log 2 - u - softplus(-2u)), an identity that stays finite where tanh(u) rounds
    to +-1 (|u| > ~9 in float32), where log(1 - tanh(u)^2) is -inf.
    """
    return jnp.sum(2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log density of a = tanh(u), u ~ N(mean, diag(exp(log_std)^2)), by the change of variables
    (Haarnoja et al. 2018b, appendix C, eq. 21):

        log pi(a) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2)

    evaluated at the pre-squash ``u`` (:func:`tanh_log_det_jacobian`, stable as |a| -> 1).

    Args:
      pre_tanh: ``[..., D]`` u; mean, log_std: ``[..., D]``.
    Returns:
      ``[...]`` log-densities of a = tanh(u) in (-1, 1)^D.
    """
    return DiagGaussian(mean, log_std).log_prob(pre_tanh) - tanh_log_det_jacobian(pre_tanh)


@struct.dataclass
class TanhGaussian:
    """The tanh-squashed diagonal Gaussian of SAC: a = tanh(u), u ~ N(mean, diag(std^2)), a in (-1, 1)^D.

    Densities are those of a (:func:`tanh_gaussian_log_prob`); rescaling (-1, 1) to an env's
    bounds is left to the caller (log-probabilities and SAC's target entropy -|A| are both in the
    (-1, 1) space, as in Haarnoja et al.'s and Stable-Baselines3's implementations).

    Attributes:
      mean, log_std: ``[..., D]`` parameters of the Gaussian before the squash.
    """

    mean: jax.Array
    log_std: jax.Array

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A reparameterised sample a = tanh(mean + std * eps) ``[..., D]`` and log pi(a) ``[...]``,
        the log-density taken at u (exact, no atanh)."""
        u = DiagGaussian(self.mean, self.log_std).sample(key)
        return jnp.tanh(u), tanh_gaussian_log_prob(u, self.mean, self.log_std)

    def log_prob(self, action: jax.Array, eps: float = 1e-6) -> jax.Array:
        """``[...]`` log pi(a) of given actions ``[..., D]`` in [-1, 1]; u = atanh(clip(a, -1 + eps, 1 - eps)).

        Prefer `sample_and_log_prob` for the policy's own samples: float32 rounds tanh(u) to 1 for
        |u| > ~9, beyond which the clipped atanh cannot recover u.
        """
        u = jnp.arctanh(jnp.clip(action, -1.0 + eps, 1.0 - eps))
        return tanh_gaussian_log_prob(u, self.mean, self.log_std)

    def mode(self) -> jax.Array:
        """``[..., D]`` tanh(mean), the deterministic action used for evaluation."""
        return jnp.tanh(self.mean)


Distribution = Categorical | DiagGaussian


def gumbel_noise(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``shape`` standard Gumbel samples g = -log(-log u), u ~ U(0, 1) (clipped away from 0 and 1)."""
    u = jax.random.uniform(key, shape, jnp.float32, minval=1e-20, maxval=1.0)
    return -jnp.log(-jnp.log(u) + 1e-20)


def gumbel_softmax(logits: jax.Array, key: jax.Array, temperature=1.0, hard: bool = False) -> jax.Array:
    """A relaxed one-hot sample of Categorical(softmax(logits)) (Jang et al. 2017; Maddison et al. 2017).

    y = softmax((logits + g) / temperature) with g standard Gumbel noise (:func:`gumbel_noise` of
    ``key``): differentiable in ``logits``, and argmax(y) is an exact sample of the categorical
    (the Gumbel-max trick). ``hard=True`` returns one_hot(argmax y) in the forward pass with the
    gradient of y (straight-through). MADDPG's actors on discrete actions use it (Lowe et al. 2017,
    with temperature 1 and the soft sample).

    Args:
      logits: ``[..., K]`` unnormalised log-probabilities.
      key: PRNG key; temperature: > 0, scalar or broadcastable to ``logits[..., 0]`` (static hard).
    Returns:
      ``[..., K]`` points of the probability simplex.
    """
    y = jax.nn.softmax((logits + gumbel_noise(key, logits.shape)) / temperature, axis=-1)
    if not hard:
        return y
    one_hot = jax.nn.one_hot(jnp.argmax(y, axis=-1), logits.shape[-1], dtype=y.dtype)
    return one_hot + y - jax.lax.stop_gradient(y)
