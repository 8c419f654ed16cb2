"""REINFORCE and REINFORCE with baseline: the estimator against an exact gradient, batch
bookkeeping against NumPy loops, configuration errors, and learning on CartPole-v1.

The exact-gradient tests use a two-step tabular MDP whose objective J(theta) is a closed-form sum
over all trajectories; its gradient (by autodiff of that sum) is the reference the sampled
estimator must match in expectation.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import _learning
from purejaxpg import experiment, networks, results, train
from purejaxpg.algorithms import common
from purejaxpg.algorithms.reinforce import (Reinforce, ReinforceBaseline, ReinforceBaselineHParams,
                                            ReinforceHParams, ends_in_batch, episode_step_index,
                                            masked_standardize)
from purejaxpg.config import ConfigError, TrainConfig
from purejaxpg.rollout import Transition

# ----------------------------------------------------------------------------------------------
# A two-step MDP with a closed-form objective.
#   s0 = 0 always; action a0 gives reward R0[a0] and moves to s1 in {1, 2} with P(s1 = 2) = P2[a0];
#   action a1 at s1 gives R1[s1, a1]; the episode terminates after the second step.
# A large reward offset makes returns far from 0, so a baseline matters.
# ----------------------------------------------------------------------------------------------

OFFSET = 5.0
R0 = np.array([1.0, 0.0]) + OFFSET
R1 = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]]) + OFFSET
P2 = np.array([0.2, 0.7])
GAMMA = 0.8
POLICY = networks.CategoricalPolicy(num_actions=2, obs_ndim=1, hidden=())  # linear softmax on one-hot = tabular
CRITIC = networks.Critic(obs_ndim=1, hidden=())                           # linear V on one-hot = tabular


def policy_params():
    params = POLICY.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    return jax.tree.unflatten(tree, [0.7 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def exact_objective(params):
    """J = sum_a0 pi(a0|0) [R0 + gamma sum_s1 P(s1|a0) sum_a1 pi(a1|s1) R1[s1, a1]]."""
    probs = POLICY.apply(params, jnp.eye(3)).probs                 # [3 states, 2 actions]
    v1 = jnp.sum(probs * R1, axis=1)                                # V(s) at step 1
    q0 = R0 + GAMMA * ((1 - P2) * v1[1] + P2 * v1[2])
    return jnp.sum(probs[0] * q0), v1


def exact_values(params):
    """V^pi of states 0, 1, 2 (state 0 only at step 0, states 1, 2 only at step 1)."""
    j, v1 = exact_objective(params)
    return jnp.array([j, v1[1], v1[2]])


def sample_batch(key, params, num_envs=16, episodes=4, unfinished_tail=True) -> Transition:
    """``[2 * episodes (+1), num_envs]`` time-major batch of whole episodes, plus optionally one
    step of an episode that the batch cuts (it must be dropped by cut="mask")."""
    logits = POLICY.apply(params, jnp.eye(3)).logits
    k0, k1, k2, k3 = jax.random.split(key, 4)
    shape = (episodes, num_envs)
    a0 = jax.random.categorical(k0, logits[0], shape=shape)
    s1 = 1 + jax.random.bernoulli(k1, jnp.asarray(P2)[a0]).astype(jnp.int32)
    a1 = jax.random.categorical(k2, logits[s1])
    def steps(first, second):  # interleave step 0 and step 1 of each episode along time
        return jnp.stack([first, second], 1).reshape((2 * episodes, num_envs) + first.shape[2:])

    state = steps(jnp.zeros(shape, jnp.int32), s1)
    action = steps(a0, a1)
    reward = steps(jnp.asarray(R0)[a0], jnp.asarray(R1)[s1, a1])
    terminated = steps(jnp.zeros(shape, bool), jnp.ones(shape, bool))
    length = steps(jnp.zeros(shape, jnp.int32), jnp.full(shape, 2, jnp.int32))
    if unfinished_tail:
        tail_action = jax.random.categorical(k3, logits[0], shape=(1, num_envs))
        state = jnp.concatenate([state, jnp.zeros((1, num_envs), jnp.int32)])
        action = jnp.concatenate([action, tail_action])
        reward = jnp.concatenate([reward, jnp.asarray(R0)[tail_action]])
        terminated = jnp.concatenate([terminated, jnp.zeros((1, num_envs), bool)])
        length = jnp.concatenate([length, jnp.zeros((1, num_envs), jnp.int32)])
    obs = jax.nn.one_hot(state, 3)
    zeros = jnp.zeros(reward.shape)
    return Transition(obs=obs, action=action, reward=reward.astype(jnp.float32), terminated=terminated,
                      truncated=jnp.zeros_like(terminated), next_obs=obs, extras={}, done=terminated,
                      finished_return=zeros, finished_length=length)


def make_state(params, baseline: bool):
    critic_params = None
    if baseline:
        critic_params = CRITIC.init(jax.random.PRNGKey(2), jnp.zeros((1, 3)))
        v = exact_values(params)
        critic_params = {"params": {"MLP_0": {"Dense_0": {"kernel": v[:, None], "bias": jnp.zeros(1)}}}}
    return common.ActorCriticState({"policy": params, "critic": critic_params}, None, POLICY,
                                   CRITIC if baseline else None)


def gradient_samples(algo, hparams, params, num_batches=2000, seed=0, **batch_kwargs):
    """``[num_batches, P]`` flattened per-batch gradient estimates of the objective.

    The library returns the gradient of a LOSS averaged over the kept steps: with 2 kept steps per
    episode, -2 * that gradient estimates grad J.
    """
    state = make_state(params, algo.baseline)

    def one(key):
        batch = sample_batch(key, params, **batch_kwargs)
        grads, *_ = algo.policy_gradient(state, batch, hparams)
        return -2.0 * ravel_pytree(grads)[0]

    keys = jax.random.split(jax.random.PRNGKey(seed), num_batches)
    return np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)


def z_scores(samples, exact):
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    return (mean - exact) / se


@pytest.fixture(scope="module")
def mdp():
    params = policy_params()
    exact = np.asarray(ravel_pytree(jax.grad(lambda p: exact_objective(p)[0])(params))[0], np.float64)
    return params, exact


def test_reinforce_is_unbiased_and_baseline_keeps_mean_and_lowers_variance(mdp):
    params, exact = mdp
    assert np.abs(exact).max() > 0.1  # a non-trivial gradient to estimate
    plain = gradient_samples(Reinforce(discount_weighting=True), ReinforceHParams(gamma=GAMMA), params)
    based = gradient_samples(ReinforceBaseline(discount_weighting=True), ReinforceBaselineHParams(gamma=GAMMA),
                             params)
    z_plain, z_based = z_scores(plain, exact), z_scores(based, exact)
    var_plain, var_based = plain.var(0, ddof=1).sum(), based.var(0, ddof=1).sum()
    print(f"\nexact grad J      {np.round(exact, 4)}\nREINFORCE mean    {np.round(plain.mean(0), 4)}"
          f"\nwith baseline     {np.round(based.mean(0), 4)}\nz (no baseline)   {np.round(z_plain, 2)}"
          f"\nz (baseline)      {np.round(z_based, 2)}\ntotal variance per batch: no baseline {var_plain:.4f}, "
          f"baseline {var_based:.4f} (ratio {var_based / var_plain:.3f})")
    assert np.abs(z_plain).max() < 4.5
    assert np.abs(z_based).max() < 4.5
    assert var_based < 0.5 * var_plain


def test_without_gamma_t_weighting_the_estimator_targets_another_vector(mdp):
    """Negative control, with the power of the test above: dropping gamma^t estimates
    grad J + (1 - gamma) grad_(step-1 policy) E[V(s_1)], a closed form of its own, not grad J."""
    params, exact = mdp

    def step1_value(p):  # E[V(s_1)] with the step-0 policy (hence the distribution of s_1) held fixed
        probs = POLICY.apply(p, jnp.eye(3)).probs
        p2 = jnp.sum(jax.lax.stop_gradient(probs[0]) * P2)
        v1 = jnp.sum(probs * R1, axis=1)
        return (1 - p2) * v1[1] + p2 * v1[2]

    extra = np.asarray(ravel_pytree(jax.grad(step1_value)(params))[0], np.float64)
    samples = gradient_samples(Reinforce(discount_weighting=False), ReinforceHParams(gamma=GAMMA), params)
    assert np.abs(z_scores(samples, exact + (1 - GAMMA) * extra)).max() < 4.5
    assert np.abs(z_scores(samples, exact)).max() > 6


def test_mask_drops_the_unfinished_tail_zero_keeps_it(mdp):
    params, _ = mdp
    batch = sample_batch(jax.random.PRNGKey(3), params)
    state = make_state(params, False)
    hp = ReinforceHParams(gamma=GAMMA)
    masked = jax.jit(Reinforce(cut="mask").policy_gradient)
    g1, g_mask, mask, _ = masked(state, batch, hp)
    _, g_zero, keep_all, _ = jax.jit(Reinforce(cut="zero").policy_gradient)(state, batch, hp)
    np.testing.assert_array_equal(np.asarray(mask)[:-1], 1.0)
    np.testing.assert_array_equal(np.asarray(mask)[-1], 0.0)
    np.testing.assert_array_equal(np.asarray(keep_all), 1.0)
    # the cut tail's "return" is its single reward; whole episodes have G_0 = r_0 + gamma r_1
    r = np.asarray(batch.reward)
    np.testing.assert_allclose(np.asarray(g_zero)[-1], r[-1], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g_mask)[0], r[0] + GAMMA * r[1], rtol=1e-6)
    # dropping the tail equals the gradient on the batch without the tail row
    no_tail = jax.tree.map(lambda x: x[:-1], batch)
    g2, *_ = masked(state, no_tail, hp)
    np.testing.assert_allclose(ravel_pytree(g1)[0], ravel_pytree(g2)[0], rtol=1e-5, atol=1e-7)
    # with a critic, cut="bootstrap" continues the cut tail with gamma * V(next_obs); whole episodes unchanged
    critic_state = make_state(params, True)
    _, g_boot, keep, _ = jax.jit(ReinforceBaseline(cut="bootstrap").policy_gradient)(
        critic_state, batch, ReinforceBaselineHParams(gamma=GAMMA))
    v_next = np.asarray(critic_state.value(batch.next_obs))
    np.testing.assert_allclose(np.asarray(g_boot)[-1], r[-1] + GAMMA * v_next[-1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_boot)[:-1], np.asarray(g_mask)[:-1], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(keep), 1.0)


# ----------------------------------------------------------------------------------------------
# Batch bookkeeping against NumPy loops
# ----------------------------------------------------------------------------------------------


def _stream_window(rng, num_envs, num_steps, max_len):
    """Simulate a long stream of episodes per env and cut a window out of its middle.

    Returns done, finished_length and the TRUE in-episode step index, all ``[T, N]``, plus a flag
    ``known``: the episode of that step starts or ends inside the window.
    """
    done = np.zeros((num_steps, num_envs), bool)
    length = np.zeros((num_steps, num_envs), np.int32)
    true_index = np.zeros((num_steps, num_envs), np.int32)
    known = np.zeros((num_steps, num_envs), bool)
    for n in range(num_envs):
        lengths = rng.integers(1, max_len + 1, size=4 * num_steps + 10)
        index = np.concatenate([np.arange(L) for L in lengths])
        episode = np.concatenate([np.full(L, i) for i, L in enumerate(lengths)])
        ends = np.concatenate([np.arange(L) == L - 1 for L in lengths])
        start = rng.integers(0, 2 * num_steps)
        window = slice(start, start + num_steps)
        done[:, n] = ends[window]
        true_index[:, n] = index[window]
        length[:, n] = np.where(ends[window], lengths[episode[window]], 0)
        ep = episode[window]
        starts_inside = (index[window] == 0)
        for t in range(num_steps):
            same = ep == ep[t]
            known[t, n] = bool((starts_inside & same).any() or (done[:, n] & same).any())
    return done, length, true_index, known


@pytest.mark.parametrize("max_len", [3, 12, 40])
def test_episode_step_index_matches_simulated_streams(max_len):
    rng = np.random.default_rng(max_len)
    done, length, true_index, known = _stream_window(rng, num_envs=7, num_steps=20, max_len=max_len)
    got = np.asarray(jax.jit(episode_step_index)(done, length))
    np.testing.assert_array_equal(got[known], true_index[known])
    # an episode that spans the whole window is counted from the window's start
    t = np.broadcast_to(np.arange(20)[:, None], done.shape)
    np.testing.assert_array_equal(got[~known], t[~known])
    if max_len <= 20:
        assert known.all()


def test_ends_in_batch_matches_loop():
    rng = np.random.default_rng(0)
    done = rng.random((15, 6)) < 0.2
    expected = np.array([[done[t:, n].any() for n in range(6)] for t in range(15)])
    np.testing.assert_array_equal(np.asarray(ends_in_batch(done)), expected)


def test_masked_standardize_matches_numpy_and_constant_gives_zeros():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (9, 4)).astype(np.float32)
    mask = rng.random((9, 4)) < 0.6
    kept = x[mask]
    expected = (x - kept.mean()) / (kept.std() + 1e-8)
    np.testing.assert_allclose(np.asarray(masked_standardize(jnp.asarray(x), jnp.asarray(mask))), expected,
                               rtol=1e-4, atol=1e-5)
    const = np.where(mask, 0.1, rng.normal(size=(9, 4))).astype(np.float32)  # kept values all equal
    out = np.asarray(masked_standardize(jnp.asarray(const), jnp.asarray(mask)))
    np.testing.assert_array_equal(out[mask], 0.0)


# ----------------------------------------------------------------------------------------------
# Configuration errors (before compiling)
# ----------------------------------------------------------------------------------------------


def test_bad_settings_are_rejected_with_clear_errors():
    with pytest.raises(ConfigError, match=r"cut='foo'.*'mask', 'zero'"):
        Reinforce(cut="foo")
    with pytest.raises(ConfigError, match="reinforce_baseline"):
        Reinforce(cut="bootstrap")
    ReinforceBaseline(cut="bootstrap")  # fine with a critic
    cfg = TrainConfig("CartPole-v1", num_envs=4, num_steps=50, total_timesteps=400)
    with pytest.raises(ConfigError, match="critic_minibatches=3 does not divide"):
        train.make_train(ReinforceBaseline(critic_minibatches=3), cfg, ReinforceBaselineHParams())
    with pytest.raises(ConfigError, match="lr=0"):
        train.make_train(Reinforce(), cfg, ReinforceHParams(lr=0.0))
    with pytest.raises(ConfigError, match="takes"):
        train.make_train(ReinforceBaseline(), cfg, ReinforceHParams())
    with pytest.raises(ConfigError, match=r"cut='bootstrap'.*reinforce_baseline"):
        experiment.build("reinforce", "CartPole-v1", {"cut": "bootstrap"})
    with pytest.raises(ConfigError, match="critic_lr"):  # the baseline's own hyperparameter is not reinforce's
        experiment.build("reinforce", "CartPole-v1", {"critic_lr": 1e-3})


def test_presets_by_name():
    algo, config, hp = experiment.build("reinforce_baseline", "CartPole-v1", {"critic_epochs": 3})
    assert isinstance(algo, ReinforceBaseline) and algo.critic_epochs == 3 and algo.normalize_advantages
    assert (config.num_envs, config.num_steps) == (8, 500) and float(hp.critic_lr) == pytest.approx(1e-2)
    algo, config, hp = experiment.build("reinforce", "CartPole-v1")
    assert type(algo) is Reinforce and config.num_steps >= 500  # long enough to finish most episodes


# ----------------------------------------------------------------------------------------------
# Learning on CartPole-v1 (random policy: ~22)
# ----------------------------------------------------------------------------------------------

LEARN = TrainConfig("CartPole-v1", num_envs=8, num_steps=500, total_timesteps=80_000)


def _learn(algo, hparams, config=LEARN, seeds=8):
    t0 = time.perf_counter()
    out = train.run_chunked(train.make_train(algo, config, hparams), _learning.seed_keys(seeds), hparams)
    final = results.final_returns(out.metrics, fraction=0.2)
    print(f"\n{algo.name}: final returns {np.round(final, 1)} after {config.total_timesteps} steps, "
          f"{time.perf_counter() - t0:.1f} s (compile {out.compile_seconds:.1f} s)")
    return final


@pytest.fixture(scope="module")
def learned():
    """Textbook comparison at the same budget, seeds and policy learning rate: A_t = G_t against
    A_t = G_t - V(s_t), no normalisation in either (normalising subtracts the batch mean, itself a
    baseline). Over 12 seeds: REINFORCE 121-470 (mean 240), with the baseline 372-500 (mean 473)."""
    plain = _learn(Reinforce(), ReinforceHParams(lr=1e-2))
    based = _learn(ReinforceBaseline(critic_epochs=5), ReinforceBaselineHParams(lr=1e-2, critic_lr=1e-2))
    return plain, based


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_reinforce_improves_on_cartpole(learned):
    plain, _ = learned
    _learning.check(plain, every_seed_above=60, mean_above=150)


@pytest.mark.slow  # the default run's 15-minute budget; covered in -m slow
@pytest.mark.learning
def test_reinforce_baseline_beats_reinforce_on_cartpole(learned):
    plain, based = learned
    _learning.check(based, every_seed_above=250, mean_above=plain.mean() + 100)


@pytest.mark.slow
@pytest.mark.parametrize("name, threshold", [("reinforce", 400), ("reinforce_baseline", 475)])
def test_presets_reach_high_returns_on_cartpole(name, threshold):
    """The CartPole-v1 presets (2e5 steps); over 6 seeds: reinforce 449-500, reinforce_baseline 493-500."""
    algo, config, hparams = experiment.build(name, "CartPole-v1")
    assert np.all(_learn(algo, hparams, config) >= threshold)
