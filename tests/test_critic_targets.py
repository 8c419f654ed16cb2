"""The critic's values and bootstrap values of a batch (`common.values_and_next_values`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import experiment, train
from purejaxpg.algorithms import common


def _episodic_batch(num_steps, num_envs, limit, full=False, seed=0):
    """A batch that keeps the rollout's invariants, built with NumPy: each env runs episodes that
    truncate after ``limit`` steps (a time limit, as gymnax's ``state.time >= max_steps``) or
    terminate; ``next_obs[t]`` is ``obs[t + 1]`` inside an episode and a fresh final observation
    where the episode ended at t. Env 1 terminates at each of its truncation steps (both flags).

    ``full=False``: the other envs terminate at random and start at random times, except env 0,
    which starts ``limit - 1`` steps into an episode. ``full=True``: every env starts there and
    terminates only where it truncates (env 1) or at the last step (env 2), so every env
    truncates at t = 0 and then as often as the limit allows: the batch holds the most truncations
    it can.
    """
    rng = np.random.default_rng(seed)
    obs = np.zeros((num_steps, num_envs, 4), np.float32)
    next_obs = np.zeros_like(obs)
    terminated = np.zeros((num_steps, num_envs), bool)
    truncated = np.zeros((num_steps, num_envs), bool)
    for n in range(num_envs):
        time = limit - 1 if (n == 0 or full) else int(rng.integers(0, limit))
        current = rng.normal(size=4)
        for t in range(num_steps):
            obs[t, n] = current
            time += 1
            truncated[t, n] = time >= limit
            if full:
                terminated[t, n] = (n == 2 and t == num_steps - 1)
            else:
                terminated[t, n] = n != 0 and rng.random() < 0.15
            if n == 1 and truncated[t, n]:
                terminated[t, n] = True
            following = rng.normal(size=4)
            next_obs[t, n] = following
            if terminated[t, n] or truncated[t, n]:
                current, time = rng.normal(size=4), 0  # the auto-reset's first observation
            else:
                current = following
    batch = type("Batch", (), {})()  # only the fields values_and_next_values reads
    batch.obs, batch.next_obs = jnp.asarray(obs), jnp.asarray(next_obs)
    batch.terminated, batch.truncated = jnp.asarray(terminated), jnp.asarray(truncated)
    return batch


@pytest.mark.parametrize("limit,full", [(5, False), (5, True), (1, False), (0, False)])
def test_values_and_next_values_equal_the_critic_on_next_obs(limit, full):
    """V(obs) and V(next_obs) (0 where terminated) against the critic applied to each array, with
    the critic run on the observations plus the truncated steps' final observations (limit 5: a
    budget of ceil(22 / 5) = 5 per env; ``full``: the batch has exactly that many), on everything
    (limit 1: every step truncates; limit 0: no known limit); eagerly and under jit."""
    num_steps, num_envs = 23, 3
    algo, cfg, hp = experiment.build("ppo", "CartPole-v1", dict(num_envs=num_envs, num_steps=num_steps,
                                                                    total_timesteps=num_steps * num_envs,
                                                                    num_minibatches=1))
    state = train.make_train(algo, cfg, hp).init(jax.random.PRNGKey(0), hp).learner
    assert state.max_episode_steps == 500  # from the env's spec
    state = state.replace(max_episode_steps=limit)
    batch = _episodic_batch(num_steps, num_envs, max(limit, 1), full)
    if limit == 5:
        assert common.truncation_budget(num_steps, num_envs, limit) == 15
        assert int(batch.truncated[:-1, 0].sum()) == 5  # env 0 uses its whole share
        if full:
            assert int(batch.truncated[:-1].sum()) == 15  # the whole budget
    expected_values = np.asarray(state.value(batch.obs))
    expected_next = np.where(np.asarray(batch.terminated), 0.0, np.asarray(state.value(batch.next_obs)))
    eager = common.values_and_next_values(state, batch)
    jitted = jax.jit(lambda s: common.values_and_next_values(s, batch))(state)
    for values, next_values in [eager, jitted]:
        assert values.shape == next_values.shape == (num_steps, num_envs)
        np.testing.assert_allclose(np.asarray(values), expected_values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(next_values), expected_next, rtol=1e-5, atol=1e-6)
    # the reference is not trivially satisfied: the final observations differ from obs[t + 1]
    ended = np.asarray(batch.truncated[:-1] & ~batch.terminated[:-1])
    assert ended.any()
    shifted = np.asarray(state.value(batch.obs[1:]))
    assert np.abs(shifted[ended] - expected_next[:-1][ended]).min() > 1e-4


def test_truncation_budget():
    assert common.truncation_budget(128, 4, 500) == 4    # CartPole: one time limit per env at most
    assert common.truncation_budget(100, 100, 200) == 100  # the Pendulum preset
    assert common.truncation_budget(128, 4, 10) == 4 * 13  # ceil(127 / 10)
    assert common.truncation_budget(128, 4, 1) == 127 * 4  # every step: all of them
    assert common.truncation_budget(128, 4, 0) == 127 * 4  # no known limit: all of them
    assert common.truncation_budget(1, 4, 500) == 0       # one step: only the last, always evaluated
