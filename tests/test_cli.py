"""The command line, run in-process with tiny budgets: output files and columns, checkpoint/resume,
sweeps, and exit status 2 with a message naming the setting for bad input."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from purejaxpg.__main__ import main

# 6 iterations of 4 envs x 32 steps, in chunks of 2 iterations
TINY = ["--env", "CartPole-v1", "--total-timesteps", str(4 * 32 * 6), "--num-envs", "4", "--num-steps", "32",
        "--num-epochs", "1", "--num-minibatches", "2", "--hidden", "16,16", "--chunk-iterations", "2"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("a")
    assert main(["train", "--algo", "ppo", "--seeds", "2", "--seed", "5", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_config_metrics_summary_plot_and_final_state(uninterrupted):
    out = uninterrupted
    assert sorted(os.listdir(out)) == ["checkpoints", "config.json", "learning_curve.png", "metrics.csv", "summary.json"]
    assert os.listdir(out / "checkpoints") == ["ckpt-000000006.msgpack"]  # the final state, for eval/render/resume
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:2]) == ["iteration", "seed"] or list(metrics.columns[:2]) == ["seed", "iteration"]
    assert {"seed", "iteration", "env_steps", "episode_return", "episodes", "policy_loss"} <= set(metrics.columns)
    assert len(metrics) == 2 * 6 and sorted(metrics.seed.unique()) == [0, 1]
    np.testing.assert_array_equal(metrics[metrics.seed == 0].env_steps, 128 * np.arange(1, 7))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["final_return_per_seed"]) == 2 and summary["steps_per_second"] > 0
    assert summary["env_steps_per_seed"] == 4 * 32 * 6
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "ppo" and config["train"]["num_envs"] == 4 and config["algo_settings"]["hidden"] == [16, 16]
    assert config["seeds"] == 2 and config["seed"] == 5 and "checkpoint_every" not in config
    assert os.path.getsize(out / "learning_curve.png") > 1000


def test_config_file_flags_override_and_print_config_reads_back(tmp_path, capsys):
    """A YAML file with the flags' names (either spelling, config.json's sections too); flags win;
    --print-config's output is itself a config file that gives the same settings."""
    path = tmp_path / "run.yaml"
    path.write_text("algo: ppo\nenv: Acrobot-v1\nseeds: 3\nnum-envs: 8\nhparams:\n  lr: 1.0e-3\n"
                    "hidden: [32, 32]\nanneal_lr: false\ntotal_timesteps: 1e5\n")
    assert main(["train", "--config", str(path), "--lr", "5e-4", "--print-config"]) == 0
    printed = capsys.readouterr().out
    import yaml

    settings = yaml.safe_load(printed)
    assert settings["algo"] == "ppo" and settings["env"] == "Acrobot-v1" and settings["seeds"] == 3
    assert settings["num_envs"] == 8 and settings["hidden"] == [32, 32] and settings["anneal_lr"] is False
    assert settings["total_timesteps"] == 100_000 and settings["lr"] == pytest.approx(5e-4)  # the flag won
    assert settings["gamma"] == pytest.approx(0.99) and "clip_eps" in settings  # every setting is shown
    again = tmp_path / "printed.yaml"
    again.write_text(printed)
    assert main(["train", "--config", str(again), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert sorted(os.listdir(tmp_path)) == ["printed.yaml", "run.yaml"]


@pytest.mark.parametrize("text, named", [("lrr: 1e-3\n", "'lrr' is not a setting"),
                                         ("num_envs: many\n", "num_envs='many'"),
                                         ("- lr\n", "mapping")])
def test_bad_config_files_exit_2_naming_the_problem(text, named, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 2
    assert named in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_quiet_run_logs_to_tensorboard(uninterrupted, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["train", "--algo", "ppo", "--seeds", "2", "--seed", "5", "--out", str(out), *TINY,
                 "--quiet", "--log", "tensorboard", "--no-checkpoint"]) == 0
    printed = capsys.readouterr().out
    assert "iter " not in printed and "final return" in printed
    assert sorted(os.listdir(out / "tensorboard")) == ["run_0", "run_1"] and "checkpoints" not in os.listdir(out)
    assert (out / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()
    assert main(["train", "--algo", "ppo", *TINY, "--log", "tensorboard"]) == 2  # --log needs --out


def test_stopped_then_resumed_run_writes_the_same_metrics_csv(uninterrupted, tmp_path, capsys):
    out = tmp_path / "b"
    args = ["train", "--algo", "ppo", "--seeds", "2", "--seed", "5", "--out", str(out), *TINY]
    assert main([*args, "--checkpoint-every", "1", "--stop-after-chunks", "2"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["checkpoints", "config.json"]  # no results of a stopped run
    assert sorted(os.listdir(out / "checkpoints")) == ["ckpt-000000002.msgpack", "ckpt-000000004.msgpack"]
    assert main(["train", "--resume", str(out)]) == 0
    assert "resuming ppo on CartPole-v1" in capsys.readouterr().out
    assert (out / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()
    resumed, whole = (json.loads((d / "summary.json").read_text()) for d in (out, uninterrupted))
    assert resumed["final_return_per_seed"] == whole["final_return_per_seed"]
    config = json.loads((out / "config.json").read_text())
    assert config["resumed_from_iterations"] == [4] and config["checkpoint_every"] == 1
    # the finished run's final state is the newest checkpoint; resuming a finished run changes nothing
    assert sorted(os.listdir(out / "checkpoints"))[-1] == "ckpt-000000006.msgpack"
    assert main(["train", "--resume", str(out)]) == 0
    assert (out / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()


def test_sweep_grid_writes_tidy_results_summary_and_plot(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "--algo", "ppo", "--grid", "lr=1e-4,1e-3", "--grid", "clip-eps=0.1,0.2", "--seeds", "2",
                 "--out", str(out), *TINY])
    assert code == 0
    assert "best: config" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["config.json", "results.csv", "summary.csv", "summary.json", "sweep.png"]
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns[:5]) == ["config", "seed", "iteration", "lr", "clip_eps"]
    assert len(table) == 4 * 2 * 6
    pairs = table.groupby("config")[["lr", "clip_eps"]].first().values.tolist()
    assert pairs == [[1e-4, 0.1], [1e-4, 0.2], [1e-3, 0.1], [1e-3, 0.2]]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and {"final_return_mean", "ci95_low", "ci95_high", "final_return_worst",
                                  "worst_seed"} <= set(summary.columns)
    best = json.loads((out / "summary.json").read_text())["best"]
    assert best["final_return_mean"] == pytest.approx(summary.final_return_mean.max())
    # the per-seed mean of the last iteration (10% of 6 iterations rounds to 1) reproduces the summary
    last = table[table.iteration == 5].assign(total=lambda d: d.episode_return * d.episodes)
    per_seed = last.groupby(["config", "seed"]).apply(lambda g: g.total.sum() / g.episodes.sum(),
                                                      include_groups=False)
    np.testing.assert_allclose(per_seed.groupby("config").mean(), summary.final_return_mean, rtol=1e-6)


def test_sweep_random_draws_the_requested_samples(tmp_path):
    out = tmp_path / "r"
    code = main(["sweep", "--algo", "ppo", "--random", "lr=loguniform:1e-4:1e-2", "--samples", "3", "--seeds", "1",
                 "--search-seed", "2", "--out", str(out), *TINY])
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and summary.lr.between(1e-4, 1e-2).all() and summary.lr.nunique() == 3
    assert json.loads((out / "config.json").read_text())["kind"] == "random"


@pytest.mark.parametrize("argv, named", [
    (["train", "--lr", "-1"], "lr=-1"),
    (["train", "--gamma", "1.5"], "gamma=1.5"),
    (["train", "--num-minibatches", "3"], "num_minibatches=3"),
    (["train", "--total-timesteps", "10"], "total_timesteps=10"),
    (["train", "--algo", "ppoo"], "ppoo"),
    (["train", "--env", "CartPole-v9"], "CartPole-v9"),
    (["train", "--lr", "fast"], "--lr"),
    (["train", "--seeds", "0"], "--seeds"),
    (["train", "--checkpoint-every", "2"], "--out"),
    (["train", "--out", "OUT", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["train", "--out", "OUT", "--stop-after-chunks", "1"], "--checkpoint-every"),
    (["train", "--resume", "NOWHERE"], "NOWHERE"),
    (["train", "--resume", "NOWHERE", "--lr", "1e-3"], "--lr"),
    (["sweep", "--grid", "num_epochs=1,2"], "'num_epochs' is a static setting"),
    (["sweep", "--grid", "hidden=16,32"], "'hidden' is a static setting"),
    (["sweep", "--grid", "clip_epsilon=0.1"], "clip_eps"),
    (["sweep", "--grid", "lr=fast,slow"], "values of lr"),
    (["sweep", "--grid", "lr"], "NAME=VALUES"),
    (["sweep", "--grid", "lr=-1e-3,1e-3"], "lr=-0.001"),
    (["sweep", "--grid", "lr=1e-3", "--lr", "1e-3"], "'lr' is both swept"),
    (["sweep", "--grid", "lr=1e-3", "--grid", "lr=1e-4"], "--grid lr=... is given twice"),
    (["sweep", "--grid", "lr=1e-3", "--samples", "3"], "--samples"),
    (["sweep", "--random", "lr=gauss:1:2", "--samples", "2"], "gauss"),
    (["sweep", "--random", "lr=loguniform:1e-4:1e-2"], "--samples"),
    (["sweep", "--random", "num_envs=uniform:1:8", "--samples", "2"], "'num_envs' is a static setting"),
    (["sweep"], "--grid"),
    (["sweep", "--grid", "lr=1e-3", "--plot-x", "gamma"], "gamma"),
    (["sweep", "--algo", "nope", "--grid", "lr=1e-3"], "nope"),
    (["fly"], "usage"),
])
def test_bad_input_exits_2_naming_the_setting(argv, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative OUT / NOWHERE stay inside the test's folder
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert named in captured.err + captured.out
    assert not os.listdir(tmp_path)  # nothing was written


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert main(["train", "--algo", "ppo", "--help"]) == 0
    assert "--checkpoint-every" in capsys.readouterr().out
    assert main(["sweep", "--help"]) == 0
    assert "--grid" in capsys.readouterr().out


def test_progress_is_a_bar_with_eta_on_a_terminal_and_lines_elsewhere():
    import io

    from purejaxpg.cli.common import print_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    chunk = {"env_steps": np.array([[100, 200]]), "episode_return": np.array([[1.0, 3.0]]),
             "episodes": np.array([[1, 1]])}
    for stream, tty in ((Terminal(), True), (io.StringIO(), False)):
        callback = print_progress(6, 100, 1, stream=stream)
        callback(chunk, None, 2.0)  # 2 of 6 iterations in 2 s: 4 left, 4 s
        callback(chunk, None, 2.0)
        text = stream.getvalue()
        assert "ETA 4s" in text and "ETA 2s" in text
        assert text.startswith("\r[########") == tty and ("iter      2/6" in text) != tty


def test_list_presets_prints_the_presets_as_yaml(capsys):
    import yaml

    from purejaxpg import presets

    assert main(["list", "--presets", "maddpg"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"maddpg": presets.PRESETS["maddpg"]}
    assert main(["list", "--presets", "nope"]) == 2
