"""Tests of the off-policy actor-critic math (targets, objectives, tanh-Gaussian, exploration noise).

Each function is checked against an independent reference: an explicit NumPy loop, a closed form,
central finite differences, numerical integration or Monte Carlo. Monte Carlo tolerances are a
fixed number of standard errors (computed from the sample size), never tuned to one run.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import exploration as X
from purejaxpg import objectives as O
from purejaxpg import targets as T
from purejaxpg.distributions import TanhGaussian, tanh_gaussian_log_prob, tanh_log_det_jacobian
from _reference import np_fd_grad

TOL = dict(rtol=1e-5, atol=1e-5)
N_SE = 5.0  # Monte Carlo tolerance in standard errors

# ----------------------------------------------------------------------------------------------
# NumPy (float64) references, written as explicit loops / closed forms.
# ----------------------------------------------------------------------------------------------


def np_bellman_loop(reward, terminated, next_q, gamma, next_log_prob=None, alpha=0.0):
    """y_b = r_b if the step terminated, else r_b + gamma (min over critics - alpha log pi), by loops."""
    reward = np.asarray(reward, np.float64)
    next_q = np.asarray(next_q, np.float64)
    if next_q.ndim == 1:
        next_q = next_q[None]
    y = np.zeros(reward.shape[0])
    for b in range(reward.shape[0]):
        if bool(terminated[b]):
            y[b] = reward[b]
            continue
        smallest = next_q[0, b]
        for k in range(1, next_q.shape[0]):
            if next_q[k, b] < smallest:
                smallest = next_q[k, b]
        soft = smallest if next_log_prob is None else smallest - alpha * float(next_log_prob[b])
        y[b] = reward[b] + gamma * soft
    return y


def np_normal_logpdf(u, mean, std):
    return -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def np_log1m_tanh2(u):
    """log(1 - tanh(u)^2) in float64 via log(4) - 2|u| - 2 log1p(exp(-2|u|)) (finite for any u)."""
    a = np.abs(np.asarray(u, np.float64))
    return math.log(4.0) - 2.0 * a - 2.0 * np.log1p(np.exp(-2.0 * a))


def np_normal_cdf(z):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z, np.float64) / math.sqrt(2.0)))


# ----------------------------------------------------------------------------------------------
# 1-2. Bellman targets.
# ----------------------------------------------------------------------------------------------

# Step 0 terminated, step 1 truncated (time limit: terminated is False). Same reward, same next value.
TERMINATED = jnp.array([True, False])
TRUNCATED = np.array([False, True])  # not an input of the targets: a time limit is not a terminal state
R2 = jnp.array([1.5, 1.5], jnp.float32)
V2 = jnp.array([4.0, 4.0], jnp.float32)
GAMMA = 0.9


def test_td_target_truncation_bootstraps_termination_does_not():
    """td_target: the truncated step gives r + gamma v', the terminated one r (hand-computed values)."""
    assert TRUNCATED[1] and not bool(TERMINATED[1])
    y = T.td_target(R2, TERMINATED, V2, GAMMA)
    np.testing.assert_allclose(y, [1.5, 1.5 + 0.9 * 4.0], **TOL)
    # the flag may also come as a float or int 0/1
    np.testing.assert_allclose(T.td_target(R2, jnp.array([1.0, 0.0]), V2, GAMMA), y, **TOL)
    np.testing.assert_allclose(T.td_target(R2, jnp.array([1, 0]), V2, GAMMA), y, **TOL)


def test_clipped_double_q_target_truncation_bootstraps_termination_does_not():
    """clipped_double_q_target: truncated step gives r + gamma min_k Q'_k, terminated gives r (hand-computed)."""
    next_q = jnp.array([[4.0, 4.0], [6.0, 6.0]], jnp.float32)  # min over critics = V2
    y = T.clipped_double_q_target(R2, TERMINATED, next_q, GAMMA)
    np.testing.assert_allclose(y, [1.5, 1.5 + 0.9 * 4.0], **TOL)


def test_soft_bellman_target_truncation_bootstraps_termination_does_not():
    """soft_bellman_target: truncated step gives r + gamma (min Q' - alpha log pi'), terminated gives exactly r."""
    next_q = jnp.array([[4.0, 4.0], [6.0, 6.0]], jnp.float32)
    next_log_prob = jnp.array([-0.7, -0.7], jnp.float32)
    y = T.soft_bellman_target(R2, TERMINATED, next_q, next_log_prob, 0.2, GAMMA)
    np.testing.assert_allclose(y, [1.5, 1.5 + 0.9 * (4.0 + 0.2 * 0.7)], **TOL)


