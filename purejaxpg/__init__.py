"""purejaxpg: policy-gradient reinforcement learning in pure JAX.

jaxlib's CPU linear algebra (the QR behind orthogonal initialisation) calls into scipy's
OpenBLAS. On a 2-core machine we saw processes block forever inside a jitted ``init`` with
OpenBLAS's thread server parked, so OpenBLAS is asked to stay single-threaded unless the user
chose otherwise; it must be set before OpenBLAS loads, hence here.
"""

import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
