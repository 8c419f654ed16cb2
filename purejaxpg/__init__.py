"""purejaxpg: policy-gradient reinforcement learning in pure JAX.

``import purejaxpg`` imports nothing heavy (the command line must choose the CPU device count
before JAX starts); the names below load their module on first use.

* ``purejaxpg.train("sac", "Pendulum-v1", seeds=8, total_timesteps=2e4)``: train in one call
  (`purejaxpg.api.train`; ``purejaxpg.train`` is also the module of the training loop, callable).
* ``purejaxpg.load(run_dir)``: a trained run's policy (`purejaxpg.policy.load`).
"""

from __future__ import annotations

import sys as _sys
import types as _types

_LAZY = {"load": ("purejaxpg.policy", "load"), "Policy": ("purejaxpg.policy", "Policy")}


def __getattr__(name: str):
    if name == "train":  # the training loop's module, made callable as it is bound here
        import importlib

        return importlib.import_module("purejaxpg.train")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'purejaxpg' has no attribute {name!r}")


class _CallableTrainModule(_types.ModuleType):
    """``purejaxpg.train``, the module of the training loop, callable as the one-call API:
    ``purejaxpg.train("sac", "Pendulum-v1", seeds=8)`` is `purejaxpg.api.train`, while
    ``from purejaxpg import train; train.make_train(...)`` is the module as ever."""

    def __call__(self, *args, **kwargs):
        from purejaxpg import api

        return api.train(*args, **kwargs)


class _Package(_types.ModuleType):
    """This package, which makes the ``train`` submodule callable when the import system binds it
    here (so the training loop's module itself imports nothing of the one-call API)."""

    def __setattr__(self, name, value):
        if name == "train" and type(value) is _types.ModuleType:
            value.__class__ = _CallableTrainModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
