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
#     - trpo
#     - npg
#     - ppo
# ---

# %% [markdown]
# # TRPO vs NPG vs PPO on CartPole-v1
#
# Three ways to keep a policy-gradient step from moving the policy too far, all trained here by
# the same training loop (`purejaxpg.train`), on the same environment, for the same number of
# environment steps, each with several seeds vmapped in one compiled call.
#
# With $r_\theta(a|s) = \pi_\theta(a|s) / \pi_{\theta_\text{old}}(a|s)$, advantages $\hat A$
# (GAE) and the surrogate $L(\theta) = \mathbb{E}[r_\theta \hat A]$, whose gradient at
# $\theta_\text{old}$ is the policy gradient $g$:
#
# * **NPG** (Kakade 2001; the normalised form of Spinning Up): solve $F x = g$ with conjugate
#   gradient, where $F$ is the Fisher information of the policy (never formed: only
#   Fisher-vector products $J^\top M J v$), and step
#   $\theta = \theta_\text{old} + \sqrt{2\delta / x^\top F x}\; x$, whose *quadratic model* of the
#   mean KL is exactly $\delta$ (`max_kl`).
# * **TRPO** (Schulman et al. 2015): the same step, then a backtracking line search over
#   $\theta_\text{old} + c^k s$ that accepts the first candidate whose *actual* mean
#   $\mathrm{KL}(\pi_\text{old} \| \pi_\theta) \le \delta$ and whose surrogate improves, and keeps
#   $\theta_\text{old}$ when none does. Here all candidates are evaluated at once with `vmap`.
# * **PPO-Clip** (Schulman et al. 2017): no trust region; several epochs of minibatch Adam on
#   $-\mathbb{E}[\min(r \hat A, \mathrm{clip}(r, 1-\epsilon, 1+\epsilon)\hat A)]$, which removes
#   the incentive to push $r$ outside $[1-\epsilon, 1+\epsilon]$.
#
# Each algorithm uses its CartPole preset (`purejaxpg.presets.PRESETS[name]["CartPole-v1"]`, from the literature);
# only the budget is overridden. `PUREJAXPG_NOTEBOOK_BUDGET=small` (set by the tests) shrinks
# everything to a smoke test.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display

from purejaxpg import experiment, plotting, results, train

# %matplotlib inline

OUT = pathlib.Path(tempfile.mkdtemp(prefix="purejaxpg-trpo-npg-ppo-"))
ALGOS = ("trpo", "npg", "ppo")
SEEDS = 2 if SMALL else 4
TOTAL = 150_000  # env steps per seed, the same for every algorithm
# the smoke test shrinks the batch too (TRPO's critic splits it into 8 minibatches, PPO into 4)
SMALL_OVERRIDES = dict(num_envs=4, num_steps=32, total_timesteps=4 * 32 * 2)

# %% [markdown]
# ## Settings
#
# `experiment.build(name, "CartPole-v1", overrides)` applies the algorithm's preset, then the
# overrides. The batch sizes differ between algorithms (a trust-region step wants a larger batch
# than one minibatch step of PPO), so the comparison is at equal **environment steps**.

# %%
setups = {}
for name in ALGOS:
    overrides = SMALL_OVERRIDES if SMALL else {"total_timesteps": TOTAL}
    algo, config, hparams = experiment.build(name, "CartPole-v1", overrides)
    setups[name] = (algo, config, hparams)
    print(f"{name:5s} {config.num_envs} envs x {config.num_steps} steps = batch {config.batch_size}, "
          f"{config.num_iterations} iterations | {hparams}")

# %% [markdown]
# ## Training
#
# One compiled call per algorithm trains all seeds (`train.run_chunked` vmaps the whole training
# run over the seed keys). Compilation is timed separately from running.

