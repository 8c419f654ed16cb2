"""Sweeps: grid / random configurations, one vmapped call equal to separate runs, tables, summaries."""

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from purejaxpg import experiment, results, sweep, train
from purejaxpg.config import ConfigError

TINY = dict(total_timesteps=4 * 32 * 5, num_envs=4, num_steps=32, num_epochs=1, num_minibatches=2, hidden=(16, 16))
GRID = {"lr": [1e-4, 2e-3], "clip_eps": [0.1, 0.3]}
SEEDS = 2


@pytest.fixture(scope="module")
def grid_sweep():
    return sweep.run("ppo", "CartPole-v1", GRID, seeds=SEEDS, overrides=TINY, seed=3, chunk_iterations=2)


# ---------------------------------------------------------------------------------------------
# configurations (no training)
# ---------------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_last_name_fastest():
    configs = sweep.grid_configs({"lr": [1e-4, 1e-3], "clip_eps": [0.1, 0.2, 0.3]})
    expected = [(1e-4, 0.1), (1e-4, 0.2), (1e-4, 0.3), (1e-3, 0.1), (1e-3, 0.2), (1e-3, 0.3)]
    assert [(c["lr"], c["clip_eps"]) for c in configs] == expected
    assert sweep.grid_configs({"gamma": 0.9}) == [{"gamma": 0.9}]  # a scalar is a one-value grid
    with pytest.raises(ConfigError, match="clip_eps"):
        sweep.grid_configs({"lr": [1e-3], "clip_eps": []})


def test_random_configs_fixed_seed_ranges_and_loguniform_law():
    space = {"lr": ("loguniform", 1e-5, 1e-1), "clip_eps": "uniform:0.1:0.3"}
    configs = sweep.random_configs(space, 4000, seed=7)
    assert configs == sweep.random_configs(space, 4000, seed=7)
    assert configs != sweep.random_configs(space, 4000, seed=8)
    lr = np.array([c["lr"] for c in configs])
    clip = np.array([c["clip_eps"] for c in configs])
    assert lr.min() >= 1e-5 * (1 - 1e-6) and lr.max() <= 1e-1 * (1 + 1e-6)
    assert clip.min() >= 0.1 - 1e-7 and clip.max() <= 0.3 + 1e-7
    # values are exactly float32, the precision the runs use
    np.testing.assert_array_equal(lr, lr.astype(np.float32).astype(np.float64))
    # log10(lr) ~ U[-5, -1]: each of the 4 decades holds ~1/4 of the samples; clip_eps ~ U[0.1, 0.3]
    decades = np.histogram(np.log10(lr), bins=[-5, -4, -3, -2, -1])[0] / lr.size
    np.testing.assert_allclose(decades, 0.25, atol=0.03)
    np.testing.assert_allclose(np.quantile(clip, [0.25, 0.5, 0.75]), [0.15, 0.2, 0.25], atol=0.01)


@pytest.mark.parametrize("bad, message", [
    ({"lr": "gauss:1:2"}, "gauss"),
    ({"lr": "loguniform:0:1"}, "0 < low"),
    ({"lr": "uniform:2:1"}, "low=2"),
    ({"lr": "loguniform:1e-4"}, "KIND:LOW:HIGH"),
])
def test_bad_distributions_are_named(bad, message):
    with pytest.raises(ConfigError, match=message):
        sweep.random_configs(bad, 3)


@pytest.mark.parametrize("name, kind", [("num_epochs", "PPO"), ("num_envs", "TrainConfig"), ("hidden", "PPO"),
                                        ("anneal_lr", "PPO")])
def test_static_setting_in_grid_is_refused_before_compiling(name, kind):
    with pytest.raises(ConfigError, match=rf"'{name}' is a static setting of ppo \({kind}.*separate compile"):
        sweep.run("ppo", "CartPole-v1", {name: [1, 2]}, seeds=1, overrides=TINY)


