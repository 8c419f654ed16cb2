"""The off-policy skeleton (replay in the learner state, DDPG, TD3, SAC): buffer, targets on real
batches, warm-up, policy delay, action scaling, bad settings, NaN-free corner cases, checkpoints."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import checkpoint, envs, experiment, replay, rollout, train
from purejaxpg.algorithms import offpolicy
from purejaxpg.algorithms.sac import SAC
from purejaxpg.algorithms.td3 import DDPG, TD3
from purejaxpg.config import ConfigError, TrainConfig

TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=64, learning_starts=16)
NAMES = ("ddpg", "td3", "sac")


# XLA's backend optimisations off while these tests compile (tests/conftest.py): they check
# arithmetic, shapes and bookkeeping, not XLA's optimisations
pytestmark = pytest.mark.usefixtures("fast_compiles")


def build(name, env_id="Pendulum-v1", **overrides):
    settings = dict(TINY, num_envs=2, num_steps=4, total_timesteps=2 * 4 * 6)
    settings.update(overrides)
    algo, config, hparams = experiment.build(name, env_id, settings)
    return train.make_train(algo, config, hparams), hparams


def experience(obs, action, reward, terminated, next_obs):
    return replay.Experience(jnp.asarray(obs, jnp.float32), jnp.asarray(action, jnp.float32),
                             jnp.asarray(reward, jnp.float32), jnp.asarray(terminated), jnp.asarray(next_obs, jnp.float32))


# ---------------------------------------------------------------------------------------------
# replay


def test_buffer_holds_the_newest_transitions_time_major_and_samples_only_stored_ones():
    """A 5-slot ring fed [T=2, N=2] batches keeps the 5 newest transitions (oldest time step
    overwritten first) and never samples an empty slot."""
    buf = replay.make(5, 5)
    state = replay.init(buf, experience(np.zeros(1), np.zeros(1), 0.0, False, np.zeros(1)))
    counter = 0
    for _ in range(3):
        ids = np.arange(counter, counter + 4, dtype=np.float32).reshape(2, 2)  # [T, N], time-major ids
        counter += 4
        state = replay.add(buf, state, experience(ids[..., None], ids[..., None], ids, ids > 100, ids[..., None]))
    assert int(replay.size(state)) == 5
    stored = set(np.asarray(state.experience.reward).ravel().tolist())
    assert stored == {7.0, 8.0, 9.0, 10.0, 11.0}  # ids 0..11 added in order t0n0, t0n1, t1n0, t1n1, ...
    drawn = jax.vmap(lambda k: replay.sample(buf, state, k))(jax.random.split(jax.random.PRNGKey(0), 40))
    drawn = jax.tree.map(lambda x: x.reshape((200,) + x.shape[2:]), drawn)
    assert set(np.asarray(drawn.reward).tolist()) == stored  # all five, nothing else
    np.testing.assert_array_equal(drawn.obs[:, 0], drawn.reward)  # fields of one transition stay together


def test_buffer_state_survives_checkpoint_serialisation():
    """flax.serialization round trip of a buffer state (registered in purejaxpg.replay)."""
    from flax import serialization

    buf = replay.make(8, 4)
    state = replay.init(buf, experience(np.zeros(2), np.zeros(1), 0.0, False, np.zeros(2)))
    state = replay.add(buf, state, experience(np.ones((1, 3, 2)), np.ones((1, 3, 1)), np.ones((1, 3)),
                                              np.zeros((1, 3), bool), np.ones((1, 3, 2))))
    blob = serialization.msgpack_serialize(serialization.to_state_dict(state))
    back = serialization.from_state_dict(replay.init(buf, experience(np.zeros(2), np.zeros(1), 0.0, False, np.zeros(2))),
                                         serialization.msgpack_restore(blob))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# truncation-correct targets on the algorithms' own networks


@pytest.mark.parametrize("name", NAMES)
def test_truncated_step_bootstraps_and_terminated_step_does_not(name):
    """The algorithm's critic target for one transition, terminated vs not (a truncation only
    differs from a mid-episode step by next_obs being the final observation): r + gamma * V'(s')
    against r, with V' computed here from the target networks."""
    trainer, hparams = build(name)
    algo = trainer.algo
    state = algo.init(jax.random.PRNGKey(1), trainer.spec, hparams)
    obs = jnp.asarray([[0.3, -0.2, 1.0], [0.3, -0.2, 1.0]])
    next_obs = jnp.asarray([[0.9, 0.4, -2.0], [0.9, 0.4, -2.0]])
    batch = experience(obs, [[0.1], [0.1]], [-1.5, -1.5], [False, True], next_obs)
    key = jax.random.PRNGKey(2)
    y = np.asarray(algo.critic_target(state, batch, key, hparams))
    assert y[1] == pytest.approx(-1.5)  # terminated: no bootstrap
    # the bootstrap value, computed from the networks independently of purejaxpg.targets
    if name == "sac":
        next_action, logp = state.actor.apply(state.params["actor"], next_obs).sample_and_log_prob(key)
        q = state.q_values(next_obs, next_action, state.target["critic"])
        value = np.min(np.asarray(q), axis=0) - np.exp(float(state.params["log_alpha"])) * np.asarray(logp)
    else:
        mu = state.actor.apply(state.target["actor"], next_obs)
        eps = np.clip(float(hparams.target_noise) * np.asarray(jax.random.normal(key, mu.shape)),
                      -float(hparams.target_noise_clip), float(hparams.target_noise_clip))
        q = state.q_values(next_obs, jnp.clip(mu + eps, -1, 1), state.target["critic"])
        value = np.min(np.asarray(q), axis=0)
    assert y[0] == pytest.approx(-1.5 + float(hparams.gamma) * value[0], rel=1e-5, abs=1e-5)
    assert abs(y[0] - y[1]) > 1e-3


