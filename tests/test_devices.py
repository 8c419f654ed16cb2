"""CPU cores as JAX devices (`purejaxpg.devices`) and the command line's ``--cpu-devices``.

JAX fixes its CPU device count when it starts, so the end-to-end checks run in subprocesses.
The reference is the same command on one device: splitting seeds over devices must give the
same episodes, and the float diagnostics up to rounding.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from purejaxpg import devices
from purejaxpg.__main__ import main
from purejaxpg.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--algo", "ppo", "--env", "CartPole-v1", "--total-timesteps", "2048", "--num-envs", "4",
        "--num-steps", "32", "--num-minibatches", "2", "--hidden", "16", "--chunk-iterations", "8"]


def _cli(args, tmp_path, name, env=None):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "purejaxpg", "train", *TINY, *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={k: v for k, v in (env or os.environ).items() if k != "XLA_FLAGS"})
    return proc, out


def test_seeds_split_over_two_cpu_devices_give_the_numbers_of_one(tmp_path):
    two, out2 = _cli(["--seeds", "4", "--cpu-devices", "2"], tmp_path, "two")
    one, out1 = _cli(["--seeds", "4", "--cpu-devices", "1"], tmp_path, "one")
    assert two.returncode == 0, two.stderr[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]
    assert "runs split over 2 CPU devices" in two.stdout
    assert "split" not in one.stdout.splitlines()[0]
    a, b = pd.read_csv(out2 / "metrics.csv"), pd.read_csv(out1 / "metrics.csv")
    assert len(a) == 4 * 16 and list(a.columns) == list(b.columns)
    for name in a.columns:
        if name in ("seed", "iteration", "env_steps", "episodes", "episode_return", "episode_length"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # the same episodes
        else:  # losses and diagnostics: a batch of 2 seeds may round a mean differently from 4
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
def test_runs_that_do_not_divide_stay_on_one_device(tmp_path):
    proc, out = _cli(["--seeds", "3", "--cpu-devices", "2"], tmp_path, "three")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "one device (3 run(s) do not split evenly over 2 devices)" in proc.stdout
    assert len(pd.read_csv(out / "metrics.csv")) == 3 * 16


@pytest.mark.parametrize("value, named", [("0", "at least 1"), ("two", "give 'auto' or a number")])
def test_bad_cpu_devices_exits_2_naming_the_flag(value, named, tmp_path, capsys):
    assert main(["train", *TINY, "--cpu-devices", value, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"--cpu-devices {value}" in err and named in err
    assert not (tmp_path / "x").exists()


def test_a_count_that_cannot_apply_any_more_is_an_error_naming_the_fix(tmp_path, capsys):
    jax.devices()  # JAX has started in this process: its CPU device count is fixed
    current = len(jax.devices("cpu"))
    assert main(["train", *TINY, "--cpu-devices", str(current + 1), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "already started" in err and f"JAX_NUM_CPU_DEVICES={current + 1}" in err
    with pytest.raises(ConfigError, match="before any JAX computation"):
        devices.use_cpu_cores(current + 1)
    assert devices.use_cpu_cores(current + 1, strict=False) == current
    assert devices.use_cpu_cores(current) == current  # asking for what is there is fine


@pytest.mark.slow  # a subprocess that starts JAX: default-run budget
def test_in_process_calls_leave_the_callers_devices_alone(tmp_path):
    """``main([...])`` from Python (a test, a notebook) must not change JAX's devices under the
    caller: 'auto' applies only to the command line itself."""
    script = ("from purejaxpg.__main__ import main\n"
              f"assert main({['train', *TINY, '--seeds', '2', '--out', str(tmp_path / 'in')]!r}) == 0\n"
              "import jax; print('devices', len(jax.devices()))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "devices 1" in proc.stdout


@pytest.mark.slow  # a subprocess that starts JAX: default-run budget
def test_jax_num_cpu_devices_in_the_environment_wins_over_auto(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc, _ = _cli(["--seeds", "4"], tmp_path, "env", env={**env, "JAX_NUM_CPU_DEVICES": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "split" not in proc.stdout.splitlines()[0]  # auto would have split 4 seeds on 2+ cores


def test_forced_host_device_count_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1 --xla_force_host_platform_device_count=3")
    assert devices.forced_host_device_count() == 3
    assert devices.use_cpu_cores(1) == 3  # the user's explicit flag is left as it is
    monkeypatch.setenv("XLA_FLAGS", "")
    assert devices.forced_host_device_count() is None


@pytest.mark.parametrize("runs, cores, want", [(8, 2, 2), (8, 6, 4), (8, 64, 8), (3, 2, 1), (1, 16, 1), (12, 8, 6),
                                               (7, 7, 7), (0, 4, 1)])
def test_devices_for_runs_is_the_largest_divisor_within_the_cores(runs, cores, want):
    assert devices.devices_for_runs(runs, cores) == want
    got = devices.devices_for_runs(runs, cores)
    assert runs == 0 or (runs % got == 0 and got <= cores)


@pytest.mark.parametrize("command, argv, runs", [
    ("train", ["--seeds", "8"], 8), ("train", [], 1), ("train", ["--resume", "d"], None),
    ("train", ["--seeds", "x"], None), ("sweep", ["--grid", "lr=1,2,3", "--grid", "gamma=0.9,0.99"], 24),
    ("sweep", ["--random", "lr=loguniform:1e-4:1e-2", "--samples", "5", "--seeds", "2"], 10),
    ("sweep", ["--random", "lr=uniform:0:1"], None)])
def test_the_command_line_reads_its_run_count_before_jax_starts(command, argv, runs):
    from purejaxpg.cli.common import runs_in_argv

    assert runs_in_argv(command, argv) == runs


def test_runs_shard_splits_only_even_run_counts_over_several_devices():
    count = len(jax.devices())
    if count == 1:
        assert devices.runs_shard(8) == "none"
    else:
        assert devices.runs_shard(2 * count) == "runs"
        assert devices.runs_shard(2 * count + 1) == "none"
    assert 1 <= devices.usable_cores() <= (os.cpu_count() or 1)
