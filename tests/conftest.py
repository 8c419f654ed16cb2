"""Fixtures shared by several test modules."""

import jax
import pytest


@pytest.fixture
def fast_compiles():
    """Turn XLA's backend optimisations off while a test runs (``run_chunked`` jits internally, so
    this is the global flag; it about halves compile time and is restored afterwards). For tests of
    arithmetic, shapes and bookkeeping, not of XLA's optimisations."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)
