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
#   purejaxpg:
#     requires_algorithms:
#     - grpo
# ---

# %% [markdown]
# # GRPO's groups, explained on gymnax environments
#
# Group relative policy optimisation (Shao et al. 2024, *DeepSeekMath*, sec. 4.1) drops the
# critic. For one prompt it samples a **group** of $G$ completions, scores each with a single
# return $R_i$, and gives every token of completion $i$ the group-relative advantage
#
# $$A_i = \frac{R_i - \operatorname{mean}(R_1, \dots, R_G)}{\operatorname{std}(R_1, \dots, R_G) + \varepsilon},$$
#
# then optimises PPO's clipped surrogate with a KL penalty to a reference policy. The group mean
# is the baseline: a completion is good if it beats its siblings **from the same prompt**.
#
# On a gymnax environment the "prompt" is the **start state**. Every iteration `purejaxpg`
# resets all $N$ environments so that each block of $G$ consecutive environments shares one reset
# key, hence one start state (`episode_group_size = G`, see `purejaxpg.train.Trainer.step`); the
# members then diverge through their own action and step keys. Each environment's first episode
# is scored against its group.
#
# This notebook shows the three pieces (shared start states, the group-standardised advantage,
# and what happens when a group's returns are equal), then trains GRPO (registry name `"grpo"`)
# on CartPole-v1. `PUREJAXPG_NOTEBOOK_BUDGET=small` (set by the tests) shrinks the training run to
# a smoke test.

# %%
import os
import pathlib
import sys

try:
    import purejaxpg  # noqa: F401
except ImportError:  # running from notebooks/ without the package installed
    sys.path.insert(0, str(pathlib.Path.cwd().parent))

# "small" (set by the tests) shrinks every budget to a smoke test; anything else runs the real one
SMALL = os.environ.get("PUREJAXPG_NOTEBOOK_BUDGET", "full") == "small"
print("budget:", "small (smoke test)" if SMALL else "full")

# %%
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from purejaxpg import envs, experiment, plotting, results, returns, rollout, train

# %matplotlib inline

OUT = pathlib.Path(tempfile.mkdtemp(prefix="purejaxpg-grpo-"))
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## 1. Shared start states
#
# `envs.reset(env, params, spec, key, num_envs=N, group_size=G)` splits `key` into $N/G$ group
# keys and gives each of the $G$ members of a group the same one. Here $N = 8$, $G = 4$ on
# Pendulum-v1, whose start state is a uniformly random angle and angular velocity, so the two
# groups start far apart while the members of each group start identically.
# (The observation is $(\cos\theta, \sin\theta, \dot\theta)$.)

