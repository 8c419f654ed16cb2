"""Soft Q-learning (purejaxpg.algorithms.sql): its soft Bellman target (truncation-correct, against a
NumPy evaluation of the target critic), the amortised SVGD gradient of its sampler (against the
NumPy SVGD loop pushed through the sampler's Jacobian), bad settings, and a quick learning check."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import experiment, replay, train
from purejaxpg.config import ConfigError

import _learning
from test_svgd import np_median_bandwidth, np_svgd_direction

TINY = dict(hidden=(16, 16), batch_size=8, buffer_size=64, learning_starts=16, num_particles=5, value_samples=7)


def build(env_id="Pendulum-v1", **overrides):
    settings = dict(TINY, num_envs=2, num_steps=4, total_timesteps=2 * 4 * 6)
    settings.update(overrides)
    algo, config, hparams = experiment.build("sql", env_id, settings, use_presets=False)
    return train.make_train(algo, config, hparams), hparams


def experience(obs, action, reward, terminated, next_obs):
    return replay.Experience(jnp.asarray(obs, jnp.float32), jnp.asarray(action, jnp.float32),
                             jnp.asarray(reward, jnp.float32), jnp.asarray(terminated), jnp.asarray(next_obs, jnp.float32))


def np_q(params, obs, action):
    """The critic MLP ([s, a] -> relu layers -> linear) evaluated in NumPy float64 from its parameters."""
    layers = params["params"]["MLP_0"]
    x = np.concatenate([obs, action], axis=-1).astype(np.float64)
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(names):
        x = x @ np.asarray(layers[name]["kernel"], np.float64) + np.asarray(layers[name]["bias"], np.float64)
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return x[..., 0]


@pytest.mark.parametrize("alpha", [0.3, 2.0])
def test_soft_target_bootstraps_through_truncation_and_not_through_termination(alpha, fast_compiles):
    """y = r + gamma alpha log(mean_j exp(Q'(s', a_j) / alpha) * 2^D) with the same uniform actions
    a_j, computed here in NumPy from the target critic's weights; r alone when terminated. A
    truncated step is a step with terminated=False (its next_obs the final observation)."""
    trainer, hparams = build()
    hparams = dataclasses.replace(hparams, alpha=alpha)
    algo = trainer.algo
    state = algo.init(jax.random.PRNGKey(1), trainer.spec, hparams)
    # a target critic different from the online one, so that using the wrong one fails
    state = state.replace(target={"critic": jax.tree.map(lambda p: 1.5 * p + 0.05, state.target["critic"])})
    obs = np.array([[0.3, -0.2, 1.0]] * 2)
    next_obs = np.array([[0.9, 0.4, -2.0]] * 2)
    batch = experience(obs, [[0.1], [0.1]], [-1.5, -1.5], [False, True], next_obs)
    key = jax.random.PRNGKey(2)
    y = np.asarray(jax.jit(algo.critic_target)(state, batch, key, hparams))
    assert y[1] == pytest.approx(-1.5)
    # the M = 7 uniform actions the target drew for the two next observations
    actions = np.asarray(jax.random.uniform(key, (2, 7, 1), minval=-1.0, maxval=1.0), np.float64)
    q = np_q(jax.tree.map(lambda p: p[0], state.target["critic"]), np.repeat(next_obs[:1], 7, 0), actions[0])
    value = alpha * math.log(np.mean(np.exp(q / alpha)) * 2.0)  # / q(a) = * 2^D, D = 1
    assert y[0] == pytest.approx(-1.5 + float(hparams.gamma) * value, rel=1e-4, abs=1e-4)


def test_sampler_gradient_is_the_amortised_svgd_update(fast_compiles):
    """grad_phi of the actor loss = -(1 / (B K)) sum_{b,i} J_{b,i}^T Delta a_{b,i}, with Delta from the
    NumPy SVGD loop on the particles, the score grad_a Q / alpha (+ the squash barrier) taken per
    particle, and J the sampler's Jacobian (a vector-Jacobian product)."""
    trainer, hparams = build(squash_correction=True)
    hparams = dataclasses.replace(hparams, alpha=0.37)  # not 1, so that a missing 1/alpha shows
    algo = trainer.algo
    state = algo.init(jax.random.PRNGKey(3), trainer.spec, hparams)
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)
    key = jax.random.PRNGKey(4)
    grads = jax.jit(jax.grad(lambda p: algo.actor_loss(p, state, obs, key, hparams)[0]))(state.params["actor"])

    actor_params = state.params["actor"]
    noise = jax.random.normal(key, (3, 5, 1))
    actions, vjp = jax.vjp(lambda p: state.actor.apply(p, obs, noise), actor_params)
    particles = np.asarray(actions, np.float64)
    critic = jax.tree.map(lambda p: p[0], state.params["critic"])
    q_grad = jax.jit(jax.vmap(jax.grad(lambda a, s: state.critic.apply(critic, s, a)), in_axes=(0, None)))
    deltas = np.zeros_like(particles)
    for b in range(3):
        score = np.asarray(q_grad(actions[b], obs[b]), np.float64) / float(hparams.alpha)
        score += -2.0 * particles[b] / (1.0 - particles[b] ** 2 + 1e-6)  # grad of log(1 - a^2 + eps)
        deltas[b] = np_svgd_direction(particles[b], score, np_median_bandwidth(particles[b]))
    expected = vjp(jnp.asarray(-deltas / (3 * 5), jnp.float32))[0]
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    (dict(num_particles=1), "num_particles=1 must be at least 2"),
    (dict(num_particles=0), "num_particles=0 must be a positive integer"),
    (dict(value_samples=0), "value_samples=0 must be a positive integer"),
    (dict(normalize_obs=True), "normalize_obs"),
])
def test_bad_settings_are_refused_before_compiling(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(**overrides)


def test_discrete_actions_are_refused():
    with pytest.raises(ConfigError, match="continuous"):
        build("CartPole-v1")


def test_alpha_must_be_positive():
    with pytest.raises(ConfigError, match="alpha=0"):
        experiment.build("sql", "Pendulum-v1", dict(alpha=0.0))


@pytest.mark.slow
def test_learns_pendulum_quickly():
    """The preset at 1.5e4 steps, 2 seeds: each far above a random policy (about -1200). On 2-seed
    development runs the preset's episodes between 1e4 and 1.5e4 steps averaged -170 to -280.
    Under -m slow: it took 59 s on a loaded 2-core machine (SQL learns Pendulum later than SAC,
    whose quick test stops at 6e3 steps)."""
    out = _learning.run_named("sql", "Pendulum-v1", dict(total_timesteps=15_000), num_seeds=2, base=30)
    _learning.check(_learning.final_returns(out), every_seed_above=-1000, mean_above=-800)


@pytest.mark.slow
def test_learns_pendulum_at_5e4_steps_on_8_seeds():
    """The preset at the issue's budget, 8 seeds: mean above -300 (issue #20's goal)."""
    out = _learning.run_named("sql", "Pendulum-v1", {"total_timesteps": 50_000}, num_seeds=8, base=40)
    _learning.check(_learning.final_returns(out), mean_above=-300)
