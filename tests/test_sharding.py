"""Sharding over devices: 4 forced host devices give the same numbers as one device.

XLA's device count is fixed when JAX starts, so the check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from purejaxpg import experiment, train
    from purejaxpg.algorithms import PPO, PPOHParams
    from purejaxpg.config import TrainConfig
    assert len(jax.devices()) == 4, jax.devices()
    trainer = train.make_train(PPO(num_epochs=2, num_minibatches=2, hidden=(16,)),
                               TrainConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 4), PPOHParams())
    hp = PPOHParams(lr=np.array([1e-4, 3e-4, 1e-3, 3e-3], np.float32))
    out = {}
    for mode in ("none", "runs", "envs"):
        res = train.run_chunked(trainer, train.seed_keys(0, 4), hp, shard=mode, chunk_iterations=2)
        leaf = res.runner.env.obs
        out[mode] = {"metrics": {k: np.nan_to_num(v).tolist() for k, v in res.metrics.items()},
                     "spec": str(getattr(leaf.sharding, "spec", None))}
    # an off-policy learner: the replay buffer lives in the learner state (replicated with "envs")
    sac = train.make_train(*experiment.build("sac", "Pendulum-v1", dict(
        num_envs=4, num_steps=2, total_timesteps=4 * 2 * 4, hidden=(16,), batch_size=8, buffer_size=64,
        learning_starts=8))[:2])
    for mode in ("none", "envs"):  # "runs" splits whole runs: nothing off-policy about it
        res = train.run_chunked(sac, train.seed_keys(0, 4), sac.algo.HParams(), shard=mode, chunk_iterations=2)
        out["sac_" + mode] = {"metrics": {k: np.nan_to_num(v).tolist() for k, v in res.metrics.items()}}
    print(json.dumps(out))
""")


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
def test_sharded_runs_and_envs_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["runs"]["spec"] in ("P('devices',)", "PartitionSpec('devices',)")
    assert out["envs"]["spec"] in ("P(None, 'devices')", "PartitionSpec(None, 'devices')")
    for prefix in ("", "sac_"):
        _check_same(out, prefix)


def _check_same(out, prefix):
    import numpy as np

    base = out[prefix + "none"]["metrics"]
    for mode in ("runs", "envs") if prefix == "" else ("envs",):
        for name, values in out[prefix + mode]["metrics"].items():
            if name in ("env_steps", "episodes", "episode_return", "episode_length"):
                np.testing.assert_array_equal(values, base[name], err_msg=f"{mode}: {name}")
            else:  # identical math; only the summation order of reductions may differ
                np.testing.assert_allclose(values, base[name], rtol=1e-5, atol=1e-7, err_msg=f"{mode}: {name}")