@pytest.mark.parametrize("num_critics", [1, 2])
def test_targets_match_numpy_loop_on_random_batches(num_critics):
    """td / clipped double-Q / soft targets on random batches (K = 1, 2) against an explicit NumPy loop."""
    rng = np.random.default_rng(num_critics)
    B = 37
    reward = rng.normal(size=B).astype(np.float32)
    terminated = rng.random(B) < 0.3
    next_q = rng.normal(2.0, 3.0, size=(num_critics, B)).astype(np.float32)
    next_log_prob = rng.normal(-1.0, 1.0, size=B).astype(np.float32)
    gamma, alpha = 0.97, 0.35
    assert terminated.any() and not terminated.all()

    y_td = T.td_target(jnp.asarray(reward), jnp.asarray(terminated), jnp.asarray(next_q[0]), gamma)
    np.testing.assert_allclose(y_td, np_bellman_loop(reward, terminated, next_q[0], gamma), **TOL)

    y_cdq = T.clipped_double_q_target(jnp.asarray(reward), jnp.asarray(terminated), jnp.asarray(next_q), gamma)
    assert y_cdq.shape == (B,)
    np.testing.assert_allclose(y_cdq, np_bellman_loop(reward, terminated, next_q, gamma), **TOL)

    y_soft = T.soft_bellman_target(jnp.asarray(reward), jnp.asarray(terminated), jnp.asarray(next_q),
                                   jnp.asarray(next_log_prob), alpha, gamma)
    assert y_soft.shape == (B,)
    np.testing.assert_allclose(y_soft, np_bellman_loop(reward, terminated, next_q, gamma, next_log_prob, alpha),
                               **TOL)


def test_clipped_double_q_takes_min_over_critic_axis():
    """clipped_double_q_target bootstraps from the elementwise min over axis 0 (hand-picked values, K != B)."""
    # the smaller critic differs between samples, so a min over the batch axis, a max or a mean all differ
    next_q = jnp.array([[1.0, 5.0, -2.0], [3.0, 2.0, -1.0]], jnp.float32)  # min over critics: [1, 2, -2]
    reward = jnp.zeros(3, jnp.float32)
    y = T.clipped_double_q_target(reward, jnp.zeros(3, bool), next_q, 0.5)
    np.testing.assert_allclose(y, [0.5, 1.0, -1.0], **TOL)


def test_soft_target_subtracts_alpha_log_prob_inside_bootstrap():
    """soft_bellman_target: alpha = 0 equals clipped double-Q; the entropy term is -gamma (1 - term) alpha log pi'."""
    rng = np.random.default_rng(7)
    B = 16
    reward = jnp.asarray(rng.normal(size=B).astype(np.float32))
    terminated = jnp.asarray(np.arange(B) % 3 == 0)
    next_q = jnp.asarray(rng.normal(size=(2, B)).astype(np.float32))
    lp = jnp.asarray(rng.normal(-1.0, 2.0, size=B).astype(np.float32))
    gamma, alpha = 0.99, 0.3
    cdq = T.clipped_double_q_target(reward, terminated, next_q, gamma)
    np.testing.assert_allclose(T.soft_bellman_target(reward, terminated, next_q, lp, 0.0, gamma), cdq, **TOL)
    soft = T.soft_bellman_target(reward, terminated, next_q, lp, alpha, gamma)
    expected_gap = -gamma * (1.0 - np.asarray(terminated, np.float64)) * alpha * np.asarray(lp, np.float64)
    np.testing.assert_allclose(np.asarray(soft) - np.asarray(cdq), expected_gap, rtol=1e-4, atol=1e-5)
    # a more likely next action (higher log pi) lowers the soft value of a non-terminal step
    assert soft[1] - cdq[1] == pytest.approx(-gamma * alpha * float(lp[1]), rel=1e-4, abs=1e-5)


# ----------------------------------------------------------------------------------------------
# 3. TD3 target policy smoothing.
# ----------------------------------------------------------------------------------------------