def test_time_limit_reaches_the_replay_as_not_terminated():
    """Pendulum only truncates (200 steps): after 400 steps of 2 envs the buffer holds the
    episode ends with terminated=False and next_obs the final observation, not the reset one."""
    trainer, hparams = build("sac", buffer_size=1024, total_timesteps=2 * 200 * 3, num_steps=200, gradient_steps=1)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0), hparams)
    step = jax.jit(trainer.step)
    runner, _ = step(runner, hparams)
    runner, _ = step(runner, hparams)
    exp = runner.learner.buffer.experience
    assert int(replay.size(runner.learner.buffer)) == 800
    assert not np.any(np.asarray(exp.terminated))
    obs, next_obs = np.asarray(exp.obs[0]), np.asarray(exp.next_obs[0])  # time-major: row t*N + n
    t199 = [199 * 2, 199 * 2 + 1]  # the last step of each env's first episode
    t200 = [200 * 2, 200 * 2 + 1]
    # inside an episode next_obs[t] == obs[t+1]; at the time limit it is the final observation instead
    np.testing.assert_array_equal(next_obs[[10, 11]], obs[[12, 13]])
    assert not np.allclose(next_obs[t199], obs[t200])
    # Pendulum's observation (cos, sin, theta_dot): the final one has unit norm in (cos, sin)
    np.testing.assert_allclose(np.linalg.norm(next_obs[t199][:, :2], axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# acting, warm-up, policy delay


def test_actions_are_uniform_before_learning_starts_and_scaled_to_asymmetric_bounds():
    """Before learning_starts: uniform over the env's box; after: the actor's action mapped from
    [-1, 1] to [low, high] (and back to [-1, 1] in the replay), tested on bounds [-3, 1]."""
    algo = TD3(hidden=(8,), learning_starts=10)
    spec = envs.EnvSpec("x", (3,), False, action_dim=1, action_low=(-3.0,), action_high=(1.0,))
    state = algo.init(jax.random.PRNGKey(0), spec, TD3.HParams(exploration_noise=0.0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (4096, 3))
    warm, _, _ = algo.act(state, obs, jax.random.PRNGKey(2))
    assert float(warm.min()) >= -3.0 and float(warm.max()) <= 1.0
    assert float(jnp.mean(warm)) == pytest.approx(-1.0, abs=0.1)
    assert float(jnp.std(warm)) == pytest.approx(4.0 / np.sqrt(12.0), rel=0.05)
    learned = state.replace(env_steps=jnp.asarray(10, jnp.int32))
    action, _, _ = algo.act(learned, obs, jax.random.PRNGKey(2))
    mu = np.asarray(state.actor.apply(state.params["actor"], obs))
    np.testing.assert_allclose(np.asarray(action), -3.0 + (mu + 1.0) * 2.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(algo._from_env(state, action)), mu, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["ddpg", "sac"])  # td3's delayed actor: the policy-delay tests
def test_no_gradient_step_before_learning_starts(name):
    """learning_starts=16 with 8 transitions per iteration: parameters unchanged after iteration 1,
    changed after iteration 2; the buffer fills from the first."""
    trainer, hparams = build(name)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0), hparams)
    step = jax.jit(trainer.step)
    first, _ = step(runner, hparams)
    assert int(first.learner.updates) == 0 and int(replay.size(first.learner.buffer)) == 8
    for a, b in zip(jax.tree.leaves(runner.learner.params), jax.tree.leaves(first.learner.params)):
        np.testing.assert_array_equal(a, b)
    second, metrics = step(first, hparams)
    assert int(second.learner.updates) == 8  # gradient_steps=-1: one per transition
    moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first.learner.params),
                                                       jax.tree.leaves(second.learner.params))]
    assert all(moved)
    assert all(np.isfinite(float(v)) for k, v in metrics.items() if k not in train.EPISODE_METRICS)


