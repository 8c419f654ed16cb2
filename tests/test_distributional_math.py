"""Tests of D4PG's pure functions and its N-step replay against independent references.

* `targets.categorical_projection`: the C51 projection written as a plain NumPy loop over target
  atoms (floor / ceil neighbours, Bellemare et al. 2017, Algorithm 1), rlax's
  ``categorical_l2_project``, and closed forms (a terminal step puts its mass on r's two
  neighbours; inside the support the projection keeps the mean).
* `targets.n_step_window_return`: a NumPy loop, on windows with an episode end (terminated or
  truncated) at every position, and a second end after the first.
* `targets.categorical_cross_entropy`, `replay.importance_weights`: NumPy formulas.
* `replay.SequenceReplay`: windows are consecutive steps of one env, never cross the write head,
  uniform sampling covers exactly the complete windows, priorities follow the windows' completion.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import replay
from purejaxpg import targets as T

# ----------------------------------------------------------------------------------------------
# NumPy references
# ----------------------------------------------------------------------------------------------


def np_projection_loop(support, probs, reward, discount):
    """C51's Algorithm 1 (Bellemare et al. 2017) atom by atom, in float64."""
    support = np.asarray(support, np.float64)
    v_min, v_max, num = support[0], support[-1], len(support)
    dz = (v_max - v_min) / (num - 1)
    out = np.zeros((len(reward), num))
    for b in range(len(reward)):
        for j in range(num):
            tz = min(max(reward[b] + discount[b] * support[j], v_min), v_max)
            pos = (tz - v_min) / dz
            low, up = int(np.floor(pos)), int(np.ceil(pos))
            if low == up:  # exactly on an atom
                out[b, low] += probs[b, j]
            else:
                out[b, low] += probs[b, j] * (up - pos)
                out[b, up] += probs[b, j] * (pos - low)
    return out


def np_n_step_loop(reward, terminated, truncated, gamma):
    """Walk each window: add gamma^k r_k, stop at the first end; no bootstrap after a termination."""
    B, n = reward.shape
    ret, discount, end = np.zeros(B), np.zeros(B), np.zeros(B, int)
    for b in range(B):
        g, k = 0.0, 0
        while True:
            g += gamma ** k * reward[b, k]
            if terminated[b, k]:
                disc = 0.0
                break
            if truncated[b, k] or k == n - 1:
                disc = gamma ** (k + 1)
                break
            k += 1
        ret[b], discount[b], end[b] = g, disc, k
    return ret, discount, end


def random_probs(rng, shape):
    p = rng.gamma(0.5, size=shape)
    return p / p.sum(-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# categorical projection
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_atoms, v_min, v_max", [(51, -10.0, 10.0), (11, -1600.0, 0.0), (5, 0.0, 4.0)])
def test_projection_matches_the_c51_loop_with_atoms_beyond_both_ends_and_terminal_steps(num_atoms, v_min, v_max):
    rng = np.random.default_rng(0)
    support = np.linspace(v_min, v_max, num_atoms)
    B = 64
    width = v_max - v_min
    probs = random_probs(rng, (B, num_atoms))
    # rewards far below and above the support, discounts from 0 (terminal) to 1
    reward = rng.uniform(v_min - 0.7 * width, v_max + 0.7 * width, B)
    discount = rng.choice([0.0, 0.5, 0.99 ** 5, 0.99, 1.0], B)
    got = T.categorical_projection(jnp.asarray(support, jnp.float32), jnp.asarray(probs, jnp.float32),
                                   jnp.asarray(reward, jnp.float32), jnp.asarray(discount, jnp.float32))
    want = np_projection_loop(support, probs, reward, discount)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got).sum(-1), 1.0, rtol=1e-5)
    # the batch covered both clipped ends
    assert np.any(reward - np.abs(discount) * width > v_max) or np.any(reward + discount * v_max > v_max)
    assert np.any(reward + discount * v_min < v_min)


def test_projection_on_atoms_exactly_keeps_every_probability():
    """r = 0, discount 1: the target atoms are the support itself; r = dz: shifted by one atom, the
    last two atoms' mass piles on the top atom (clipping)."""
    support = np.linspace(-2.0, 2.0, 5)
    probs = np.asarray([[0.1, 0.2, 0.3, 0.25, 0.15]] * 2)
    got = np.asarray(T.categorical_projection(jnp.asarray(support, jnp.float32), jnp.asarray(probs, jnp.float32),
                                              jnp.asarray([0.0, 1.0]), jnp.ones(2)))
    np.testing.assert_allclose(got[0], probs[0], atol=1e-6)
    np.testing.assert_allclose(got[1], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)