def test_smoothed_target_action_stays_in_nonsymmetric_bounds():
    """smoothed_target_action lies in [low, high] for scalar (-2, 1) and per-dimension bounds, and reaches below -1."""
    rng = np.random.default_rng(3)
    mu = jnp.asarray(rng.uniform(-3.0, 2.0, size=(4000, 3)).astype(np.float32))
    key = jax.random.key(11)
    a = np.asarray(T.smoothed_target_action(mu, key, 0.5, 0.8, low=-2.0, high=1.0))
    assert a.shape == (4000, 3)
    assert a.min() >= -2.0 and a.max() <= 1.0
    assert a.min() == -2.0 and a.max() == 1.0  # the bounds are reached (mu' outside them)
    assert (a < -1.0).mean() > 0.1  # a symmetric [-1, 1] clip would not allow this

    low = jnp.array([-2.0, -0.5, 0.0])
    high = jnp.array([1.0, 0.5, 3.0])
    a = np.asarray(T.smoothed_target_action(mu, key, 0.5, 0.8, low=low, high=high))
    for d in range(3):
        assert a[:, d].min() >= float(low[d]) and a[:, d].max() <= float(high[d])
        assert a[:, d].min() == float(low[d])
    assert a[:, 2].max() > 1.0


def test_smoothed_target_action_clips_noise_before_bounds():
    """smoothed_target_action: |a - mu'| <= c with wide bounds, clip mass ~ 2 P(N > c/sigma) (erf), outer clip last."""
    n, d = 20000, 2
    mu = jnp.zeros((n, d), jnp.float32)
    key = jax.random.key(5)
    sigma, c = 0.5, 0.4
    wide = np.asarray(T.smoothed_target_action(mu, key, sigma, c, low=-100.0, high=100.0), np.float64)
    pert = wide  # a - mu' with mu' = 0
    assert np.abs(pert).max() <= c * (1 + 1e-6)
    assert pert.std() > 0.1  # the noise is there
    # fraction clipped at +c (and at -c) against the Gaussian tail 1 - Phi(c / sigma)
    p_tail = 1.0 - float(np_normal_cdf(c / sigma))
    se = math.sqrt(p_tail * (1 - p_tail) / pert.size)
    at_hi = np.mean(pert >= c * (1 - 1e-6))
    at_lo = np.mean(pert <= -c * (1 - 1e-6))
    assert abs(at_hi - p_tail) < N_SE * se, (at_hi, p_tail)
    assert abs(at_lo - p_tail) < N_SE * se, (at_lo, p_tail)
    # same key, same noise: the narrow-bound result is the wide one clipped to the bounds afterwards
    low, high = jnp.array([-0.1, -2.0]), jnp.array([1.0, 0.2])
    narrow = np.asarray(T.smoothed_target_action(mu, key, sigma, c, low=low, high=high))
    np.testing.assert_allclose(narrow, np.clip(wide, np.asarray(low), np.asarray(high)), rtol=0, atol=1e-6)


def test_smoothed_target_action_zero_noise_is_clipped_target():
    """smoothed_target_action with noise_std = 0 equals np.clip(mu', low, high) exactly."""
    rng = np.random.default_rng(4)
    mu = rng.uniform(-3.0, 3.0, size=(50, 3)).astype(np.float32)
    low, high = np.array([-2.0, -0.5, 0.0], np.float32), np.array([1.0, 0.5, 3.0], np.float32)
    a = T.smoothed_target_action(jnp.asarray(mu), jax.random.key(0), 0.0, 0.5, jnp.asarray(low), jnp.asarray(high))
    np.testing.assert_array_equal(np.asarray(a), np.clip(mu, low, high))


def test_smoothed_target_action_noise_std_monte_carlo():
    """smoothed_target_action with a large noise_clip and interior mu': a - mu' has mean 0 and std noise_std (MC)."""
    n, d = 20000, 3
    sigma = 0.1
    mu = jnp.full((n, d), -0.5, jnp.float32)  # 15 sigma from both bounds (-2, 1): the outer clip never acts
    a = T.smoothed_target_action(mu, jax.random.key(21), sigma, 10.0, low=-2.0, high=1.0)
    pert = np.asarray(a, np.float64) + 0.5
    m = pert.size
    assert abs(pert.mean()) < N_SE * sigma / math.sqrt(m)
    assert abs(pert.std() - sigma) < N_SE * sigma / math.sqrt(2 * m)


# ----------------------------------------------------------------------------------------------
# 4. Polyak averaging.
# ----------------------------------------------------------------------------------------------


def _pytrees(seed=0):
    rng = np.random.default_rng(seed)

    def tree():
        return {"dense": {"kernel": rng.normal(size=(3, 4)).astype(np.float32),
                          "bias": rng.normal(size=4).astype(np.float32)},
                "heads": (rng.normal(size=(2,)).astype(np.float32),
                          [rng.normal(size=(2, 2)).astype(np.float32)])}

    return tree(), tree()