# %%
runs = {}
for name, (algo, config, hparams) in setups.items():
    trainer = train.make_train(algo, config, hparams)
    runs[name] = train.run_chunked(trainer, train.seed_keys(0, SEEDS), hparams)
    print(f"{name:5s} compiled in {runs[name].compile_seconds:5.1f} s, "
          f"ran {runs[name].run_seconds:5.1f} s ({runs[name].steps_per_second:,.0f} env steps/s)")

rows = []
for name, run in runs.items():
    finals = results.final_returns(run.metrics)
    stats = results.summarize(finals)
    rows.append({"algo": name, "final return (mean)": stats["mean"], "95% CI low": stats["ci95"][0],
                 "95% CI high": stats["ci95"][1], "worst seed": stats["worst"],
                 "env steps/s": run.steps_per_second, "compile s": run.compile_seconds})
pd.DataFrame(rows).set_index("algo").round(1)

# %% [markdown]
# ## Learning curves
#
# Mean over seeds of the trailing-window episode return against environment steps, with a 95%
# bootstrap band over seeds.

# %%
path = plotting.learning_curves({name: run.metrics for name, run in runs.items()},
                                str(OUT / "curves.png"), title="CartPole-v1")
display(Image(filename=path))

# %% [markdown]
# ## How far does each update move the policy?
#
# The KL between the policy before and after each update, per iteration (mean over seeds). TRPO
# and NPG log the exact mean $\mathrm{KL}(\pi_\text{old}\|\pi_\text{new})$ over the batch (`kl`);
# PPO logs the k3 estimate $\mathbb{E}[(r - 1) - \log r]$ averaged over its minibatch steps
# (`approx_kl`). The dashed line is TRPO's and NPG's $\delta$ (`max_kl`).
#
# TRPO never exceeds $\delta$: the line search rejects any candidate that does. NPG takes its
# step unchecked, so its actual KL is only *approximately* $\delta$ (the quadratic model is exact
# only for small steps); PPO has no explicit bound at all.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, run in runs.items():
    key = "kl" if "kl" in run.metrics else "approx_kl"
    ax.plot(run.metrics["env_steps"][0], run.metrics[key].mean(axis=0), label=f"{name} ({key})")
delta = float(setups["trpo"][2].max_kl)
ax.axhline(delta, color="gray", ls="--", lw=1, label=f"max_kl = {delta}")
ax.set(xlabel="environment steps", ylabel="KL per update", yscale="log", title="policy change per iteration")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

for name in ("trpo", "npg"):
    kl = runs[name].metrics["kl"]
    print(f"{name}: max KL over all iterations and seeds {kl.max():.4f} (delta {delta}); "
          f"iterations above delta: {(kl > delta * (1 + 1e-4)).mean():.1%}")

# %% [markdown]
# ## TRPO's line search
#
# `backtrack_index` is the accepted $k$ (the step was shrunk by $c^k$; $-1$ when none
# qualified), `line_search_failed` is 1 when no candidate qualified and $\theta_\text{old}$ was
# kept.

# %%
m = runs["trpo"].metrics
accepted = m["backtrack_index"][m["backtrack_index"] >= 0]
print(f"line search failed in {m['line_search_failed'].mean():.1%} of iterations; "
      f"accepted k: mean {accepted.mean() if accepted.size else float('nan'):.2f}, max {accepted.max() if accepted.size else -1}")
fig, ax = plt.subplots(figsize=(7, 3))
for seed in range(SEEDS):
    ax.plot(m["env_steps"][seed], m["backtrack_index"][seed], ".", alpha=0.6, label=f"seed {seed}")
ax.set(xlabel="environment steps", ylabel="accepted k", title="TRPO backtracking steps")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## What to take from it
#
# Read the table and the curves above for this budget and these seeds; with a handful of seeds
# the bootstrap intervals are wide, so look at the worst seed as well as the mean. To compare the
# methods properly, raise `SEEDS` (they are vmapped, so more seeds cost little more wall time on
# a vector machine) and sweep each method's own step-size knob (`max_kl` for TRPO/NPG, `lr` and
# `clip_eps` for PPO) with `purejaxpg.sweep.run`.