def test_terminal_step_puts_all_mass_on_the_rewards_neighbours():
    """discount 0: m = (z_{i+1} - r, r - z_i) / dz on the atoms around r, whatever the next distribution;
    r beyond the support: all mass on the end atom."""
    support = np.linspace(-1600.0, 0.0, 51)  # dz = 32
    rng = np.random.default_rng(1)
    probs = random_probs(rng, (3, 51))
    reward = np.asarray([-100.0, -2000.0, 50.0])
    got = np.asarray(T.categorical_projection(jnp.asarray(support, jnp.float32), jnp.asarray(probs, jnp.float32),
                                              jnp.asarray(reward, jnp.float32), jnp.zeros(3)))
    want = np.zeros((3, 51))
    i = int((-100.0 + 1600.0) // 32.0)  # z_i = -128, z_{i+1} = -96
    want[0, i], want[0, i + 1] = (-96.0 + 100.0) / 32.0, (-100.0 + 128.0) / 32.0
    want[1, 0] = 1.0
    want[2, -1] = 1.0
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_projection_agrees_with_rlax_and_keeps_the_mean_inside_the_support():
    import rlax

    rng = np.random.default_rng(2)
    support = jnp.linspace(-5.0, 5.0, 21)
    probs = jnp.asarray(random_probs(rng, (32, 21)), jnp.float32)
    reward = jnp.asarray(rng.uniform(-8, 8, 32), jnp.float32)
    discount = jnp.asarray(rng.uniform(0, 1, 32), jnp.float32)
    got = T.categorical_projection(support, probs, reward, discount)
    ref = jax.vmap(lambda p, r, d: rlax.categorical_l2_project(r + d * support, p, support))(probs, reward, discount)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-6)
    # inside the support linear interpolation keeps the mean: E[m] = r + d E[Z]
    inside = jnp.asarray(rng.uniform(-1, 1, 32), jnp.float32)
    small = 0.5 * discount
    m = T.categorical_projection(support, probs, inside, small)
    np.testing.assert_allclose(np.asarray(m @ support), np.asarray(inside + small * (probs @ support)), atol=1e-4)


# ----------------------------------------------------------------------------------------------
# N-step window return
# ----------------------------------------------------------------------------------------------


def _windows_with_every_end(n):
    """Every window of n steps with no end, or a first end (terminated / truncated) at every
    position k, optionally followed by a later end (which must be ignored)."""
    rows = []
    for kind, k in itertools.product(("none", "terminated", "truncated"), range(n)):
        if kind == "none" and k > 0:
            continue
        for later in (None, *range(k + 1, n)):
            term, trunc = np.zeros(n, bool), np.zeros(n, bool)
            if kind == "terminated":
                term[k] = True
            elif kind == "truncated":
                trunc[k] = True
            if later is not None and kind != "none":
                (term if later % 2 else trunc)[later] = True
            rows.append((term, trunc))
    return np.asarray([r[0] for r in rows]), np.asarray([r[1] for r in rows])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_n_step_return_matches_a_loop_with_ends_at_every_position(n):
    term, trunc = _windows_with_every_end(n)
    rng = np.random.default_rng(n)
    reward = rng.normal(size=term.shape)
    gamma = 0.9
    ret, discount, end = T.n_step_window_return(jnp.asarray(reward, jnp.float32), jnp.asarray(term),
                                                jnp.asarray(trunc), gamma)
    want_ret, want_discount, want_end = np_n_step_loop(reward, term, trunc, gamma)
    np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(discount), want_discount, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(end), want_end)
    if n == 5:  # the cases the loop distinguishes are all present
        assert np.any(term[:, 2] & ~trunc[:, :2].any(1)) and np.any(trunc[:, 2] & ~term[:, :2].any(1))


