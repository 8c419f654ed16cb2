"""purejaxpg: policy-gradient reinforcement learning in pure JAX.

``import purejaxpg`` imports nothing heavy (the command line must choose the CPU device count
before JAX starts); the names below load their module on first use.

* ``purejaxpg.train("sac", "Pendulum-v1", seeds=8, total_timesteps=2e4)``: train in one call
  (`purejaxpg.api.train`; ``purejaxpg.train`` is also the module of the training loop, callable).
* ``purejaxpg.load(run_dir)``: a trained run's policy (`purejaxpg.policy.load`).
"""

from __future__ import annotations

_LAZY = {"load": ("purejaxpg.policy", "load"), "Policy": ("purejaxpg.policy", "Policy")}


def __getattr__(name: str):
    if name == "train":  # the training loop's module, callable as the one-call API
        import importlib

        return importlib.import_module("purejaxpg.train")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'purejaxpg' has no attribute {name!r}")