def test_polyak_update_closed_form_on_nested_pytree():
    """polyak_update on a nested dict/tuple/list pytree equals tau*o + (1 - tau)*t leaf by leaf (NumPy)."""
    target, online = _pytrees()
    tau = 0.3
    new = T.polyak_update(jax.tree.map(jnp.asarray, target), jax.tree.map(jnp.asarray, online), tau)
    assert jax.tree.structure(new) == jax.tree.structure(target)
    for n, t, o in zip(jax.tree.leaves(new), jax.tree.leaves(target), jax.tree.leaves(online)):
        np.testing.assert_allclose(n, tau * o.astype(np.float64) + (1 - tau) * t.astype(np.float64), **TOL)
    # tau may be traced
    new_jit = jax.jit(T.polyak_update)(target, online, jnp.float32(tau))
    for a, b in zip(jax.tree.leaves(new_jit), jax.tree.leaves(new)):
        np.testing.assert_allclose(a, b, **TOL)


def test_polyak_update_tau_one_copies_tau_zero_keeps():
    """polyak_update: tau = 1 gives the online parameters, tau = 0 the target ones (up to float32 rounding)."""
    target, online = _pytrees(1)
    copied = T.polyak_update(target, online, 1.0)
    kept = T.polyak_update(target, online, 0.0)
    for c, k, t, o in zip(*(jax.tree.leaves(x) for x in (copied, kept, target, online))):
        np.testing.assert_allclose(c, o, rtol=0, atol=1e-6)
        np.testing.assert_allclose(k, t, rtol=0, atol=1e-6)


def test_polyak_update_converges_geometrically():
    """k repeated polyak_updates towards fixed online params leave ||t_k - o|| = (1 - tau)^k ||t_0 - o||."""
    target, online = _pytrees(2)
    tau = 0.1

    def dist(tree):
        return math.sqrt(sum(float(np.sum((np.asarray(a, np.float64) - b) ** 2))
                             for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(online))))

    step = jax.jit(T.polyak_update)
    d0 = dist(target)
    t = target
    for k in range(1, 41):
        t = step(t, online, tau)
        if k in (1, 5, 20, 40):
            assert dist(t) == pytest.approx((1 - tau) ** k * d0, rel=1e-4)


# ----------------------------------------------------------------------------------------------
# 5-7. Off-policy objectives.
# ----------------------------------------------------------------------------------------------

# A fixed differentiable critic Q(s, a) = -||a - C s||^2 + v . tanh(M a) and a linear actor mu(s) = W s.
_rng = np.random.default_rng(42)
S_DIM, A_DIM, B_DPG = 4, 2, 8
STATES = _rng.normal(size=(B_DPG, S_DIM))
C_MAT = _rng.normal(size=(A_DIM, S_DIM)) * 0.5
M_MAT = _rng.normal(size=(3, A_DIM))
V_VEC = _rng.normal(size=3)
W0 = _rng.normal(size=(A_DIM, S_DIM)) * 0.3


def _jax_critic(states, actions):
    c, m, v = (jnp.asarray(x, states.dtype) for x in (C_MAT, M_MAT, V_VEC))
    return -jnp.sum((actions - states @ c.T) ** 2, axis=-1) + jnp.tanh(actions @ m.T) @ v


def _dpg_loss(w, states):
    return O.dpg_actor_loss(_jax_critic(states, states @ w.T))


def test_dpg_actor_loss_value():
    """dpg_actor_loss(q) equals -np.mean(q)."""
    q = np.random.default_rng(0).normal(size=13).astype(np.float32)
    assert float(O.dpg_actor_loss(jnp.asarray(q))) == pytest.approx(-np.mean(q.astype(np.float64)), rel=1e-5)


