"""Several processes as one JAX system (`purejaxpg.distributed`): two local processes with two
CPU devices each run ONE sharded sweep over the four devices, over gloo, and get the numbers one
process with four devices gets (the reference: the same command without the distributed flags).

Each process is a fresh interpreter (the device count and ``jax.distributed`` are fixed when JAX
starts); the coordinator listens on a free localhost port.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from purejaxpg import distributed
from purejaxpg.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 600  # generous: the machine may be busy; a hang fails, it does not pass

# A tiny PPO sweep: 2 learning rates x 2 seeds = 4 runs, 4 iterations in 2 chunks.
SWEEP = ["sweep", "--algo", "ppo", "--env", "CartPole-v1", "--grid", "lr=1e-3,3e-3", "--seeds", "2",
         "--num-envs", "4", "--num-steps", "32", "--total-timesteps", str(4 * 32 * 4), "--hidden", "16",
         "--num-epochs", "1", "--num-minibatches", "2", "--chunk-iterations", "2", "--no-presets"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (
        "XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
        "JAX_LOCAL_DEVICE_IDS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _run_all(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start ``commands`` at once (they wait for each other at the coordinator) and collect them;
    on a timeout kill the ones this test started."""
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in commands]
    procs = [subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=_env(), cwd=ROOT)
             for cmd, (out, err) in zip(commands, logs)]
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it at the coordinator
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    done = []
    for cmd, proc, (out, err) in zip(commands, procs, logs):
        out.seek(0)
        err.seek(0)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read()))
        out.close()
        err.close()
    return done


def test_two_processes_run_one_sweep_with_the_numbers_of_one_process(tmp_path):
    port = _free_port()
    cli = [sys.executable, "-m", "purejaxpg"] + SWEEP + ["--cpu-devices", "2", "--coordinator", f"localhost:{port}",
                                                         "--num-processes", "2"]
    outs = [tmp_path / "p0", tmp_path / "p1"]
    # the reference, started alongside: one process with the same four devices, no coordinator
    reference = [sys.executable, "-m", "purejaxpg"] + SWEEP + ["--cpu-devices", "4", "--out", str(tmp_path / "one")]
    *multi, one = _run_all([cli + ["--process-id", str(i), "--out", str(outs[i])] for i in range(2)] + [reference])
    for i, proc in enumerate(multi):
        assert proc.returncode == 0, f"process {i}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        assert "runs split over 4 CPU devices of 2 processes" in proc.stdout, proc.stdout
    assert (outs[0] / "results.csv").exists()
    assert not outs[1].exists(), "only process 0 writes the output folder"
    assert one.returncode == 0, one.stderr[-4000:]
    assert "runs split over 4 CPU devices" in one.stdout
    got, want = pd.read_csv(outs[0] / "results.csv"), pd.read_csv(tmp_path / "one" / "results.csv")
    assert list(got.columns) == list(want.columns) and len(got) == len(want) == 4 * 4  # runs x iterations
    assert want["episodes"].sum() > 0  # episodes finished, so the returns below are compared for real
    for name in got.columns:
        if pd.api.types.is_numeric_dtype(want[name]):
            np.testing.assert_array_equal(got[name].to_numpy(), want[name].to_numpy(), err_msg=name)
        else:
            assert got[name].tolist() == want[name].tolist(), name


WORKER = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", int(sys.argv[1]))
    from purejaxpg import distributed
    if len(sys.argv) > 2:  # before gymnax is imported: importing it starts JAX's backend
        assert distributed.initialize(sys.argv[2], 2, int(sys.argv[3]))
    import numpy as np
    from purejaxpg import train
    from purejaxpg.algorithms import PPO, PPOHParams
    from purejaxpg.config import TrainConfig
    assert len(jax.devices()) == 4, jax.devices()
    trainer = train.make_train(PPO(num_epochs=1, num_minibatches=2, hidden=(8,)),
                               TrainConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 3), PPOHParams())
    hp = PPOHParams(lr=np.array([1e-3, 3e-3, 1e-2, 3e-2], np.float32))
    out = {}
    for mode in ("runs", "envs"):
        seen = []
        res = train.run_chunked(trainer, train.seed_keys(0, 4), hp, shard=mode, chunk_iterations=2,
                                callback=lambda m, r, s: seen.append(np.asarray(r.iteration).tolist()))
        # continue 1 iteration further from the host copy of the final runner: a resumed run
        more = train.make_train(trainer.algo, TrainConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 4),
                                PPOHParams())
        res2 = train.run_chunked(more, train.seed_keys(0, 4), hp, shard=mode, runner=res.runner)
        out[mode] = {"metrics": {k: np.nan_to_num(v).tolist() for k, v in res.metrics.items()},
                     "more": {k: np.nan_to_num(v).tolist() for k, v in res2.metrics.items()},
                     "obs": np.asarray(res.runner.env.obs).tolist(), "callback_iterations": seen,
                     "params": float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree.leaves(res.runner.learner)))}
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_run_chunked_over_two_processes_matches_one_process():
    """``run_chunked`` itself, both shard modes, the runner handed to callbacks and returned (host
    copies holding every run), and a run resumed from that runner, against one 4-device process."""
    port = _free_port()
    *multi, one = _run_all([[sys.executable, "-c", WORKER, "2", f"localhost:{port}", str(i)] for i in range(2)]
                           + [[sys.executable, "-c", WORKER, "4"]])
    for proc in multi + [one]:
        assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads(line[len("RESULT "):]) for proc in multi + [one]
               for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 3
    reference = results[2]
    for got in results[:2]:
        for mode in ("runs", "envs"):
            assert got[mode]["callback_iterations"] == [[2] * 4, [3] * 4]
            np.testing.assert_array_equal(got[mode]["obs"], reference[mode]["obs"])
            np.testing.assert_allclose(got[mode]["params"], reference[mode]["params"], rtol=1e-6)
            for part in ("metrics", "more"):
                for name, values in got[mode][part].items():
                    np.testing.assert_allclose(values, reference[mode][part][name], rtol=1e-6, atol=1e-8,
                                               err_msg=f"{mode} {part} {name}")