def test_unknown_swept_name_suggests_close_ones():
    with pytest.raises(ConfigError, match="'clip_eps'"):
        sweep.run("ppo", "CartPole-v1", {"clip_epsilon": [0.1]}, seeds=1, overrides=TINY)


def test_swept_value_out_of_range_and_conflicting_override():
    with pytest.raises(ConfigError, match="gamma=1.5"):
        sweep.run("ppo", "CartPole-v1", {"gamma": [0.9, 1.5]}, seeds=1, overrides=TINY)
    with pytest.raises(ConfigError, match="'lr' is both swept and in overrides"):
        sweep.run("ppo", "CartPole-v1", {"lr": [1e-3]}, seeds=1, overrides={**TINY, "lr": 1e-3})


# ---------------------------------------------------------------------------------------------
# one compiled sweep
# ---------------------------------------------------------------------------------------------


def test_sweep_run_equals_a_separate_run_of_that_config_and_seed(grid_sweep):
    """Config c, seed s of the vmapped sweep == training config c alone on seed s's key."""
    c, s = 2, 1  # lr=2e-3, clip_eps=0.1; a wrong config or seed mapping gives other numbers
    assert grid_sweep.configs[c] == {"lr": 2e-3, "clip_eps": 0.1}
    algo, config, hparams = experiment.build("ppo", "CartPole-v1", {**TINY, **grid_sweep.configs[c]})
    alone = train.run_chunked(train.make_train(algo, config, hparams), train.seed_keys(3, SEEDS)[s:s + 1], hparams)
    # vmapped and single runs differ only by float reassociation; policy_loss is a near-cancelling
    # mean of normalised advantages (~1e-4), so it gets an absolute tolerance
    for name, tol in (("episode_return", dict(rtol=1e-5)), ("value_loss", dict(rtol=1e-4)),
                      ("policy_loss", dict(atol=1e-6)), ("lr", dict(rtol=1e-7))):
        np.testing.assert_allclose(grid_sweep.metrics[name][c, s], alone.metrics[name][0], err_msg=name, **tol)
    # and every config ran with its own values: PPO logs the annealed lr = lr * (1 - progress)
    lr0 = grid_sweep.metrics["lr"][:, :, 0]
    np.testing.assert_allclose(lr0, np.repeat([[1e-4], [1e-4], [2e-3], [2e-3]], SEEDS, axis=1), rtol=1e-6)
    # the same seed in two configs shares its key: identical first rollout, so identical first returns
    first = grid_sweep.metrics["episode_return"][:, :, 0]
    np.testing.assert_array_equal(first, np.broadcast_to(first[0], first.shape))


def test_tidy_table_has_one_row_per_config_seed_iteration(grid_sweep):
    table, iters = grid_sweep.table, TINY["total_timesteps"] // (4 * 32)
    assert len(table) == 4 * SEEDS * iters
    assert list(table.columns[:5]) == ["config", "seed", "iteration", "lr", "clip_eps"]
    assert {"episode_return", "episodes", "env_steps", "lr_metric"} <= set(table.columns)
    assert not table.duplicated(["config", "seed", "iteration"]).any()
    per_config = table.groupby("config")[["lr", "clip_eps"]].nunique()
    assert (per_config == 1).all().all()  # hyperparameter columns are constant within a config
    row = table[(table.config == 3) & (table.seed == 1) & (table.iteration == 2)].iloc[0]
    assert (row.lr, row.clip_eps) == (2e-3, 0.3)
    assert row.episode_return == pytest.approx(grid_sweep.metrics["episode_return"][3, 1, 2], nan_ok=True)