def test_dpg_actor_loss_gradient_matches_finite_differences_and_chain_rule():
    """grad_W dpg_actor_loss(Q(s, W s)) equals central finite differences (x64) and -mean_b grad_a Q s^T by hand."""
    with jax.enable_x64(True):
        states = jnp.asarray(STATES)
        g = np.asarray(jax.jit(jax.grad(_dpg_loss))(jnp.asarray(W0), states))
        loss = jax.jit(_dpg_loss)
        fd = np_fd_grad(lambda w: float(loss(jnp.asarray(w), states)), W0)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)
    # deterministic policy gradient (Silver et al. 2014): grad_theta J = mean_b grad_a Q(s_b, a)|_{mu(s_b)} dmu/dtheta,
    # with a = W s, d a_i / d W_ij = s_j; the loss is -J.
    chain = np.zeros_like(W0)
    for b in range(B_DPG):
        s = STATES[b]
        a = W0 @ s
        grad_a_q = -2.0 * (a - C_MAT @ s) + M_MAT.T @ (V_VEC * (1.0 - np.tanh(M_MAT @ a) ** 2))
        chain -= np.outer(grad_a_q, s) / B_DPG
    np.testing.assert_allclose(g, chain, rtol=1e-7, atol=1e-9)
    # the same in float32
    g32 = jax.jit(jax.grad(_dpg_loss))(jnp.asarray(W0, jnp.float32), jnp.asarray(STATES, jnp.float32))
    np.testing.assert_allclose(g32, chain, rtol=1e-4, atol=1e-5)


def test_q_ensemble_loss_matches_numpy_loop():
    """q_ensemble_loss equals sum_k 0.5 mean_b (Q_k - y)^2 computed by loops, for K = 1 and K = 2."""
    rng = np.random.default_rng(8)
    for k_critics in (1, 2):
        q = rng.normal(size=(k_critics, 11)).astype(np.float32)
        y = rng.normal(size=11).astype(np.float32)
        ref = 0.0
        for k in range(k_critics):
            ref += 0.5 * sum((float(q[k, b]) - float(y[b])) ** 2 for b in range(11)) / 11
        assert float(O.q_ensemble_loss(jnp.asarray(q), jnp.asarray(y))) == pytest.approx(ref, rel=1e-5)


def test_q_ensemble_loss_gradients():
    """q_ensemble_loss: d/dQ_kb = (Q_kb - y_b) / B (closed form) and no gradient reaches the targets."""
    rng = np.random.default_rng(9)
    q = jnp.asarray(rng.normal(size=(2, 6)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=6).astype(np.float32))
    gq, gy = jax.grad(O.q_ensemble_loss, argnums=(0, 1))(q, y)
    np.testing.assert_allclose(gq, (np.asarray(q) - np.asarray(y)) / 6, **TOL)
    np.testing.assert_array_equal(np.asarray(gy), np.zeros(6))


def test_sac_actor_loss_value_and_gradients():
    """sac_actor_loss equals mean(alpha lp - q) (NumPy); grads are alpha/B, -1/B; alpha gets no gradient."""
    rng = np.random.default_rng(10)
    q = rng.normal(size=9).astype(np.float32)
    lp = rng.normal(-1.0, 1.0, size=9).astype(np.float32)
    alpha = 0.25
    ref = np.mean(alpha * lp.astype(np.float64) - q)
    assert float(O.sac_actor_loss(jnp.asarray(q), jnp.asarray(lp), alpha)) == pytest.approx(ref, rel=1e-5)
    gq, glp, galpha = jax.grad(O.sac_actor_loss, argnums=(0, 1, 2))(jnp.asarray(q), jnp.asarray(lp), jnp.float32(alpha))
    np.testing.assert_allclose(gq, np.full(9, -1.0 / 9), **TOL)
    np.testing.assert_allclose(glp, np.full(9, alpha / 9), **TOL)
    assert float(galpha) == 0.0


def test_temperature_loss_value():
    """temperature_loss equals -mean(log_alpha (lp + H_target)) (NumPy, in log alpha, not alpha)."""
    rng = np.random.default_rng(12)
    lp = rng.normal(-0.5, 1.0, size=10).astype(np.float32)
    log_alpha, h = -1.3, -2.0
    ref = -np.mean(log_alpha * (lp.astype(np.float64) + h))
    got = float(O.temperature_loss(jnp.float32(log_alpha), jnp.asarray(lp), h))
    assert got == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("entropy_below_target", [True, False])
