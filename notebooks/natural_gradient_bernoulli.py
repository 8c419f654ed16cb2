# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: purejaxpg,kernelspec
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Natural gradient on a Bernoulli policy (lecture notes, Example 4.6.1)
#
# A one-step problem with two actions. The policy is Bernoulli with a single logit $\theta$:
#
# $$\pi_\theta(1) = \sigma(\theta) = \frac{1}{1 + e^{-\theta}}, \qquad \pi_\theta(0) = 1 - \sigma(\theta),$$
#
# and action 1 pays 100, action 0 pays 1, so
#
# $$J(\theta) = 100\,\pi_\theta(1) + 1\,\pi_\theta(0) = 1 + 99\,\sigma(\theta).$$
#
# **Vanilla gradient.** $\nabla_\theta J = 99\,\sigma(\theta)\,(1 - \sigma(\theta))$. It is largest
# ($99/4$) at $\theta = 0$ and vanishes exponentially, like $99\,e^{-|\theta|}$, as $|\theta|$ grows.
# Starting from a bad policy ($\theta = -5$, $\pi(1) \approx 0.7\%$) gradient ascent crawls: the
# policy is nearly deterministic, so the gradient is nearly zero even though $J$ is far from optimal.
#
# **Fisher information.** The score is $\partial_\theta \log \pi_\theta(a) = a - \sigma(\theta)$, so
#
# $$F(\theta) = \mathbb{E}_{a \sim \pi_\theta}\big[(a - \sigma)^2\big] = \sigma(\theta)\,(1 - \sigma(\theta)).$$
#
# **Natural gradient.** $F^{-1} \nabla_\theta J = 99$ for every $\theta$: the natural gradient
# measures progress per unit of KL between successive policies, not per unit of parameter, and
# the factor $\sigma(1-\sigma)$ that kills the vanilla gradient cancels. The natural step
# $\theta \leftarrow \theta + \eta F^{-1}\nabla J$ raises $\theta$ by exactly $99\eta$ at every
# iteration.
#
# Below we compute everything with the library: the policy is
# `purejaxpg.distributions.Categorical(logits=[0, theta])` (softmax of $[0, \theta]$ is exactly
# the Bernoulli above), the Fisher-vector product is `purejaxpg.natural.make_fisher_vector_product`
# (the Gauss-Newton product $J^\top M J v$, i.e. the Hessian of
# $\mathrm{KL}(\mathrm{sg}(\pi_\theta)\,\|\,\pi_\theta)$) and $F^{-1}\nabla J$ comes from the
# library's conjugate gradient, `purejaxpg.natural.natural_gradient_direction`.

# %%
import pathlib
import sys

try:
    import purejaxpg  # noqa: F401
except ImportError:  # running from notebooks/ without the package installed
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from purejaxpg.distributions import Categorical
from purejaxpg.natural import make_fisher_vector_product, natural_gradient_direction

# %matplotlib inline

# %% [markdown]
# ## The policy, the objective, the gradient and the natural gradient
#
# `natural_direction(theta)` builds the Fisher-vector product at $\theta$ (no damping), then runs
# CG on $F x = \nabla J$. The problem is one-dimensional, so CG is exact after one iteration.

# %%
def policy(theta):
    """Bernoulli policy as a two-action categorical: logits [0, theta], pi(1) = sigmoid(theta)."""
    return Categorical(logits=jnp.stack([jnp.zeros_like(theta), theta]))


def objective(theta):
    """J(theta) = 100 pi(1) + 1 pi(0)."""
    p = policy(theta).probs
    return 100.0 * p[1] + 1.0 * p[0]


def vanilla_direction(theta):
    return jax.grad(objective)(theta)


def natural_direction(theta):
    grad = jax.grad(objective)(theta)
    fvp = make_fisher_vector_product(policy, theta, 0.0)
    direction, _ = natural_gradient_direction(grad, fvp, cg_iters=2)
    return direction


def fisher(theta):
    return make_fisher_vector_product(policy, theta, 0.0)(jnp.ones_like(theta))


