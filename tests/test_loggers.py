"""--log tensorboard / wandb: event files read back with a TFRecord reader written here, W&B's
offline run files; settings logged beside the metrics; clear errors."""

import glob
import os
import struct

import numpy as np
import pytest

from purejaxpg import loggers
from purejaxpg.config import ConfigError

pytest.importorskip("tensorboardX")
SETTINGS = {"algo": "ppo", "train": {"env_id": "CartPole-v1", "num_envs": 4}, "hparams": {"lr": 0.001}}
METRICS = {"env_steps": np.array([[512, 1024], [512, 1024]]),
           "episode_return": np.array([[10.0, np.nan], [30.0, 40.0]]),
           "policy_loss": np.array([[0.5, 0.25], [0.75, 0.125]])}


def read_events(path):
    """``(step, tag, value or text)`` of every summary value in a TFRecord event file: each record is
    a little-endian uint64 length, its masked CRC, the Event protobuf and its CRC."""
    from tensorboardX.proto import event_pb2

    out = []
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            payload = value.simple_value if kind == "simple_value" else value.tensor.string_val[0].decode()
            out.append((event.step, value.tag, payload))
    return out


def test_tensorboard_event_files_hold_every_metric_and_the_settings(tmp_path):
    logger = loggers.TensorBoardLogger(str(tmp_path), SETTINGS, 2)
    logger.log(METRICS, 0)
    logger.close()
    for run in range(2):
        (path,) = glob.glob(str(tmp_path / "tensorboard" / f"run_{run}" / "events.out.tfevents.*"))
        events = read_events(path)
        scalars = {(step, tag): value for step, tag, value in events if not isinstance(value, str)}
        for name in ("episode_return", "policy_loss"):
            for i, step in enumerate(METRICS["env_steps"][run]):
                want = METRICS[name][run, i]
                if np.isfinite(want):
                    assert scalars[(int(step), name)] == pytest.approx(want)
                else:
                    assert (int(step), name) not in scalars  # no episode ended: nothing logged
        texts = [value for _, tag, value in events if isinstance(value, str)]
        assert any('"lr": 0.001' in t for t in texts) and any("| train/num_envs | 4 |" in t for t in texts)


class FakeWandb:
    """Records what `WandbLogger` hands to wandb (init arguments, logged rows, finish)."""

    def __init__(self):
        self.inits, self.rows, self.finished = [], [], False

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self

    def log(self, row, step):
        self.rows.append((step, row))

    def finish(self):
        self.finished = True


def test_wandb_gets_the_config_means_over_runs_and_each_runs_return(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(__import__("sys").modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = loggers.WandbLogger(str(tmp_path), SETTINGS, 2, name="test")
    logger.log(METRICS, 7)
    logger.close()
    (init,) = fake.inits
    assert init["mode"] == "offline" and init["config"]["hparams/lr"] == 0.001 and init["dir"] == str(tmp_path)
    assert [step for step, _ in fake.rows] == [512, 1024]
    first, second = fake.rows[0][1], fake.rows[1][1]
    assert first["episode_return"] == pytest.approx(20.0) and first["iteration"] == 7
    assert second["episode_return"] == pytest.approx(40.0)  # the mean over the runs where an episode ended
    assert "episode_return/run_0" not in second and second["episode_return/run_1"] == pytest.approx(40.0)
    assert second["policy_loss"] == pytest.approx(np.mean([0.25, 0.125])) and fake.finished


@pytest.mark.slow  # wandb-core starts in about 20 s
def test_wandb_runs_offline_with_no_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = loggers.WandbLogger(str(tmp_path), SETTINGS, 2, name="test")
    logger.log(METRICS, 0)
    logger.close()
    (record,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert os.path.getsize(record) > 0


def test_bad_log_requests_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="'mlflow' is not a logger"):
        loggers.make(["mlflow"], str(tmp_path), SETTINGS, 1)
    with pytest.raises(ConfigError, match="--log needs --out"):
        loggers.make(["tensorboard"], None, SETTINGS, 1)
