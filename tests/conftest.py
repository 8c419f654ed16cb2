"""Test-session settings.

Twice on this 2-core machine a process blocked forever inside the jitted, vmapped ``init``
(orthogonal initialisation -> QR -> scipy's OpenBLAS, whose thread server was parked): OpenBLAS
is kept single-threaded (set before anything loads it) and CPU async dispatch is off, so a
computation runs on the calling thread. Results are unchanged.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_cpu_enable_async_dispatch", False)