thetas = jnp.array([-5.0, -2.0, 0.0, 2.0, 5.0])
sig = jax.nn.sigmoid(thetas)
table = {
    "theta": thetas,
    "grad J (autodiff)": jax.vmap(vanilla_direction)(thetas),
    "99 s(1-s)": 99 * sig * (1 - sig),
    "Fisher (library FVP)": jax.vmap(fisher)(thetas),
    "s(1-s)": sig * (1 - sig),
    "F^-1 grad J (library CG)": jax.jit(jax.vmap(natural_direction))(thetas),
}
print("".join(f"{name:>26}" for name in table))
for row in zip(*table.values()):
    print("".join(f"{float(x):26.6f}" for x in row))

# %% [markdown]
# ## Gradient ascent from $\theta_0 = -5$
#
# Both runs use the same learning rate $\eta$; the natural run's step is $\eta F^{-1}\nabla J$.
# Each trajectory is one jitted `lax.scan`.

# %%
ETA = 0.005
NUM_ITERS = 30
THETA0 = jnp.asarray(-5.0)


def ascend(direction_fn, theta0, eta, num_iters):
    def step(theta, _):
        new_theta = theta + eta * direction_fn(theta)
        return new_theta, new_theta

    _, path = jax.lax.scan(step, theta0, None, length=num_iters)
    return jnp.concatenate([theta0[None], path])


run = jax.jit(ascend, static_argnums=(0, 3))
theta_vanilla = run(vanilla_direction, THETA0, ETA, NUM_ITERS)
theta_natural = run(natural_direction, THETA0, ETA, NUM_ITERS)
J_vanilla = jax.vmap(objective)(theta_vanilla)
J_natural = jax.vmap(objective)(theta_natural)

steps = np.diff(np.asarray(theta_natural))
print(f"natural step per iteration: min {steps.min():.6f}, max {steps.max():.6f}, 99*eta = {99 * ETA}")
print(f"after {NUM_ITERS} iterations: vanilla theta = {float(theta_vanilla[-1]):.4f}, J = {float(J_vanilla[-1]):.3f}")
print(f"after {NUM_ITERS} iterations: natural theta = {float(theta_natural[-1]):.4f}, J = {float(J_natural[-1]):.3f}")

# %%
it = np.arange(NUM_ITERS + 1)
fig, (ax_theta, ax_J) = plt.subplots(1, 2, figsize=(11, 4))
ax_theta.plot(it, theta_vanilla, "o-", ms=3, label="vanilla: $\\theta + \\eta \\nabla J$")
ax_theta.plot(it, theta_natural, "s-", ms=3, label="natural: $\\theta + \\eta F^{-1} \\nabla J$")
ax_theta.set(xlabel="iteration", ylabel="$\\theta$", title=f"$\\theta$ from $\\theta_0 = -5$, $\\eta = {ETA}$")
ax_J.plot(it, J_vanilla, "o-", ms=3, label="vanilla")
ax_J.plot(it, J_natural, "s-", ms=3, label="natural")
ax_J.axhline(100.0, color="gray", ls=":", lw=1)
ax_J.set(xlabel="iteration", ylabel="$J(\\theta)$", title="$J = 100\\,\\pi(1) + \\pi(0)$")
for ax in (ax_theta, ax_J):
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## How long does the vanilla gradient need?
#
# Near $\theta = -5$ the vanilla update is $\eta \cdot 99\,\sigma(1-\sigma) \approx 0.0033$ per
# iteration, so vanilla ascent needs hundreds of iterations just to reach $\theta = 0$ (the
# continuous-time estimate is $\int_{-5}^{0} d\theta / (99\eta\,\sigma(1-\sigma)) \approx 300$).
# The natural gradient needs $5 / (99\eta) \approx 10$.
#
# (The natural steps printed above deviate from $99\eta$ only in the fourth digit, at large
# $\theta$: there $1 - \sigma(\theta)$ is computed in float32 from $\sigma \approx 1$ and loses
# relative precision. In exact arithmetic the ratio is exactly 99.)

# %%
LONG = 2000
theta_long = np.asarray(run(vanilla_direction, THETA0, ETA, LONG))
for target in (0.0, 5.0):
    first_v = int(np.argmax(theta_long >= target)) if (theta_long >= target).any() else None
    first_n = int(np.argmax(np.asarray(theta_natural) >= target))
    print(f"first iteration with theta >= {target}: vanilla {first_v}, natural {first_n}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(LONG + 1), theta_long, label="vanilla")
ax.plot(it, theta_natural, label="natural")
ax.set(xscale="symlog", xlabel="iteration (symlog)", ylabel="$\\theta$", title="reaching a good policy")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
