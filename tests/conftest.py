"""Test-session settings.

CPU async dispatch is turned off for the test process: twice on this 2-core machine a process
blocked forever waiting for a CPU computation that never ran (every XLA worker thread idle, the
main thread in ``BlockUntilReady``), which in CI would be a 90-minute hang instead of a failure.
Synchronous dispatch runs each computation on the calling thread; results are unchanged.
"""

import jax

jax.config.update("jax_cpu_enable_async_dispatch", False)
