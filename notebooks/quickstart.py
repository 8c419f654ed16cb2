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
#     - ppo
# ---

# %% [markdown]
# # purejaxpg quickstart
#
# `purejaxpg` is a functional JAX library of policy-gradient methods. Every algorithm is the same
# small protocol (`init`, `act`, `update`), and one training skeleton turns
# `rollout + update` into a single `jax.jit`-compiled `lax.scan` over iterations, vmapped over
# seeds and over hyperparameter settings.
#
# In this notebook:
#
# 1. build a run from a name, an environment id and a few overrides;
# 2. train PPO on `CartPole-v1` with several seeds in **one** compiled call;
# 3. plot the learning curve (mean over seeds with a 95% bootstrap band) and look at the tidy table;
# 4. sweep the learning rate and the clip range, configurations x seeds in one compiled call,
#    and plot the final return against the learning rate.
#
# It runs on a CPU in a few minutes. The tests run it with `PUREJAXPG_NOTEBOOK_BUDGET=small`,
# which shrinks every budget to a smoke test (the numbers are then meaningless).

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
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from purejaxpg import experiment, plotting, results, sweep, train
from purejaxpg.config import ConfigError

# %matplotlib inline

OUT = pathlib.Path(tempfile.mkdtemp(prefix="purejaxpg-quickstart-"))  # PNGs go here
print("jax", jax.__version__, "on", jax.devices())

# %% [markdown]
# ## 1. Settings: static, dynamic, presets
#
# `experiment.build(algo_name, env_id, overrides)` returns three frozen dataclasses:
#
# * `config` (`TrainConfig`): the run's **static** settings: `num_envs` N, `num_steps` T per
#   iteration (one batch is `[T, N]`), `total_timesteps`;
# * `algo` (here `PPO`): the algorithm's **static** settings (epochs, minibatches, network sizes).
#   Static settings fix shapes or loop counts, so changing one recompiles;
# * `hparams` (`PPOHParams`): the **dynamic** hyperparameters (learning rate, discount, GAE
#   lambda, clip range, ...). They are arrays passed to the compiled function, so a grid of them
#   is a `jax.vmap`, not a recompile.
#
# Every field declares its valid range, and a bad value fails here, before anything compiles,
# with a message that names it. Per-environment presets from the literature
# (`purejaxpg.presets.PRESETS`) are applied before the overrides; CartPole uses the classic config (4 envs x 128 steps,
# 4 epochs x 4 minibatches, lr 2.5e-4 annealed, clip 0.2).

# %%
TOTAL = 4 * 128 * 4 if SMALL else 200_000   # env steps per seed
SEEDS = 2 if SMALL else 4

algo, config, hparams = experiment.build("ppo", "CartPole-v1", {"total_timesteps": TOTAL})
print(config)
print(algo)
print(hparams)
print(f"{config.num_iterations} iterations of {config.batch_size} steps per seed")

try:
    experiment.build("ppo", "CartPole-v1", {"clip_eps": -0.2})
except ConfigError as err:
    print("\nConfigError:", err)

# %% [markdown]
# ## 2. Train several seeds in one compiled call
#
# `train.make_train` validates everything and returns a `Trainer` of pure functions
# (`init(key, hparams)`, `step`, `run`, `train`). `train.run_chunked` vmaps them over R runs
# (`seed_keys(seed, R)`: run i uses `fold_in(PRNGKey(seed), i)`) and calls the compiled chunk of
# iterations from the host; between chunks it can print progress and write checkpoints. A run
# split into chunks gives bit-identical numbers to one call.
#
# `metrics` is `{name: [R, I]}`: one value per run and iteration. `episode_return` is the mean
# return of the episodes that ended in that iteration (NaN when none did, `episodes` counts them).

# %%
trainer = train.make_train(algo, config, hparams)
run = train.run_chunked(trainer, train.seed_keys(0, SEEDS), hparams)

print(f"compiled in {run.compile_seconds:.1f} s, ran {run.steps_per_second:,.0f} env steps/s")
print({name: values.shape for name, values in run.metrics.items()})
finals = results.final_returns(run.metrics)   # mean return over the last 10% of iterations, per seed
print("final return per seed:", np.round(finals, 1))
print("summary:", results.summarize(finals))

