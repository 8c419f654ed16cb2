"""Row chunking (`purejaxpg.chunking`): the same numbers as one call, in bounded chunks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxpg import chunking, envs, experiment, train
from purejaxpg.algorithms import common
from purejaxpg.config import ConfigError


def _rowwise(xs):
    """A row-wise function of a pytree, returning a pytree: row i of each output uses row i only."""
    a, b = xs["a"], xs["b"]
    return {"sum": jnp.tanh(a @ jnp.arange(12.0).reshape(3, 4)) + b[:, None], "norm": jnp.linalg.norm(a, axis=-1)}


@pytest.mark.parametrize("rows,max_rows", [(40, 8), (43, 8), (5, 8), (8, 8), (9, 8), (43, 1), (43, None)])
def test_map_rows_equals_one_call(rows, max_rows):
    """Divisible, with a remainder, fewer rows than a chunk, one row per chunk, no limit."""
    a = jax.random.normal(jax.random.PRNGKey(0), (rows, 3))
    b = jnp.arange(rows, dtype=jnp.float32)
    xs = {"a": a, "b": b}
    want = _rowwise(xs)
    got = jax.jit(lambda xs: chunking.map_rows(_rowwise, xs, max_rows))(xs)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)


def test_map_rows_chunks_see_at_most_max_rows():
    """fn is called on [max_rows] chunks inside the loop and once on the remainder."""
    seen = []

    def fn(x):
        seen.append(x.shape[0])
        return x * 2.0

    out = chunking.map_rows(fn, jnp.ones((23, 2)), 5)
    assert out.shape == (23, 2)
    assert sorted(seen) == [3, 5]


def test_map_rows_over_prng_keys_is_exact():
    """Key arrays chunk like any leaf: splitting keys in chunks draws the very same bits."""
    keys = jax.random.split(jax.random.PRNGKey(3), 37)

    def fn(k):
        return jax.vmap(lambda k: jax.random.bits(k, (2,)))(k)

    np.testing.assert_array_equal(np.asarray(chunking.map_rows(fn, keys, 6)), np.asarray(fn(keys)))


def test_resolve_max_rows():
    assert chunking.resolve_max_rows(None) is None
    assert chunking.resolve_max_rows(7) == 7
    expected = chunking.CPU_MAX_ROWS if jax.default_backend() == "cpu" else None
    assert chunking.resolve_max_rows("auto") == expected
    for bad in (0, -3, 2.5, "big", True):
        with pytest.raises(ConfigError, match="max_rows"):
            chunking.resolve_max_rows(bad)


def test_values_and_next_values_chunked_equals_one_call():
    """The critic over 2 T N rows in chunks of 7 (with a remainder) == one batched call."""
    algo, cfg, hp = experiment.build("ppo", "CartPole-v1", dict(num_envs=3, num_steps=11, total_timesteps=33,
                                                                    num_minibatches=1))
    trainer = train.make_train(algo, cfg, hp)
    runner = trainer.init(jax.random.PRNGKey(0), hp)
    obs = jax.random.normal(jax.random.PRNGKey(1), (11, 3, 4))
    next_obs = jax.random.normal(jax.random.PRNGKey(2), (11, 3, 4))

    class Batch:  # only the fields values_and_next_values reads
        pass

    batch = Batch()
    batch.obs, batch.next_obs = obs, next_obs
    state = runner.learner
    v_one, nv_one = common.values_and_next_values(state, batch, max_rows=None)
    v_chunk, nv_chunk = jax.jit(lambda s: common.values_and_next_values(s, batch, max_rows=7))(state)
    assert v_chunk.shape == nv_chunk.shape == (11, 3)
    np.testing.assert_allclose(np.asarray(v_chunk), np.asarray(v_one), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(nv_chunk), np.asarray(nv_one), rtol=1e-6, atol=1e-6)
    # and against the critic applied row by row
    np.testing.assert_allclose(np.asarray(v_one)[4, 1], np.asarray(state.value(obs[4, 1][None]))[0], rtol=1e-5)


def test_presampled_resets_do_not_depend_on_chunking():
    env, params, _ = envs.make("CartPole-v1")
    keys = jax.random.split(jax.random.PRNGKey(5), (13, 4))
    whole = envs.presample_resets(env, params, keys, max_rows=None)
    chunked = jax.jit(lambda k: envs.presample_resets(env, params, k, max_rows=5))(keys)
    for w, c in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
        assert w.shape == c.shape
        np.testing.assert_array_equal(np.asarray(w), np.asarray(c))
