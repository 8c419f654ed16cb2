"""shuffle.permutation: a permutation, uniformly distributed, the rounds the docstring promises."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from purejaxpg import shuffle


@pytest.mark.parametrize("n", [1, 2, 3, 7, 512, 1000, 4096])
def test_is_a_permutation_and_depends_only_on_the_key(n):
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: shuffle.permutation(k, n)))(keys))
    assert perms.dtype == np.int32 and perms.shape == (5, n)
    for p in perms:
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
    np.testing.assert_array_equal(perms[0], np.asarray(shuffle.permutation(keys[0], n)))
    if n >= 7:
        assert len({tuple(p) for p in perms}) == 5


def test_all_24_orders_of_four_items_are_equally_likely():
    keys = jax.random.split(jax.random.PRNGKey(1), 48_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: shuffle.permutation(k, 4)))(keys))
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(p)] for p in perms], minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_positions_uniform_and_pairs_unordered_for_a_ppo_batch():
    """n = 512 (4 envs x 128 steps): every item's position is uniform over 0..511, and how often
    item i lands before item j does not depend on i < j (ties broken by index would favour it)."""
    n, draws = 512, 4000
    keys = jax.random.split(jax.random.PRNGKey(2), draws)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: shuffle.permutation(k, n)))(keys))
    positions = np.argsort(perms, axis=1)  # positions[d, i]: where item i went in draw d
    # positions of items 0, 1, 511 in 8 bins of 64
    for item in (0, 1, n - 1):
        counts = np.bincount(positions[:, item] // 64, minlength=8)
        assert stats.chisquare(counts).pvalue > 1e-4, (item, counts)
    # neighbours in index order: item i before item i+1 half of the time
    before = (positions[:, :-1] < positions[:, 1:]).mean()
    assert abs(before - 0.5) < 5 * 0.5 / math.sqrt(draws * (n - 1))  # 5 standard errors


def test_rounds_give_jax_criterion_of_random_bits(monkeypatch):
    calls = []
    real_sort = jnp.sort
    monkeypatch.setattr(shuffle.jnp, "sort", lambda x, *a, **k: calls.append(x.shape) or real_sort(x, *a, **k))
    for n, expected in ((2, 1), (512, 2), (10_000, 3), (1 << 20, 5)):
        calls.clear()
        jax.eval_shape(lambda k, n=n: shuffle.permutation(k, n), jax.random.PRNGKey(0))
        index_bits = math.ceil(math.log2(n))
        assert len(calls) == expected and expected * (32 - index_bits) >= 3 * math.log2(n) > (expected - 1) * (
            32 - index_bits), (n, calls)
    assert shuffle.permutation(jax.random.PRNGKey(0), shuffle.MAX_PACKED_N + 1).shape == (shuffle.MAX_PACKED_N + 1,)


def test_same_distribution_as_jax_permutation():
    """Where item 0 lands among n = 8 positions: ours and jax.random.permutation, a two-sample test."""
    keys = jax.random.split(jax.random.PRNGKey(3), 16_000)
    ours = np.asarray(jax.vmap(lambda k: shuffle.permutation(k, 8))(keys))
    ref = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, 8))(jax.random.split(jax.random.PRNGKey(4), 16_000)))
    table = np.stack([np.bincount(np.argmax(p == 0, axis=1), minlength=8) for p in (ours, ref)])
    assert stats.chi2_contingency(table).pvalue > 1e-3, table
