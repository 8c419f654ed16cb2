"""Tests for purejaxpg.returns against independent NumPy references.

The references below are written as *forward* sums over the rest of each episode (find where the
episode or batch ends, then add up discounted terms), not as the backward recursions the library
uses, so the two can disagree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purejaxpg import returns as R

# One jitted entry point per function keeps the number of compilations small; gamma/lam are
# traced arguments, so changing them never recompiles.
gae_j = jax.jit(R.gae)
lambda_returns_j = jax.jit(R.lambda_returns)
rtg_j = jax.jit(R.reward_to_go)
nstep_j = jax.jit(R.n_step_targets, static_argnames="n")
standardize_j = jax.jit(R.standardize, static_argnames="axis")
group_standardize_j = jax.jit(R.group_standardize)

TOL = dict(rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# NumPy references (float64, explicit loops over envs and time).
# ----------------------------------------------------------------------------------------------


def _episode_end(te, tr, t, n):
    """First index e >= t where the episode of env n ends (done) or the batch ends."""
    T = te.shape[0]
    e = t
    while not (te[e, n] or tr[e, n]) and e < T - 1:
        e += 1
    return e


def np_reward_to_go(r, te, tr, gamma, nv=None):
    te, tr = np.asarray(te) != 0, np.asarray(tr) != 0
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            e = _episode_end(te, tr, t, n)
            g = sum(gamma ** (k - t) * float(r[k, n]) for k in range(t, e + 1))
            if nv is not None and not te[e, n]:
                g += gamma ** (e - t + 1) * float(nv[e, n])
            out[t, n] = g
    return out


def np_n_step(r, nv, te, tr, gamma, n_steps):
    te, tr = np.asarray(te) != 0, np.asarray(tr) != 0
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            g, m = 0.0, 0
            for k in range(n_steps):
                j = t + k
                g += gamma**k * float(r[j, n])
                m = k + 1
                if te[j, n] or tr[j, n] or j == T - 1:
                    break
            last = t + m - 1
            v_boot = 0.0 if te[last, n] else float(nv[last, n])
            out[t, n] = g + gamma**m * v_boot
    return out


def np_gae(r, v, nv, te, tr, gamma, lam):
    te, tr = np.asarray(te) != 0, np.asarray(tr) != 0
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            e = _episode_end(te, tr, t, n)
            a = 0.0
            for k in range(t, e + 1):
                delta = float(r[k, n]) + gamma * (0.0 if te[k, n] else float(nv[k, n])) - float(v[k, n])
                a += (gamma * lam) ** (k - t) * delta
            out[t, n] = a
    return out


def np_standardize(x, eps=1e-8, axis=None):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / (std + eps)


def make_batch(seed, T=9, N=4):
    """Random rollout with terminations and truncations in the middle of the batch."""
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, N)).astype(np.float32)
    v = rng.normal(size=(T, N)).astype(np.float32)
    nv = rng.normal(size=(T, N)).astype(np.float32)
    te = rng.random((T, N)) < 0.15
    tr = (rng.random((T, N)) < 0.15) & ~te
    # Env 0: terminated at 4, truncated at 7, the last episode runs into the end of the batch.
    te[:, 0], tr[:, 0] = False, False
    te[4, 0], tr[7, 0] = True, True
    # Env 1: truncated at 2, terminated at 6.
    te[:, 1], tr[:, 1] = False, False
    tr[2, 1], te[6, 1] = True, True
    # Env 2 (random otherwise): both kinds of end strictly inside the batch.
    te[3, 2], tr[3, 2] = True, False
    te[6, 2], tr[6, 2] = False, True
    # Env 3 (random otherwise): ends exactly at the last row, and both flags set at once at 4
    # (termination must win).
    te[T - 1, 3], tr[T - 1, 3] = True, False
    te[4, 3], tr[4, 3] = True, True
    return r, v, nv, te, tr


# ----------------------------------------------------------------------------------------------
# Fixed random batches.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag_dtype", [np.bool_, np.float32])
def test_reward_to_go_matches_numpy(flag_dtype):
    r, _, nv, te, tr = make_batch(0)
    te_f, tr_f = te.astype(flag_dtype), tr.astype(flag_dtype)
    gamma = 0.9
    np.testing.assert_allclose(rtg_j(r, te_f, tr_f, gamma), np_reward_to_go(r, te, tr, gamma), **TOL)
    np.testing.assert_allclose(
        rtg_j(r, te_f, tr_f, gamma, nv), np_reward_to_go(r, te, tr, gamma, nv), **TOL
    )
    # Without bootstrapping, termination and truncation are the same thing.
    np.testing.assert_allclose(
        rtg_j(r, te_f, tr_f, gamma), rtg_j(r, (te | tr).astype(flag_dtype), 0 * tr_f, gamma), **TOL
    )


def test_reward_to_go_hand_example():
    # One env, T = 5: r = 1 everywhere, truncation after step 1, batch ends mid-episode.
    r = np.ones((5, 1), np.float32)
    te = np.zeros((5, 1), bool)
    tr = np.zeros((5, 1), bool)
    tr[1, 0] = True
    nv = np.full((5, 1), 10.0, np.float32)
    g = 0.5
    expected = np.array([1 + g * (1 + g * 10), 1 + g * 10, 1 + g * (1 + g * (1 + g * 10)),
                         1 + g * (1 + g * 10), 1 + g * 10])[:, None]
    np.testing.assert_allclose(rtg_j(r, te, tr, g, nv), expected, rtol=1e-6)
    # Termination at the last row: nothing is bootstrapped there.
    te[4, 0] = True
    expected = np.array([1 + g * (1 + g * 10), 1 + g * 10, 1 + g + g**2, 1 + g, 1.0])[:, None]
    np.testing.assert_allclose(rtg_j(r, te, tr, g, nv), expected, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_matches_numpy(n):
    r, _, nv, te, tr = make_batch(1)
    gamma = 0.95
    np.testing.assert_allclose(
        nstep_j(r, nv, te, tr, gamma, n=n), np_n_step(r, nv, te, tr, gamma, n), **TOL
    )


def test_n_step_rejects_bad_n():
    r = jnp.zeros((3, 2))
    f = jnp.zeros((3, 2), bool)
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError):
            R.n_step_targets(r, r, f, f, 0.9, bad)


@pytest.mark.parametrize("flag_dtype", [np.bool_, np.float32])
def test_gae_and_lambda_returns_match_numpy(flag_dtype):
    r, v, nv, te, tr = make_batch(2)
    gamma, lam = 0.97, 0.8
    expected = np_gae(r, v, nv, te, tr, gamma, lam)
    te_f, tr_f = te.astype(flag_dtype), tr.astype(flag_dtype)
    np.testing.assert_allclose(gae_j(r, v, nv, te_f, tr_f, gamma, lam), expected, **TOL)
    np.testing.assert_allclose(
        lambda_returns_j(r, v, nv, te_f, tr_f, gamma, lam), expected + v, **TOL
    )


def test_special_cases_agree():
    """lam = 1 target is the bootstrapped reward-to-go, lam = 0 target is the 1-step target, and
    n >= T steps is the bootstrapped reward-to-go."""
    r, v, nv, te, tr = make_batch(3)
    gamma = 0.9
    # lam = 1 telescopes only if next_values[t] = values[t + 1] inside an episode.
    inside = ~(te | tr)
    inside[-1] = False
    nv = np.where(inside, np.roll(v, -1, axis=0), nv)
    mc = np_reward_to_go(r, te, tr, gamma, nv)
    np.testing.assert_allclose(lambda_returns_j(r, v, nv, te, tr, gamma, 1.0), mc, **TOL)
    np.testing.assert_allclose(nstep_j(r, nv, te, tr, gamma, n=20), mc, **TOL)
    one_step = r + gamma * np.where(te, 0.0, nv)
    np.testing.assert_allclose(lambda_returns_j(r, v, nv, te, tr, gamma, 0.0), one_step, **TOL)
    np.testing.assert_allclose(nstep_j(r, nv, te, tr, gamma, n=1), one_step, **TOL)


# ----------------------------------------------------------------------------------------------
# rlax reference.
# ----------------------------------------------------------------------------------------------

# Inputs and expected outputs of rlax's public test TruncatedGeneralizedAdvantageEstimationTest
# (rlax/_src/multistep_test.py). rlax is batch-major and its values have T + 1 entries.
_RLAX_R = np.array([[0.0, 0.0, 1.0, 0.0, -0.5], [0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
_RLAX_V = np.array([[1.0, 4.0, -3.0, -2.0, -1.0, -1.0], [-3.0, -2.0, -1.0, 0.0, 5.0, -1.0]], np.float32)
_RLAX_DISCOUNT = np.array([[0.99] * 5, [0.9, 0.9, 0.9, 0.0, 0.9]], np.float32)
_RLAX_EXPECTED = {
    1.0: [[-1.45118, -4.4557, 2.5396, 0.5249, -0.49], [3.0, 2.0, 1.0, 0.0, -4.9]],
    0.7: [[-0.676979, -5.248167, 2.4846, 0.6704, -0.49], [2.2899, 1.73, 1.0, 0.0, -4.9]],
    0.4: [[0.56731, -6.042, 2.3431, 0.815, -0.49], [1.725, 1.46, 1.0, 0.0, -4.9]],
}


@pytest.mark.parametrize("lam", [1.0, 0.7, 0.4])
def test_gae_rlax_golden_vectors(lam):
    # Row 0 has gamma = 0.99 and no termination; row 1 has gamma = 0.9 and terminates at t = 3.
    gammas = np.array([0.99, 0.9], np.float32)
    terminated = (_RLAX_DISCOUNT == 0.0)
    truncated = np.zeros_like(terminated)
    # Time-major [T, 1] per row; each row has its own gamma, so vmap over (row, gamma).
    ours = jax.jit(jax.vmap(
        lambda r, v, nv, te, tr, g, l: R.gae(r[:, None], v[:, None], nv[:, None], te[:, None],
                                             tr[:, None], g, l)[:, 0],
        in_axes=(0, 0, 0, 0, 0, 0, None),
    ))(_RLAX_R, _RLAX_V[:, :-1], _RLAX_V[:, 1:], terminated, truncated, gammas, lam)
    np.testing.assert_allclose(ours, np.array(_RLAX_EXPECTED[lam]), atol=1e-3)
    reference = jax.vmap(rlax.truncated_generalized_advantage_estimation, in_axes=(0, 0, None, 0))(
        _RLAX_R, _RLAX_DISCOUNT, lam, _RLAX_V
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_gae_matches_rlax_on_random_batch():
    r, v, nv, te, _ = make_batch(4)
    tr = np.zeros_like(te)
    # rlax: values has T + 1 entries, so feed episodes whose next state is the next row, i.e.
    # next_values[t] = values[t + 1] (terminations are handled by a zero discount).
    T, N = r.shape
    v_ext = np.concatenate([v, nv[-1:]], axis=0)
    nv_chain = v_ext[1:]
    gamma, lam = 0.95, 0.9
    ours = gae_j(r, v, nv_chain, te, tr, gamma, lam)
    discount = (gamma * (1.0 - te)).astype(np.float32)
    for n in range(N):
        ref = rlax.truncated_generalized_advantage_estimation(r[:, n], discount[:, n], lam, v_ext[:, n])
        np.testing.assert_allclose(ours[:, n], ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Truncation versus termination.
# ----------------------------------------------------------------------------------------------


def test_truncation_bootstraps_exactly_gamma_next_value():
    r, v, nv, te, tr = make_batch(5)
    gamma, lam = 0.9, 0.7
    t, n = 4, 0  # terminated in make_batch, steps 0..3 belong to the same episode
    assert te[t, n] and not tr[t, n]
    te2, tr2 = te.copy(), tr.copy()
    te2[t, n], tr2[t, n] = False, True
    target_term = np.asarray(lambda_returns_j(r, v, nv, te, tr, gamma, lam), np.float64)
    target_trunc = np.asarray(lambda_returns_j(r, v, nv, te2, tr2, gamma, lam), np.float64)
    diff = target_trunc - target_term
    np.testing.assert_allclose(diff[t, n], gamma * nv[t, n], rtol=1e-5, atol=1e-6)
    # Earlier steps of the same episode see it discounted by (gamma lam)^(t - s) ...
    s = t - 1
    while s >= 0 and not (te[s, n] or tr[s, n]):
        np.testing.assert_allclose(diff[s, n], (gamma * lam) ** (t - s) * gamma * nv[t, n],
                                   rtol=1e-4, atol=1e-6)
        s -= 1
    assert s == -1
    # ... later steps and other envs are untouched (both flags stop the lambda-chain).
    np.testing.assert_array_equal(diff[t + 1:, n], 0.0)
    np.testing.assert_array_equal(np.delete(diff, n, axis=1), 0.0)
    # The same holds for the reward-to-go with bootstrapping.
    g_term = np.asarray(rtg_j(r, te, tr, gamma, nv))
    g_trunc = np.asarray(rtg_j(r, te2, tr2, gamma, nv))
    np.testing.assert_allclose(g_trunc[t, n] - g_term[t, n], gamma * nv[t, n], rtol=1e-5, atol=1e-6)


def test_termination_never_bootstraps():
    # Huge next value at a termination must not leak into anything.
    r, v, nv, te, tr = make_batch(6)
    nv2 = nv.copy()
    nv2[te] = 1e6
    gamma, lam = 0.9, 0.9
    np.testing.assert_allclose(gae_j(r, v, nv2, te, tr, gamma, lam), gae_j(r, v, nv, te, tr, gamma, lam))
    np.testing.assert_allclose(rtg_j(r, te, tr, gamma, nv2), rtg_j(r, te, tr, gamma, nv))
    np.testing.assert_allclose(nstep_j(r, nv2, te, tr, gamma, n=3), nstep_j(r, nv, te, tr, gamma, n=3))


# ----------------------------------------------------------------------------------------------
# Standardisation.
# ----------------------------------------------------------------------------------------------


def test_standardize_degenerate_inputs_give_zeros():
    for x in (jnp.array([3.7]), jnp.array(3.7), jnp.full((5,), 0.1), jnp.full((4, 3), -1e4),
              jnp.full((1000,), 0.3)):
        out = standardize_j(x)
        assert out.shape == x.shape
        assert not np.any(np.isnan(out))
        np.testing.assert_array_equal(out, 0.0)
    g = group_standardize_j(jnp.array([[1.0, 2.0], [1.0, 5.0], [1.0, 3.0]]))
    np.testing.assert_array_equal(g[:, 0], 0.0)
    np.testing.assert_array_equal(group_standardize_j(jnp.array([[0.7, -2.0]])), 0.0)
    # Gradient through a degenerate standardisation is finite too.
    grad = jax.grad(lambda x: jnp.sum(standardize_j(x) * jnp.arange(4.0)))(jnp.full((4,), 2.0))
    assert np.all(np.isfinite(grad))


def test_standardize_matches_numpy():
    rng = np.random.default_rng(7)
    x = rng.normal(3.0, 2.0, size=(6, 5)).astype(np.float32)
    np.testing.assert_allclose(standardize_j(x), np_standardize(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(standardize_j(x, axis=0), np_standardize(x, axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(standardize_j(x, axis=-1), np_standardize(x, axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(standardize_j(x, axis=(0, 1)), np_standardize(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(standardize_j(x, eps=0.5), np_standardize(x, eps=0.5), rtol=1e-4, atol=1e-5)
    out = np.asarray(standardize_j(x))
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1.0) < 1e-4


def test_group_standardize_matches_numpy():
    # GRPO: 4 completions (axis 0) for each of 3 prompts.
    rewards = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.5], [1.0, 1.0, 0.5], [0.0, 0.0, 0.5]], np.float32)
    expected = np_standardize(rewards, axis=0)
    np.testing.assert_allclose(group_standardize_j(rewards), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected[:, 0], [1.0, -1.0, 1.0, -1.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(group_standardize_j(rewards))[:, 2], 0.0)


# ----------------------------------------------------------------------------------------------
# Property tests.
# ----------------------------------------------------------------------------------------------

_VALUES = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def rollouts(draw):
    T = draw(st.integers(1, 6))
    N = draw(st.integers(1, 3))
    arr = lambda: draw(hnp.arrays(np.float32, (T, N), elements=_VALUES))
    flags = lambda: draw(hnp.arrays(np.bool_, (T, N), elements=st.booleans()))
    r, v, nv = arr(), arr(), arr()
    te, tr = flags(), flags()
    gamma = draw(st.floats(0.0, 1.0))
    lam = draw(st.floats(0.0, 1.0))
    return r, v, nv, te, tr, gamma, lam


_SETTINGS = settings(max_examples=30, deadline=None)


@_SETTINGS
@given(rollouts())
def test_gae_property(batch):
    r, v, nv, te, tr, gamma, lam = batch
    np.testing.assert_allclose(gae_j(r, v, nv, te, tr, gamma, lam),
                               np_gae(r, v, nv, te, tr, gamma, lam), **TOL)


@_SETTINGS
@given(rollouts(), st.booleans())
def test_reward_to_go_property(batch, bootstrap):
    r, _, nv, te, tr, gamma, _ = batch
    nv = nv if bootstrap else None
    np.testing.assert_allclose(rtg_j(r, te, tr, gamma, nv), np_reward_to_go(r, te, tr, gamma, nv), **TOL)


@_SETTINGS
@given(rollouts(), st.integers(1, 4))
def test_n_step_property(batch, n):
    r, _, nv, te, tr, gamma, _ = batch
    np.testing.assert_allclose(nstep_j(r, nv, te, tr, gamma, n=n), np_n_step(r, nv, te, tr, gamma, n), **TOL)


# ----------------------------------------------------------------------------------------------
# jit / vmap over traced hyperparameters.
# ----------------------------------------------------------------------------------------------


def test_vmap_over_gamma_and_lam_under_jit():
    r, v, nv, te, tr = make_batch(8)
    gammas = jnp.array([0.0, 0.5, 0.9, 0.99, 1.0])
    lams = jnp.array([1.0, 0.0, 0.95, 0.5, 0.3])

    @jax.jit
    def sweep(gammas, lams):
        adv = jax.vmap(R.gae, in_axes=(None, None, None, None, None, 0, 0))(r, v, nv, te, tr, gammas, lams)
        rtg = jax.vmap(R.reward_to_go, in_axes=(None, None, None, 0, None))(r, te, tr, gammas, nv)
        nst = jax.vmap(lambda g: R.n_step_targets(r, nv, te, tr, g, 3))(gammas)
        std = jax.vmap(R.standardize)(adv)
        return adv, rtg, nst, std

    adv, rtg, nst, std = sweep(gammas, lams)
    for i, (g, l) in enumerate(zip(np.asarray(gammas, np.float64), np.asarray(lams, np.float64))):
        np.testing.assert_allclose(adv[i], np_gae(r, v, nv, te, tr, g, l), **TOL)
        np.testing.assert_allclose(rtg[i], np_reward_to_go(r, te, tr, g, nv), **TOL)
        np.testing.assert_allclose(nst[i], np_n_step(r, nv, te, tr, g, 3), **TOL)
        np.testing.assert_allclose(std[i], np_standardize(np_gae(r, v, nv, te, tr, g, l)), rtol=1e-3, atol=1e-4)


def test_vmap_over_envs_matches_batched_call():
    # Splitting the N axis off with vmap must not change anything (envs are independent).
    r, v, nv, te, tr = make_batch(9)
    gamma, lam = 0.9, 0.8
    per_env = jax.jit(jax.vmap(
        lambda *xs: R.gae(*[x[:, None] for x in xs], gamma, lam)[:, 0], in_axes=1, out_axes=1
    ))(r, v, nv, te, tr)
    np.testing.assert_allclose(per_env, gae_j(r, v, nv, te, tr, gamma, lam), rtol=1e-6, atol=1e-6)


def test_gradients_flow_through_values():
    """d A_t / d V(s_t) = -1, d A_t / d next_values_t = gamma (1 - terminated_t); within an
    episode d A_s / d next_values_t = (gamma lam)^(t - s) gamma for s <= t."""
    r, v, nv, te, tr = make_batch(10)
    gamma, lam = 0.9, 0.8
    jac = jax.jit(jax.jacrev(R.gae, argnums=(1, 2)))
    d_v, d_nv = (np.asarray(j) for j in jac(r, v, nv, te, tr, gamma, lam))  # [T, N, T, N]
    T, N = r.shape
    # Row t = 2 of env 1 is truncated; steps 0..2 form one episode.
    t, n = 2, 1
    np.testing.assert_allclose(d_v[t, n, t, n], -1.0, rtol=1e-6)
    for s in range(t + 1):
        np.testing.assert_allclose(d_nv[s, n, t, n], (gamma * lam) ** (t - s) * gamma, rtol=1e-5)
    # Row 4 of env 0 is terminated: nothing depends on its next value.
    np.testing.assert_array_equal(d_nv[:, :, 4, 0], 0.0)
    # Envs never mix.
    mask = np.ones((N, N), bool)
    np.fill_diagonal(mask, False)
    np.testing.assert_array_equal(d_v.transpose(1, 3, 0, 2)[mask], 0.0)