def test_temperature_loss_gradient_sign(entropy_below_target):
    """d temperature_loss / d log_alpha = -(mean lp + H) = entropy - H (finite differences); log_probs get none."""
    rng = np.random.default_rng(13)
    lp = rng.normal(-1.0, 0.5, size=32)
    entropy = -lp.mean()
    h_target = entropy + (1.0 if entropy_below_target else -1.0)
    log_alpha = 0.2
    with jax.enable_x64(True):
        lp_j = jnp.asarray(lp)
        g = float(jax.grad(O.temperature_loss)(jnp.float64(log_alpha), lp_j, h_target))
        fd = np_fd_grad(lambda la: float(O.temperature_loss(jnp.asarray(la), lp_j, h_target)),
                        np.float64(log_alpha))
        g_lp = jax.grad(O.temperature_loss, argnums=1)(jnp.float64(log_alpha), lp_j, h_target)
    assert g == pytest.approx(float(fd), rel=1e-6)
    assert g == pytest.approx(entropy - h_target, rel=1e-9)
    # a gradient-descent step raises alpha while the entropy is below the target, lowers it above
    new_log_alpha = log_alpha - 0.1 * g
    assert (new_log_alpha > log_alpha) == entropy_below_target
    np.testing.assert_array_equal(np.asarray(g_lp), np.zeros(32))


# ----------------------------------------------------------------------------------------------
# 8. Tanh-squashed Gaussian.
# ----------------------------------------------------------------------------------------------

# One jitted entry point per method: eager dispatch would compile every primitive separately.
_sample_and_log_prob = jax.jit(lambda dist, key: dist.sample_and_log_prob(key))
_log_prob = jax.jit(lambda dist, action: dist.log_prob(action))


@pytest.mark.parametrize("mean,std", [(0.3, 0.7), (-1.0, 0.5), (0.0, 1.0)])
def test_tanh_gaussian_density_integrates_to_one(mean, std):
    """exp(TanhGaussian.log_prob(a)) integrates to 1 over a in (-1, 1) (midpoint rule, 400k points, float64)."""
    n = 400_000
    a = -1.0 + (np.arange(n) + 0.5) * (2.0 / n)  # midpoints, at least 2.5e-6 from +-1
    with jax.enable_x64(True):
        dist = TanhGaussian(jnp.full((n, 1), mean, jnp.float64), jnp.full((n, 1), math.log(std), jnp.float64))
        density = np.exp(np.asarray(_log_prob(dist, jnp.asarray(a[:, None]))))
    assert density.shape == (n,)
    assert np.sum(density) * (2.0 / n) == pytest.approx(1.0, abs=1e-6)


def test_tanh_gaussian_log_prob_matches_numpy_reference():
    """tanh_gaussian_log_prob (D = 3) equals sum_i [log N(u_i) - log(1 - tanh(u_i)^2)] in float64 NumPy."""
    rng = np.random.default_rng(14)
    u = rng.uniform(-2.5, 2.5, size=(6, 3))
    mean = rng.normal(size=(6, 3))
    log_std = rng.normal(-0.3, 0.3, size=(6, 3))
    ref = np.sum(np_normal_logpdf(u, mean, np.exp(log_std)) - np.log(1.0 - np.tanh(u) ** 2), axis=-1)
    got = tanh_gaussian_log_prob(*(jnp.asarray(x, jnp.float32) for x in (u, mean, log_std)))
    assert got.shape == (6,)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    # log |det J| alone
    np.testing.assert_allclose(tanh_log_det_jacobian(jnp.asarray(u, jnp.float32)),
                               np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=-1), rtol=1e-5, atol=1e-4)


def test_tanh_gaussian_samples_match_density_histogram():
    """Histogram of sample_and_log_prob's actions matches bin integrals of exp(log_prob) and of the Gaussian CDF."""
    n, mean, std = 200_000, 0.4, 0.9
    dist = TanhGaussian(jnp.full((n, 1), mean, jnp.float32), jnp.full((n, 1), math.log(std), jnp.float32))
    actions, _ = _sample_and_log_prob(dist, jax.random.key(17))
    edges = np.linspace(-1.0, 1.0, 21)
    edges[0], edges[-1] = -1.0 + 1e-5, 1.0 - 1e-5
    counts, _ = np.histogram(np.asarray(actions[:, 0], np.float64), bins=edges)
    freq = counts / n
    # bin masses by a midpoint rule over exp(log_prob), float64
    per_bin = 20_000
    with jax.enable_x64(True):
        fine = np.concatenate([lo + (np.arange(per_bin) + 0.5) * (hi - lo) / per_bin
                               for lo, hi in zip(edges[:-1], edges[1:])])
        one = TanhGaussian(jnp.full((fine.size, 1), mean), jnp.full((fine.size, 1), math.log(std)))
        dens = np.exp(np.asarray(_log_prob(one, jnp.asarray(fine[:, None]))))
    mass = dens.reshape(20, per_bin).sum(axis=1) * np.diff(edges) / per_bin
    # the same masses from the Gaussian CDF of atanh of the edges (independent of log_prob)
    cdf = np_normal_cdf((np.arctanh(edges) - mean) / std)
    np.testing.assert_allclose(mass, np.diff(cdf), atol=1e-6)
    se = np.sqrt(mass * (1 - mass) / n)
    assert np.all(np.abs(freq - mass) < N_SE * se + 1e-6), np.abs(freq - mass) / se