def test_policy_delay_steps_the_actor_and_targets_every_dth_critic_step():
    """TD3 with policy_delay=3 and one gradient step per iteration: the actor and the target
    networks move at critic steps 1, 4, 7 and stay put at the others."""
    trainer, hparams = build("td3", num_envs=1, num_steps=1, total_timesteps=40, learning_starts=1, policy_delay=3,
                             gradient_steps=1)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0), hparams)
    step = jax.jit(trainer.step)
    moved = []
    for _ in range(8):
        before = runner.learner
        runner, _ = step(runner, hparams)
        after = runner.learner
        actor_moved = not np.array_equal(jax.tree.leaves(before.params["actor"])[0], jax.tree.leaves(after.params["actor"])[0])
        target_moved = not np.array_equal(jax.tree.leaves(before.target["critic"])[0],
                                          jax.tree.leaves(after.target["critic"])[0])
        assert actor_moved == target_moved
        moved.append(actor_moved)
    assert moved == [True, False, False, True, False, False, True, False]


def test_ou_noise_state_persists_across_steps_and_iterations():
    """noise='ou': the rollout carries each env's OU state; consecutive noises are correlated."""
    trainer, hparams = build("ddpg", noise="ou", learning_starts=0, num_envs=3)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0), hparams)
    step = jax.jit(trainer.step)
    assert runner.env.actor["ou"].shape == (3, 1)
    runner, _ = step(runner, hparams)
    first = np.asarray(runner.env.actor["ou"])
    assert np.all(first != 0.0)
    runner, _ = step(runner, hparams)
    second = np.asarray(runner.env.actor["ou"])
    # 4 more steps of x <- x + theta (0 - x) dt + sigma sqrt(dt) eps: the state drifts, not resets
    assert np.all(second != first) and np.all(np.abs(second - first) < 4 * 5 * 0.1 * 0.1 + 1e-3)