def test_truncation_bootstraps_with_gamma_to_the_steps_taken_and_termination_does_not():
    """Closed form on three windows of n = 3 with rewards 1: no end -> (1 + g + g^2, g^3, 2);
    truncated at step 1 -> (1 + g, g^2, 1); terminated at step 1 -> (1 + g, 0, 1)."""
    g = 0.5
    term = jnp.asarray([[0, 0, 0], [0, 0, 0], [0, 1, 0]], bool)
    trunc = jnp.asarray([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    ret, discount, end = T.n_step_window_return(jnp.ones((3, 3)), term, trunc, g)
    np.testing.assert_allclose(np.asarray(ret), [1.75, 1.5, 1.5])
    np.testing.assert_allclose(np.asarray(discount), [0.125, 0.25, 0.0])
    np.testing.assert_array_equal(np.asarray(end), [2, 1, 1])


# ----------------------------------------------------------------------------------------------
# cross-entropy, importance weights
# ----------------------------------------------------------------------------------------------


def test_cross_entropy_and_importance_weights_match_numpy():
    rng = np.random.default_rng(3)
    m = random_probs(rng, (6, 7))
    logits = rng.normal(size=(6, 7)) * 3
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(T.categorical_cross_entropy(jnp.asarray(m), jnp.asarray(logits))),
                               -(m * log_q).sum(-1), rtol=1e-5)
    p = np.asarray([0.1, 0.02, 0.3, 0.0, 0.05])
    size, beta = 40, 0.4
    w = (size * p[p > 0]) ** -beta
    want = np.zeros(5)
    want[p > 0] = w / w.max()
    np.testing.assert_allclose(np.asarray(replay.importance_weights(jnp.asarray(p), beta)), want, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(replay.importance_weights(jnp.asarray(p), 0.0)), p > 0)


# ----------------------------------------------------------------------------------------------
# the N-step replay
# ----------------------------------------------------------------------------------------------


def _steps(ids, num_envs):
    """A [T, N] batch of steps whose fields encode the global step id = t * 1000 + env."""
    ids = np.asarray(ids, np.float32)
    return replay.Step(jnp.asarray(ids[..., None]), jnp.asarray(ids[..., None]), jnp.asarray(ids),
                       jnp.zeros(ids.shape, bool), jnp.zeros(ids.shape, bool), jnp.asarray(ids[..., None]))


def _fill(buf, num_envs, num_steps, iterations):
    example = replay.Step(jnp.zeros(1), jnp.zeros(1), jnp.zeros(()), jnp.zeros((), bool), jnp.zeros((), bool),
                          jnp.zeros(1))
    state = buf.init(example)
    add = jax.jit(buf.add)
    t = 0
    for _ in range(iterations):
        ids = (t + np.arange(num_steps))[:, None] * 1000 + np.arange(num_envs)[None, :]
        state = add(state, _steps(ids, num_envs))
        t += num_steps
    return state, t


@pytest.mark.parametrize("prioritised", [False, True])
def test_windows_are_consecutive_steps_of_one_env_and_cover_exactly_the_complete_ones(prioritised):
    """3 envs, a 23-slot ring (not a multiple of 3) after 14 steps per env (wrapped): every drawn
    window is steps t, t+1, t+2 of one env, all still stored; every complete window is drawn."""
    num_envs, length = 3, 3
    buf = replay.SequenceReplay(buffer_size=23, batch_size=64, length=length, prioritised=prioritised)
    state, steps = _fill(buf, num_envs, 2, 7)
    stored = set(np.asarray(state.items.experience.reward[0]).tolist())
    assert len(stored) == 23
    complete = {i for i in stored if {i + 1000, i + 2000} <= stored}
    assert int(buf.complete_windows(state)) == len(complete) == 23 - (length - 1) * num_envs
    drawn = set()
    sample = jax.jit(buf.sample)
    for k in range(8):
        windows, start, probs = sample(state, jax.random.PRNGKey(k))
        r = np.asarray(windows.reward)
        np.testing.assert_array_equal(r[:, 1:] - r[:, :-1], 1000.0)  # consecutive steps of one env
        np.testing.assert_array_equal(np.asarray(windows.obs)[..., 0], r)
        assert set(r[:, 0].tolist()) <= complete
        np.testing.assert_allclose(np.asarray(probs), 1.0 / len(complete), rtol=1e-5)  # all priorities equal
        drawn |= set(r[:, 0].tolist())
    assert drawn == complete


def test_priorities_follow_completion_and_set_priorities():
    """After 4 steps of 2 envs in a 10-slot ring with windows of 3: the windows starting at steps 0
    and 1 have the initial priority 1, the rest 0; set_priorities makes sampling probabilities
    proportional to priority^alpha and leaves incomplete windows at 0."""
    buf = replay.SequenceReplay(buffer_size=10, batch_size=4, length=3, prioritised=True)
    state, _ = _fill(buf, 2, 1, 4)
    from flashbax.buffers import sum_tree

    leaves = np.asarray(sum_tree.get_batch(state.priorities, jnp.arange(10)))
    np.testing.assert_array_equal(leaves, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # slots 0..3: steps 0, 1 of both envs
    alpha = 0.6
    state = buf.set_priorities(state, jnp.asarray([0, 1, 2, 3, 6]), jnp.asarray([1.0, 2.0, 3.0, 4.0, 9.0]), alpha)
    leaves = np.asarray(sum_tree.get_batch(state.priorities, jnp.arange(10)))
    want = np.zeros(10)
    want[:4] = np.asarray([1.0, 2.0, 3.0, 4.0]) ** alpha  # slot 6 (incomplete) stays 0
    np.testing.assert_allclose(leaves, want, rtol=1e-5)
    windows, start, probs = buf.sample(state, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(probs), want[np.asarray(start)] / want.sum(), rtol=1e-5)
    # one more step per env completes the windows starting at step 2 with the largest priority so far
    state = buf.add(state, _steps(np.asarray([[4000.0, 4001.0]]), 2))
    leaves = np.asarray(sum_tree.get_batch(state.priorities, jnp.arange(10)))
    np.testing.assert_allclose(leaves[4:6], 4.0 ** alpha, rtol=1e-5)
    np.testing.assert_array_equal(leaves[6:], 0.0)