# %% [markdown]
# ## 3. Learning curve and the tidy table
#
# `plotting.learning_curves` writes a PNG: the trailing-window mean return over env steps, mean
# over seeds, with a 95% percentile-bootstrap band. `results.tidy` turns the metrics into one row
# per run and iteration (a pandas DataFrame, ready for `to_csv` or seaborn).

# %%
path = plotting.learning_curves({"ppo": run.metrics}, str(OUT / "ppo_cartpole.png"), title="PPO on CartPole-v1")
display(Image(filename=path))

table = results.tidy(run.metrics, {"seed": np.arange(SEEDS)})
table[["run", "seed", "iteration", "env_steps", "episode_return", "episodes", "approx_kl", "clip_fraction"]].tail()

# %% [markdown]
# The metrics are plain arrays, so any other plot is a few lines of matplotlib; here PPO's
# approximate KL between the old and the new policy per iteration (the k3 estimator) and the
# fraction of clipped ratios:

# %%
steps = run.metrics["env_steps"][0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for name, ax in zip(("approx_kl", "clip_fraction"), axes):
    for seed in range(SEEDS):
        ax.plot(steps, run.metrics[name][seed], alpha=0.7, label=f"seed {seed}")
    ax.set(xlabel="environment steps", title=name)
    ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. A sweep: configurations x seeds in one compiled call
#
# `sweep.run` takes a grid of **dynamic** hyperparameters, flattens configurations x seeds into
# R runs and trains them all in one vmapped call. Seed s has the same key in every configuration
# (the configurations are compared on the same seeds). It returns a tidy table (one row per
# configuration, seed and iteration, with the hyperparameter values as columns), a summary per
# configuration (mean final return, 95% bootstrap interval, worst seed) and the best
# configuration. `sweep.random_search` does the same for random draws
# (`{"lr": ("loguniform", 1e-4, 1e-2)}`).

# %%
SWEEP_TOTAL = 4 * 128 * 4 if SMALL else 100_000
grid = {"lr": [1e-4, 1e-3] if SMALL else [1e-4, 3e-4, 1e-3, 3e-3], "clip_eps": [0.2] if SMALL else [0.1, 0.2, 0.3]}
result = sweep.run("ppo", "CartPole-v1", grid, seeds=SEEDS, overrides={"total_timesteps": SWEEP_TOTAL})

num_runs = len(result.configs) * len(result.seeds)
print(f"{len(result.configs)} configurations x {len(result.seeds)} seeds = {num_runs} runs; "
      f"compiled in {result.compile_seconds:.1f} s, ran {result.steps_per_second:,.0f} env steps/s")
print("best:", {k: round(v, 4) for k, v in result.best.items()} if result.best else None)
result.summary.sort_values("final_return_mean", ascending=False)

# %%
display(Image(filename=result.plot(str(OUT / "sweep.png"), x="lr", lines="clip_eps")))
result.table.head()

# %% [markdown]
# A static setting cannot be part of one vmapped sweep: it changes shapes or loop counts, so
# each value needs its own compile. The sweep refuses it before compiling and says what to do:

# %%
try:
    sweep.run("ppo", "CartPole-v1", {"num_epochs": [2, 4]}, seeds=2)
except ConfigError as err:
    print("ConfigError:", err)

# %% [markdown]
# ## The same from the command line
#
# ```bash
# python -m purejaxpg train --algo ppo --env CartPole-v1 --seeds 4 --total-timesteps 200000 --out runs/ppo
# python -m purejaxpg train --algo ppo --seeds 4 --out runs/ppo --checkpoint-every 5   # resumable
# python -m purejaxpg train --resume runs/ppo                                          # continue it
# python -m purejaxpg sweep --algo ppo --grid lr=1e-4,3e-4,1e-3 --grid clip_eps=0.1,0.2 --seeds 4 --out runs/s
# python -m purejaxpg sweep --algo ppo --random lr=loguniform:1e-4:1e-2 --samples 8 --seeds 4 --out runs/r
# ```
#
# `train` writes `config.json`, `metrics.csv`, `summary.json` and `learning_curve.png`; `sweep`
# writes `results.csv` (tidy), `summary.csv`, `summary.json`, `config.json` and `sweep.png`.