# %%
N, G = 8, 4
env, env_params, spec = envs.make("Pendulum-v1")
loop = envs.reset(env, env_params, spec, jax.random.PRNGKey(0), N, group_size=G)
obs = np.asarray(loop.obs)
print(obs)
groups = obs.reshape(N // G, G, -1)
assert all(np.array_equal(g[0], member) for g in groups for member in g), "members of a group differ"
assert not np.array_equal(groups[0, 0], groups[1, 0]), "two groups share a start"
print("within each group: identical start states; between groups: different ones")

# %% [markdown]
# How different can start states be? CartPole-v1 starts every state variable uniformly in
# $[-0.05, 0.05]$, so every start is nearly the same and GRPO there is close to REINFORCE with a
# batch-mean baseline. Pendulum's random angle is where a per-start-state baseline matters: an
# episode that starts upright is worth far more than one that starts hanging down, whatever the
# policy does, and the group mean removes exactly that difference.

# %%
for env_id in ("CartPole-v1", "Pendulum-v1"):
    e, p, s = envs.make(env_id)
    starts = np.asarray(envs.reset(e, p, s, jax.random.PRNGKey(1), 1000).obs)
    print(f"{env_id:12s} start observations, per-dimension range over 1000 resets: "
          f"{np.round(starts.max(0) - starts.min(0), 3)}")

# %% [markdown]
# ## 2. The members diverge: different action and step keys
#
# `rollout.collect` gives every environment its own action and step randomness, so a group that
# starts from one state produces $G$ different episodes. A uniformly random policy on CartPole-v1
# with groups of $G = 4$ (each environment's **first** episode is the one that shares the start
# state; later ones start from auto-resets):

# %%
cart, cart_params, cart_spec = envs.make("CartPole-v1")
N, G, T = 16, 4, 500


def random_policy(obs, key):
    return jax.random.randint(key, (obs.shape[0],), 0, cart_spec.num_actions), {}


start = envs.reset(cart, cart_params, cart_spec, jax.random.PRNGKey(2), N, group_size=G)
_, batch = rollout.collect(rollout.stateless(random_policy), cart, cart_params, cart_spec, start, jax.random.PRNGKey(3), T)

# each env's first-episode return, with a plain NumPy loop: rewards up to and including the first done
reward, done = np.asarray(batch.reward), np.asarray(batch.done)
first_returns = np.array([reward[: np.argmax(done[:, n]) + 1, n].sum() if done[:, n].any() else reward[:, n].sum()
                          for n in range(N)])
by_group = first_returns.reshape(N // G, G)   # row = group, column = member
print("first-episode returns, one row per group:\n", by_group)

# %% [markdown]
# ## 3. Group-standardised advantages
#
# `purejaxpg.returns.group_standardize(R)` standardises along axis 0, the group axis
# (`[G, groups]`), with the population std: $A = (R - \bar R) / (\sigma_R + \varepsilon)$. Below it
# is checked against the formula in NumPy, and contrasted with standardising over the whole batch,
# which would compare episodes that started from different states.

# %%
R = jnp.asarray(by_group.T)                      # [G, groups]
A = np.asarray(returns.group_standardize(R))      # [G, groups]
reference = (by_group.T - by_group.T.mean(0)) / (by_group.T.std(0) + 1e-8)
np.testing.assert_allclose(A, reference, rtol=1e-5, atol=1e-6)
print("group-relative advantages, one row per group:\n", A.T)
print("per-group mean:", A.mean(0), " per-group std:", A.std(0))
print("batch-standardised instead (one baseline for all start states):\n",
      np.asarray(returns.standardize(R)).T)

# %% [markdown]
# ## 4. A group with equal returns gets zero advantages
#
# If every member of a group earns the same return, the group says nothing about which actions
# were better: $R_i - \bar R = 0$ for all $i$, and $A_i = 0 / (0 + \varepsilon) = 0$, exactly (the
# library shifts by a member before reducing, so no rounding noise and never $0/0$). On CartPole
# this happens as soon as the policy balances the pole for the full 500 steps from every start in a
# group: those groups stop contributing to the policy gradient. It also happens in a deterministic
# environment if the members shared their action keys too: $G$ identical episodes, std 0, $A = 0$,
# which is why only the **reset** key is shared.

# %%
R = jnp.array([[500.0, 12.0, 9.0],
               [500.0, 30.0, 9.0],
               [500.0, 18.0, 9.0],
               [500.0, 25.0, 9.0]])   # [G=4, 3 groups]; groups 0 and 2 have equal returns
A = np.asarray(returns.group_standardize(R))
print(A)
assert np.all(A[:, 0] == 0.0) and np.all(A[:, 2] == 0.0)
np.testing.assert_allclose(A[:, 1], (R[:, 1] - R[:, 1].mean()) / (R[:, 1].std() + 1e-8), rtol=1e-6)
print("groups of equal returns -> exactly zero advantages; the other group is standardised")

# %% [markdown]
# ## 5. GRPO on CartPole-v1
#
# The registry name is `"grpo"`; its CartPole preset (32 environments in groups of
# `episode_group_size = 8`, 500 steps per iteration so that a whole episode fits) is applied by
# `experiment.build`. GRPO logs the mean first-episode return of the batch (`group_return`) and
# `degenerate_groups`, the fraction of groups whose returns were all equal (zero advantages).
# Watch it rise as the policy learns to reach the time limit from every start.

# %%
SEEDS = 2 if SMALL else 3
if SMALL:
    overrides = dict(num_envs=8, episode_group_size=4, total_timesteps=8 * 500 * 2)
else:
    overrides = dict(total_timesteps=32 * 500 * 40)
algo, config, hparams = experiment.build("grpo", "CartPole-v1", overrides)
print(f"{config.num_envs} envs in groups of {algo.episode_group_size}, {config.num_steps} steps per iteration, "
      f"{config.num_iterations} iterations | {hparams}")

trainer = train.make_train(algo, config, hparams)
run = train.run_chunked(trainer, train.seed_keys(0, SEEDS), hparams)
finals = results.final_returns(run.metrics)
print(f"compiled in {run.compile_seconds:.1f} s, ran {run.steps_per_second:,.0f} env steps/s; "
      f"final return per seed {np.round(finals, 1)}")

# %%
display(Image(filename=plotting.learning_curves({"grpo": run.metrics}, str(OUT / "grpo.png"),
                                                 title="GRPO on CartPole-v1")))

m = run.metrics
fig, (ax_ret, ax_deg) = plt.subplots(1, 2, figsize=(11, 3.5))
for seed in range(SEEDS):
    ax_ret.plot(m["env_steps"][seed], m["group_return"][seed], label=f"seed {seed}")
    ax_deg.plot(m["env_steps"][seed], m["degenerate_groups"][seed], label=f"seed {seed}")
ax_ret.set(xlabel="environment steps", title="mean first-episode return (group_return)")
ax_deg.set(xlabel="environment steps", title="groups with equal returns (zero advantages)", ylim=(-0.05, 1.05))
for ax in (ax_ret, ax_deg):
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# When `degenerate_groups` reaches 1, every group balanced the pole for the whole episode:
# the policy-gradient term is exactly zero and only the KL penalty to the reference policy
# (`beta`, and the entropy bonus when `ent_coef > 0`) still moves the parameters. This is the environment analogue of a prompt that every
# completion solves: GRPO learns nothing more from it.