# ---------------------------------------------------------------------------------------------
# bad settings, corner cases


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=128, buffer_size=64), "larger than buffer_size"),
    (dict(buffer_size=6, batch_size=4), "more than buffer_size"),
    (dict(learning_starts=48), "would never learn"),
    (dict(learning_starts=-1), "non-negative"),
    (dict(gradient_steps=0), "gradient_steps"),
    (dict(policy_delay=0), "policy_delay"),
    (dict(normalize_obs=True), "normalize_obs"),
    (dict(normalize_rewards=True), "normalize_obs / normalize_rewards"),
])
def test_bad_settings_are_refused_before_compiling(overrides, message):
    for name in NAMES:
        with pytest.raises(ConfigError, match=message):
            build(name, **overrides)


def test_discrete_env_and_unknown_noise_are_refused():
    for name in NAMES:
        with pytest.raises(ConfigError, match="continuous"):
            build(name, env_id="CartPole-v1")
    with pytest.raises(ConfigError, match="noise="):
        build("td3", noise="pink")


@pytest.mark.parametrize("name", NAMES)
def test_zero_rewards_and_constant_actions_give_no_nan(name):
    """A buffer of identical transitions with reward 0 and action at the bound (+1, where tanh
    saturates): a few gradient steps keep every parameter and metric finite."""
    trainer, hparams = build(name)
    algo = trainer.algo
    state = algo.init(jax.random.PRNGKey(0), trainer.spec, hparams)
    batch = rollout.Transition(obs=jnp.zeros((4, 2, 3)), action=jnp.full((4, 2, 1), 2.0), reward=jnp.zeros((4, 2)),
                               terminated=jnp.zeros((4, 2), bool), truncated=jnp.zeros((4, 2), bool),
                               next_obs=jnp.zeros((4, 2, 3)), extras={}, done=jnp.zeros((4, 2), bool),
                               finished_return=jnp.zeros((4, 2)), finished_length=jnp.zeros((4, 2)))
    update = jax.jit(lambda state, key: algo.update(state, batch, key, hparams, 0.0))
    for i in range(3):
        state, metrics = update(state, jax.random.PRNGKey(i))
    assert int(state.updates) == 16
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    np.testing.assert_array_equal(np.asarray(state.buffer.experience.action)[0, :24], 1.0)  # stored in [-1, 1]


# ---------------------------------------------------------------------------------------------
# the rest of the machinery: sweeps, checkpoints


