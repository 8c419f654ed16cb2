"""purejaxpg: policy-gradient reinforcement learning in pure JAX.

``import purejaxpg`` imports nothing heavy (the command line must choose the CPU device count
before JAX starts); the names below load their module on first use.

* ``purejaxpg.load(run_dir)``: a trained run's policy (`purejaxpg.policy.load`).
"""

from __future__ import annotations

_LAZY = {"load": ("purejaxpg.policy", "load"), "Policy": ("purejaxpg.policy", "Policy")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'purejaxpg' has no attribute {name!r}")