@pytest.mark.parametrize("u", [15.0, -15.0, 30.0, -30.0])
def test_tanh_log_det_jacobian_stable_where_tanh_rounds_to_one(u):
    """At |u| = 15, 30 (tanh(u) = +-1 in float32) the log |det J| is finite and equals the float64 identity."""
    u32 = jnp.array([[u]], jnp.float32)
    if float(jnp.abs(jnp.tanh(u32))[0, 0]) == 1.0:  # float32 tanh rounds to +-1 here (it does on XLA's CPU)
        naive = jnp.log(1.0 - jnp.tanh(u32) ** 2)
        assert float(naive[0, 0]) == -np.inf  # why the stable form is needed
    got = tanh_log_det_jacobian(u32)
    assert np.isfinite(float(got[0]))
    assert float(got[0]) == pytest.approx(float(np_log1m_tanh2(u)), rel=1e-6)
    # d/du log(1 - tanh(u)^2) = -2 tanh(u)
    g = jax.grad(lambda x: tanh_log_det_jacobian(x).sum())(u32)
    assert np.isfinite(float(g[0, 0]))
    assert float(g[0, 0]) == pytest.approx(-2.0 * math.copysign(1.0, u), rel=1e-6)


def test_tanh_gaussian_sample_log_prob_stable_at_saturation():
    """sample_and_log_prob with u ~ +-15, +-30 gives finite log-probs equal to the float64 reference, finite grads."""
    mean = jnp.array([[15.0], [-15.0], [30.0], [-30.0]], jnp.float32)
    log_std = jnp.full((4, 1), -2.0, jnp.float32)
    key = jax.random.key(23)
    action, log_prob = _sample_and_log_prob(TanhGaussian(mean, log_std), key)
    np.testing.assert_array_equal(np.abs(np.asarray(action)), 1.0)  # saturated in float32
    assert np.all(np.isfinite(np.asarray(log_prob)))
    # float64 reference from the same standard normal draw: u = mean + std eps
    eps = np.asarray(jax.random.normal(key, mean.shape, mean.dtype), np.float64)
    std = math.exp(-2.0)
    u = np.asarray(mean, np.float64) + std * eps
    ref = np.sum(np_normal_logpdf(u, np.asarray(mean, np.float64), std) - np_log1m_tanh2(u), axis=-1)
    np.testing.assert_allclose(log_prob, ref, rtol=1e-5, atol=1e-4)

    def total(m, s):
        a, lp = TanhGaussian(m, s).sample_and_log_prob(key)
        return jnp.sum(lp) + jnp.sum(a)

    gm, gs = jax.jit(jax.grad(total, argnums=(0, 1)))(mean, log_std)
    assert np.all(np.isfinite(np.asarray(gm))) and np.all(np.isfinite(np.asarray(gs)))


def test_sample_log_prob_equals_log_prob_of_action():
    """sample_and_log_prob's log-prob equals TanhGaussian.log_prob(action) (via atanh) for moderate actions, D = 3."""
    rng = np.random.default_rng(15)
    mean = jnp.asarray(rng.normal(0.0, 0.5, size=(500, 3)).astype(np.float32))
    log_std = jnp.asarray(rng.normal(-0.7, 0.2, size=(500, 3)).astype(np.float32))
    dist = TanhGaussian(mean, log_std)
    action, log_prob = _sample_and_log_prob(dist, jax.random.key(29))
    assert action.shape == (500, 3) and log_prob.shape == (500,)
    moderate = np.all(np.abs(np.asarray(action)) < 0.99, axis=-1)
    assert moderate.mean() > 0.9
    np.testing.assert_allclose(np.asarray(_log_prob(dist, action))[moderate], np.asarray(log_prob)[moderate],
                               rtol=1e-4, atol=1e-3)


