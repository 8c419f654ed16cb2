"""MADDPG (Lowe et al. 2017): Gumbel-softmax, counterfactual joint actions, per-agent networks,
critic targets and actor gradients against NumPy references; a short run on MPE."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import experiment, objectives, replay, train

import _learning  # noqa: E402  (tests/_learning.py)
from purejaxpg.algorithms.maddpg import MADDPG
from purejaxpg.config import ConfigError, TrainConfig
from purejaxpg.distributions import gumbel_noise, gumbel_softmax
from purejaxpg.networks import MLP, MultiAgentActor, MultiAgentQCritic

pytest.importorskip("jaxmarl")
SPREAD = "jaxmarl/MPE_simple_spread_v3"
TINY = dict(hidden=(16, 16), batch_size=16, buffer_size=256, learning_starts=32, gradient_steps=2,
            num_envs=4, num_steps=8, total_timesteps=4 * 8 * 4)


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Gumbel-softmax


def test_gumbel_softmax_is_the_softmax_of_noisy_logits_over_the_temperature():
    logits = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    key = jax.random.PRNGKey(3)
    g = np.asarray(gumbel_noise(key, logits.shape))
    for tau in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(gumbel_softmax(jnp.asarray(logits), key, tau), np_softmax((logits + g) / tau),
                                   rtol=1e-5, atol=1e-6)


def test_argmax_of_gumbel_softmax_samples_the_categorical():
    """The Gumbel-max trick: argmax of the soft sample is distributed as softmax(logits)."""
    logits = jnp.asarray([1.0, 0.0, -1.0, 2.0, 0.5])
    n = 200_000
    draws = jax.vmap(lambda k: jnp.argmax(gumbel_softmax(logits, k, 1.0)))(jax.random.split(jax.random.PRNGKey(0), n))
    freq = np.bincount(np.asarray(draws), minlength=5) / n
    p = np_softmax(np.asarray(logits))
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))  # 5 standard errors


def test_hard_gumbel_softmax_is_one_hot_with_the_soft_gradient():
    logits = jnp.asarray([[0.3, -0.2, 1.1], [0.0, 0.5, -0.7]])
    key = jax.random.PRNGKey(1)
    hard = gumbel_softmax(logits, key, 0.7, hard=True)
    soft = gumbel_softmax(logits, key, 0.7)
    np.testing.assert_allclose(hard, jax.nn.one_hot(jnp.argmax(soft, -1), 3), atol=1e-6)  # one_hot + y - y
    w = jnp.asarray([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    g_hard = jax.grad(lambda l: jnp.sum(w * gumbel_softmax(l, key, 0.7, hard=True)))(logits)
    g_soft = jax.grad(lambda l: jnp.sum(w * gumbel_softmax(l, key, 0.7)))(logits)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# counterfactual joint actions, per-agent losses and networks


def test_counterfactual_joint_actions_replace_only_agent_i():
    rng = np.random.default_rng(1)
    joint, own = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    out = np.asarray(objectives.counterfactual_joint_actions(jnp.asarray(joint), jnp.asarray(own)))
    want = np.empty((3, 4, 3, 5))
    for i in range(3):
        for j in range(3):
            want[i, :, j] = own[:, i] if i == j else joint[:, j]
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_q_ensemble_loss_sums_per_agent_losses():
    rng = np.random.default_rng(2)
    q, y = rng.normal(size=(2, 7, 3)), rng.normal(size=(7, 3))
    want = sum(0.5 * np.mean((q[k, :, i] - y[:, i]) ** 2) for k in range(2) for i in range(3))
    np.testing.assert_allclose(objectives.q_ensemble_loss(jnp.asarray(q), jnp.asarray(y)), want, rtol=1e-5)


def test_per_agent_networks_are_separate_mlps():
    """Agent i's output is an MLP with agent i's slice of the stacked parameters, on agent i's row
    (actor, local critic) or on the joint input (centralised critic)."""
    rng = np.random.default_rng(3)
    obs = jnp.asarray(rng.normal(size=(5, 3, 4)), jnp.float32)
    act = jnp.asarray(rng.normal(size=(5, 3, 2)), jnp.float32)
    actor = MultiAgentActor(3, 2, (8,))
    params = actor.init(jax.random.PRNGKey(0), obs)
    inner = params["params"]["PerAgentMLP_0"]["VmapMLP_0"]
    out = actor.apply(params, obs)
    for i in range(3):
        p_i = {"params": jax.tree.map(lambda x: x[i], inner)}
        np.testing.assert_allclose(out[:, i], MLP((8,), 2, "relu", 0.01).apply(p_i, obs[:, i]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(inner["Dense_0"]["kernel"][0], inner["Dense_0"]["kernel"][1])  # own initialisations
    for centralised in (True, False):
        critic = MultiAgentQCritic(3, (8,), centralised=centralised)
        cp = critic.init(jax.random.PRNGKey(1), obs, act)
        q = critic.apply(cp, obs, act)
        cinner = cp["params"]["PerAgentMLP_0"]["VmapMLP_0"]
        for i in range(3):
            p_i = {"params": jax.tree.map(lambda x: x[i], cinner)}
            x = (jnp.concatenate([obs.reshape(5, -1), act.reshape(5, -1)], -1) if centralised
                 else jnp.concatenate([obs[:, i], act[:, i]], -1))
            np.testing.assert_allclose(q[:, i], MLP((8,), 1, "relu", 1.0).apply(p_i, x)[:, 0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the learner's target and actor gradient


@pytest.fixture(scope="module")
def learner():
    algo, config, hparams = experiment.build("maddpg", SPREAD, TINY)
    trainer = train.make_train(algo, config, hparams)
    state = algo.init(jax.random.PRNGKey(0), trainer.spec, hparams)
    rng = np.random.default_rng(4)
    b, a, d, k = 6, 3, trainer.spec.obs_shape[1], trainer.spec.num_actions
    batch = replay.Experience(obs=jnp.asarray(rng.normal(size=(b, a, d)), jnp.float32),
                              action=jax.nn.softmax(jnp.asarray(rng.normal(size=(b, a, k)), jnp.float32)),
                              reward=jnp.asarray(rng.normal(size=(b, a)), jnp.float32),
                              terminated=jnp.asarray([False, True, False, False, True, False]),
                              next_obs=jnp.asarray(rng.normal(size=(b, a, d)), jnp.float32))
    # targets unlike the online networks, so that using the wrong ones shows
    state = state.replace(target=jax.tree.map(lambda x: x * 0.5 + 0.1, state.target))
    return algo, hparams, state, batch


def test_critic_target_is_each_agents_reward_plus_its_target_q_at_target_actor_samples(learner):
    algo, hparams, state, batch = learner
    key = jax.random.PRNGKey(7)
    y = np.asarray(algo.critic_target(state, batch, key, hparams))
    logits = state.actor.apply(state.target["actor"], batch.next_obs)
    next_action = gumbel_softmax(logits, key, hparams.temperature)
    q_next = np.asarray(state.critic.apply(jax.tree.map(lambda x: x[0], state.target["critic"]), batch.next_obs,
                                           next_action))
    r, term = np.asarray(batch.reward), np.asarray(batch.terminated)
    want = np.empty_like(r)
    for b in range(r.shape[0]):
        for i in range(r.shape[1]):
            want[b, i] = r[b, i] + (0.0 if term[b] else float(hparams.gamma) * q_next[b, i])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_actor_gradient_of_agent_i_is_that_of_its_own_critic_through_its_own_action(learner):
    """d loss / d theta_i = d/d theta_i [-mean_b Q_i(x, a_1..mu_i(o_i)..a_A)] + penalty term, by a
    loop over agents that feeds critic i the replayed actions of the others."""
    algo, hparams, state, batch = learner
    key = jax.random.PRNGKey(9)
    grads = jax.grad(lambda p: algo.actor_loss(p, state, (batch.obs, batch.action), key, hparams)[0])(
        state.params["actor"])
    critic_params = jax.tree.map(lambda x: x[0], state.params["critic"])
    for i in range(3):
        def loss_i(p, i=i):
            logits = state.actor.apply(p, batch.obs)
            own = gumbel_softmax(logits, key, hparams.temperature)
            joint = batch.action.at[:, i].set(own[:, i])
            q = state.critic.apply(critic_params, batch.obs, joint)[:, i]
            return -jnp.mean(q) + hparams.logit_penalty * jnp.mean(logits[:, i] ** 2)
        g_i = jax.grad(loss_i)(state.params["actor"])
        # only agent i's slice of the stacked actor parameters
        pick = lambda t, i=i: jax.tree.map(lambda x: np.asarray(x[i]), t["params"])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), pick(grads), pick(g_i))


# ---------------------------------------------------------------------------------------------
# runs and errors


@pytest.mark.usefixtures("fast_compiles")
def test_a_short_run_of_independent_learners_fills_the_replay_and_takes_finite_steps():
    """The local-critic variant end to end (the centralised default runs in
    tests/test_reliability_algorithms.py)."""
    algo, config, hparams = experiment.build("maddpg", SPREAD, dict(TINY, centralised_critic=False))
    trainer = train.make_train(algo, config, hparams)
    assert trainer.spec.obs_shape == (3, 18) and trainer.spec.joint_agents
    result = train.run_chunked(trainer, train.seed_keys(0, 1), hparams)
    assert np.all(np.isfinite(result.metrics["critic_loss"]))
    assert result.metrics["buffer_size"][0, -1] == 4 * 8 * 4  # one transition per env step, agents inside
    assert result.metrics["env_steps"][0, -1] == 4 * 8 * 4
    assert result.metrics["critic_loss"][0, -1] > 0  # it learnt after the warm-up


def test_maddpg_on_a_single_agent_env_is_a_clear_error():
    algo, config, hparams = experiment.build("maddpg", "CartPole-v1", {})
    with pytest.raises(ConfigError, match="multi-agent"):
        train.make_train(algo, config, hparams)


@pytest.mark.slow
def test_maddpg_beats_the_random_policy_on_simple_spread():
    """Random actions score about -26.7 per agent per episode; every seed clearly better."""
    algo, config, hparams = experiment.build("maddpg", SPREAD, {"total_timesteps": 300_000})  # the preset otherwise
    trainer = train.make_train(algo, config, hparams)
    result = train.run_chunked(trainer, _learning.seed_keys(4, base=2024), hparams)  # PUREJAXPG_TEST_SEED_OFFSET moves them
    final = np.nanmean(result.metrics["episode_return"][:, -trainer.num_iterations // 10:], axis=1)
    assert np.all(final > -20.0), final