def test_summary_from_the_tidy_table(grid_sweep):
    """Recompute each config's final return from the CSV-shaped table with pandas, independently."""
    table, summary = grid_sweep.table, grid_sweep.summary
    iters = table.iteration.max() + 1
    last = table[table.iteration >= iters - max(1, round(iters * 0.1))]
    weighted = last.assign(total=last.episode_return.fillna(0) * last.episodes)
    per_seed = weighted.groupby(["config", "seed"]).apply(lambda g: g.total.sum() / g.episodes.sum(),
                                                          include_groups=False).unstack()
    np.testing.assert_allclose(summary.final_return_mean, per_seed.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(summary.final_return_worst, per_seed.min(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(summary.worst_seed, per_seed.values.argmin(axis=1))
    assert (summary.ci95_low <= summary.final_return_mean).all() and (summary.final_return_mean <= summary.ci95_high).all()
    assert list(summary.columns[:3]) == ["config", "lr", "clip_eps"]
    best = int(np.argmax(per_seed.mean(axis=1).values))
    assert grid_sweep.best["config"] == best
    assert grid_sweep.best["lr"] == grid_sweep.configs[best]["lr"]


def test_best_config_ties_and_nan():
    summary = pd.DataFrame({"config": [0, 1, 2], "lr": [1.0, 2.0, 3.0], "final_return_mean": [5.0, np.nan, 5.0],
                            "final_return_worst": [1.0, np.nan, 4.0], "worst_seed": [0, -1, 1], "num_seeds": [2] * 3})
    assert sweep.best_config(summary)["config"] == 2  # tie on the mean: the better worst seed
    assert sweep.best_config(summary.assign(final_return_mean=np.nan)) is None


def test_summarize_configs_against_hand_numbers():
    finals = np.array([[10.0, 20.0, 30.0], [5.0, np.nan, 1.0]])
    summary = sweep.summarize_configs([{"lr": 1.0}, {"lr": 2.0}], finals)
    np.testing.assert_allclose(summary.final_return_mean, [20.0, 3.0])
    np.testing.assert_allclose(summary.final_return_worst, [10.0, 1.0])
    np.testing.assert_array_equal(summary.worst_seed, [0, 2])
    low, high = results.bootstrap_ci(finals[0])
    assert (summary.ci95_low[0], summary.ci95_high[0]) == (low, high)


def test_save_writes_csvs_json_and_plot(grid_sweep, tmp_path):
    paths = grid_sweep.save(str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == ["config.json", "results.csv", "summary.csv",
                                                          "summary.json", "sweep.png"]
    back = pd.read_csv(tmp_path / "results.csv")
    assert back.shape == grid_sweep.table.shape and list(back.columns) == list(grid_sweep.table.columns)
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 4
    assert os.path.getsize(tmp_path / "sweep.png") > 1000
    grid_sweep.plot(str(tmp_path / "swapped.png"), x="clip_eps", lines="lr")
    with pytest.raises(ConfigError, match="gamma"):
        grid_sweep.plot(str(tmp_path / "bad.png"), x="gamma")


def test_random_search_runs_the_drawn_configs(monkeypatch):
    """random_search = run_configs on random_configs(space, n, search_seed); the engine is tested above
    and end to end through the CLI (tests/test_cli.py)."""
    seen = {}
    monkeypatch.setattr(sweep, "run_configs", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    space = {"lr": "loguniform:1e-4:1e-2", "ent_coef": ("uniform", 0.0, 0.02)}
    sweep.random_search("ppo", "CartPole-v1", space, num_samples=3, seeds=2, overrides=TINY, seed=4, search_seed=5)
    assert seen["args"][:4] == ("ppo", "CartPole-v1", sweep.random_configs(space, 3, seed=5), 2)
    assert seen["args"][5] == 4 and seen["kwargs"]["kind"] == "random"
    with pytest.raises(ConfigError, match="'num_steps' is a static setting"):
        sweep.random_search("ppo", "CartPole-v1", {"num_steps": "uniform:1:2"}, num_samples=2)


def test_random_search_plot_has_one_line_sorted_by_x(grid_sweep, tmp_path):
    as_random = dataclasses.replace(grid_sweep, kind="random")
    assert os.path.getsize(as_random.plot(str(tmp_path / "random.png"))) > 1000
    with pytest.raises(ConfigError, match="random search"):
        as_random.plot(str(tmp_path / "bad.png"), x="lr", lines="clip_eps")