def test_settings_checks_and_environment(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_LOCAL_DEVICE_IDS"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.settings() is None  # one process: nothing to join
    assert distributed.initialize() is False
    with pytest.raises(ConfigError, match="--coordinator HOST:PORT"):
        distributed.settings(num_processes=2, process_id=0)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        distributed.settings("localhost", 2, 0)
    with pytest.raises(ConfigError, match="--num-processes N --process-id I"):
        distributed.settings("localhost:1234", 2)
    with pytest.raises(ConfigError, match="ids are 0 to 1"):
        distributed.settings("localhost:1234", 2, 2)
    with pytest.raises(ConfigError, match="ids are 0 to 1"):
        distributed.settings("localhost:1234", 2, -1)
    with pytest.raises(ConfigError, match="at least 1 process"):
        distributed.settings("localhost:1234", 0, 0)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:5000")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "3")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    monkeypatch.setenv("JAX_LOCAL_DEVICE_IDS", "0,1")
    assert distributed.settings() == {"coordinator_address": "10.0.0.1:5000", "num_processes": 3, "process_id": 2,
                                      "local_device_ids": [0, 1]}
    assert distributed.settings(process_id=1)["process_id"] == 1  # a flag wins over the variable
    monkeypatch.setenv("JAX_PROCESS_ID", "two")
    with pytest.raises(ConfigError, match="JAX_PROCESS_ID"):
        distributed.settings()


def test_cli_rejects_bad_process_flags_before_starting(capsys):
    from purejaxpg.cli import main

    code = main(["sweep", "--grid", "lr=1e-3", "--coordinator", "localhost:1234", "--num-processes", "2",
                 "--process-id", "5"])
    assert code == 2
    assert "ids are 0 to 1" in capsys.readouterr().err


TRAIN = ["train", "--algo", "ppo", "--seeds", "4", "--num-envs", "4", "--num-steps", "32", "--total-timesteps", "512",
         "--hidden", "16", "--num-epochs", "1", "--chunk-iterations", "1", "--no-presets"]


@pytest.mark.slow
def test_two_processes_checkpoint_stop_and_resume_like_one_uninterrupted_process(tmp_path):
    """``train`` over two processes, checkpointed (by process 0 only), stopped after 2 of 4
    chunks and resumed over two processes, against one 4-device process that runs straight
    through: the same metrics.csv."""
    cli = [sys.executable, "-m", "purejaxpg"]
    outs = [tmp_path / "p0", tmp_path / "p1"]

    def pair(args_of):
        port = _free_port()
        flags = ["--cpu-devices", "2", "--coordinator", f"localhost:{port}", "--num-processes", "2"]
        return [cli + args_of(i) + flags + ["--process-id", str(i)] for i in range(2)]

    first = _run_all(pair(lambda i: TRAIN + ["--out", str(outs[i]), "--checkpoint-every", "1",
                                              "--stop-after-chunks", "2"])
                     + [cli + TRAIN + ["--cpu-devices", "4", "--out", str(tmp_path / "one")]])
    for proc in first:
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in (outs[0] / "checkpoints").iterdir()) == ["ckpt-000000001.msgpack",
                                                                         "ckpt-000000002.msgpack"]
    assert not outs[1].exists(), "only process 0 writes checkpoints and outputs"
    # both processes resume from process 0's folder (a shared filesystem on several hosts)
    second = _run_all(pair(lambda i: ["train", "--resume", str(outs[0])]))
    for proc in second:
        assert proc.returncode == 0, proc.stderr[-4000:]
    got, want = pd.read_csv(outs[0] / "metrics.csv"), pd.read_csv(tmp_path / "one" / "metrics.csv")
    assert len(got) == 4 * 4 and want["episodes"].sum() > 0
    pd.testing.assert_frame_equal(got, want, check_exact=True)