def test_hyperparameter_grid_vmaps_with_one_buffer_per_run():
    """A grid of 2 critic learning rates on one seed: 2 runs, each with its own buffer; the second
    equals that config trained alone."""
    trainer, hparams = build("td3")
    grid = dataclasses.replace(hparams, critic_lr=np.array([1e-3, 3e-3], np.float32))
    keys = jnp.concatenate([train.seed_keys(0, 1), train.seed_keys(0, 1)])
    out = train.run_chunked(trainer, keys, grid)
    assert out.runner.learner.buffer.experience.obs.shape[:2] == (2, 1)
    alone = train.run_chunked(trainer, train.seed_keys(0, 1), dataclasses.replace(hparams, critic_lr=3e-3))
    np.testing.assert_allclose(out.metrics["critic_loss"][1:], alone.metrics["critic_loss"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(out.metrics["critic_loss"][:1], out.metrics["critic_loss"][1:])


def test_sac_resumed_from_a_checkpoint_is_bit_identical_with_the_buffer(tmp_path):
    """Stop a SAC run after 2 of 3 chunks, restore, finish: the same metrics and state (buffer
    included) as an uninterrupted run."""
    trainer, hparams = build("sac")
    keys = train.seed_keys(0, 2)
    settings = experiment.describe(trainer.algo, trainer.config, hparams)
    settings.update(seeds=2, seed=0)
    whole = train.run_chunked(trainer, keys, hparams, chunk_iterations=2)
    folder = str(tmp_path / "ckpt")
    stopped = checkpoint.run(trainer, keys, hparams, folder, settings, chunk_iterations=2, every=1, stop_after_chunks=2)
    assert not stopped.finished
    ckpt = checkpoint.restore(folder)
    assert int(replay.size(jax.tree.map(lambda x: x[0], ckpt.runner.learner.buffer))) == 32
    out = checkpoint.run(ckpt.trainer, keys, ckpt.hparams, folder, settings, chunk_iterations=2, resume=ckpt)
    for name, values in whole.metrics.items():
        np.testing.assert_array_equal(out.metrics[name], values, err_msg=name)
    for a, b in zip(jax.tree.leaves(out.runner), jax.tree.leaves(whole.runner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cli_trains_and_sweeps_an_off_policy_algorithm(tmp_path, capsys):
    """``train --algo sac`` and ``sweep --algo td3 --grid actor-lr=...`` run and write their files;
    ``--algo sac`` on a discrete env exits 2 naming the problem."""
    from purejaxpg.__main__ import main

    tiny = ["--env", "Pendulum-v1", "--total-timesteps", "48", "--num-envs", "2", "--num-steps", "4", "--hidden", "16,16",
            "--batch-size", "8", "--buffer-size", "64", "--learning-starts", "16"]
    assert main(["train", "--algo", "sac", "--seeds", "2", "--out", str(tmp_path / "t"), *tiny]) == 0
    assert {"config.json", "metrics.csv", "summary.json"} <= set(os.listdir(tmp_path / "t"))
    assert main(["sweep", "--algo", "td3", "--grid", "actor-lr=1e-3,3e-3", "--seeds", "1", "--out",
                 str(tmp_path / "s"), *tiny]) == 0
    assert "results.csv" in os.listdir(tmp_path / "s")
    capsys.readouterr()
    assert main(["train", "--algo", "sac", "--env", "CartPole-v1", "--out", str(tmp_path / "bad")]) == 2
    assert "continuous" in capsys.readouterr().err


def test_grouped_policy_delay_equals_the_per_step_counter_form():
    """gradient_steps a multiple of policy_delay runs groups (critic, actor, critic, critic) without a
    cond; with the same keys it gives the same parameters as the per-step form that decides by the
    update counter (used otherwise)."""
    trainer, hparams = build("td3", policy_delay=3, gradient_steps=6, learning_starts=0)
    algo = trainer.algo
    state = algo.init(jax.random.PRNGKey(0), trainer.spec, hparams)
    batch = rollout.Transition(obs=jax.random.normal(jax.random.PRNGKey(1), (4, 2, 3)),
                               action=jax.random.uniform(jax.random.PRNGKey(2), (4, 2, 1), minval=-2, maxval=2),
                               reward=jax.random.normal(jax.random.PRNGKey(3), (4, 2)),
                               terminated=jnp.zeros((4, 2), bool), truncated=jnp.zeros((4, 2), bool),
                               next_obs=jax.random.normal(jax.random.PRNGKey(4), (4, 2, 3)), extras={},
                               done=jnp.zeros((4, 2), bool), finished_return=jnp.zeros((4, 2)),
                               finished_length=jnp.zeros((4, 2)))
    key = jax.random.PRNGKey(5)
    grouped, metrics = jax.jit(lambda s: algo.update(s, batch, key, hparams, 0.0))(state)
    assert int(grouped.updates) == 6

    def per_step(s):
        s = s.replace(buffer=replay.add(algo._buffer(), s.buffer, replay.from_batch(batch, algo._from_env(s, batch.action))),
                      env_steps=s.env_steps + 8)
        keys = jax.random.split(key, (2, 3)).reshape(6, *jax.random.split(key, 1).shape[1:])
        return jax.lax.scan(lambda c, k: algo._gradient_step(c, k, hparams), s, keys)

    counted, (_, _, actor_steps) = jax.jit(per_step)(state)
    np.testing.assert_array_equal(np.asarray(actor_steps), [1, 0, 0, 1, 0, 0])
    for a, b in zip(jax.tree.leaves(grouped.params), jax.tree.leaves(counted.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grouped.target), jax.tree.leaves(counted.target)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