def test_tanh_gaussian_mode_and_sum_over_last_axis():
    """TanhGaussian.mode = np.tanh(mean); for D = 3, log_prob is the sum of the three D = 1 log-probs."""
    rng = np.random.default_rng(16)
    mean = rng.normal(size=(5, 3)).astype(np.float32)
    log_std = rng.normal(-0.5, 0.3, size=(5, 3)).astype(np.float32)
    actions = rng.uniform(-0.95, 0.95, size=(5, 3)).astype(np.float32)
    dist = TanhGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    np.testing.assert_allclose(dist.mode(), np.tanh(mean.astype(np.float64)), rtol=1e-6, atol=1e-6)
    joint = _log_prob(dist, jnp.asarray(actions))
    assert joint.shape == (5,)
    per_dim = sum(_log_prob(TanhGaussian(jnp.asarray(mean[:, i:i + 1]), jnp.asarray(log_std[:, i:i + 1])),
                            jnp.asarray(actions[:, i:i + 1])) for i in range(3))
    np.testing.assert_allclose(joint, per_dim, rtol=1e-5, atol=1e-5)
    # and each D = 1 term is the float64 change of variables at u = atanh(a)
    a64 = actions.astype(np.float64)
    u = np.arctanh(a64)
    ref = np.sum(np_normal_logpdf(u, mean, np.exp(log_std.astype(np.float64))) - np.log(1 - a64**2), axis=-1)
    np.testing.assert_allclose(joint, ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# 9. Exploration noise.
# ----------------------------------------------------------------------------------------------


def test_gaussian_noise_monte_carlo_moments():
    """gaussian_noise: shape as asked, Monte Carlo mean ~ 0 and std ~ std within 5 standard errors."""
    std = 0.3
    x = np.asarray(X.gaussian_noise(jax.random.key(31), (50_000, 2), std), np.float64)
    assert x.shape == (50_000, 2)
    m = x.size
    assert abs(x.mean()) < N_SE * std / math.sqrt(m)
    assert abs(x.std() - std) < N_SE * std / math.sqrt(2 * m)


def test_ou_step_one_step_numpy_reference():
    """ou_step equals x + theta (mu - x) dt + sigma sqrt(dt) eps in float64, eps = jax.random.normal(key)."""
    rng = np.random.default_rng(17)
    x = rng.normal(size=(3, 2)).astype(np.float32)
    key = jax.random.key(37)
    theta, sigma, dt, mu = 0.15, 0.2, 1e-2, 0.5
    eps = np.asarray(jax.random.normal(key, x.shape, jnp.float32), np.float64)
    ref = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            xi = float(x[i, j])
            ref[i, j] = xi + theta * (mu - xi) * dt + sigma * math.sqrt(dt) * eps[i, j]
    got = X.ou_step(jnp.asarray(x), key, theta, sigma, dt, mu)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    got_jit = jax.jit(X.ou_step)(jnp.asarray(x), key, theta, sigma, dt, mu)  # traced parameters
    np.testing.assert_allclose(got_jit, ref, rtol=1e-6, atol=1e-6)


def test_ou_stationary_variance_and_autocorrelation():
    """OU chains (lax loop): stationary mean mu, variance sigma^2/(2 theta), lag-k correlation (1 - theta dt)^k (MC)."""
    theta, sigma, dt, mu = 0.15, 0.2, 1e-2, 0.3
    n_chains, burn_in = 16384, 4000  # burn-in = 6 / (theta dt): the variance deficit is exp(-12)
    lags = (100, 300, 667)

    @jax.jit
    def advance(x, key, n):
        """n OU steps of every chain (n traced: one compilation), keeping only the last state."""
        return jax.lax.fori_loop(0, n, lambda i, x: X.ou_step(x, jax.random.fold_in(key, i), theta, sigma, dt, mu), x)

    keys = jax.random.split(jax.random.key(41), 1 + len(lags))
    x0 = advance(jnp.full((n_chains, 1), mu, jnp.float32), keys[0], burn_in)
    var = sigma**2 / (2 * theta)
    x0_np = np.asarray(x0[:, 0], np.float64)
    assert abs(x0_np.mean() - mu) < N_SE * math.sqrt(var / n_chains)
    assert abs(x0_np.var() / var - 1.0) < N_SE * math.sqrt(2.0 / n_chains)
    x, done = x0, 0
    for k, key in zip(lags, keys[1:]):
        x, done = advance(x, key, k - done), k
        rho = (1 - theta * dt) ** k
        r = np.corrcoef(x0_np, np.asarray(x[:, 0], np.float64))[0, 1]
        assert abs(r - rho) < N_SE * (1 - rho**2) / math.sqrt(n_chains), (k, r, rho)
