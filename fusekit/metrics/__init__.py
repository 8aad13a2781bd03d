"""Fusion quality metrics with named profiles.

Fusion has no ground truth, so the fused image F is scored against its
sources (A, B) with no-reference metrics. Built-in metrics: ``en``, ``sd``,
``sf``, ``ag``, ``ei`` (of F alone), ``mi``, ``scd``, ``vif``, ``qabf``,
``ssim``, ``psnr``, ``cc``, ``nabf``, ``ce``, ``rmse``, ``qcb``, ``qcv``,
``nmi``, ``te``, ``qncie``, ``qy``, ``ms-ssim``, ``mef-ssim``, ``fmi-pixel``,
``fmi-w``, ``fmi-dct``.
Plugins add more through the ``register_metrics`` hook. Every metric is
computed on luminance (Y of BT.601 YCbCr) on a 0-255 scale, except under
the ``vifb`` profile, which scores colour images per channel as VIFB does.
Inputs: uint8 and uint16 by their type, floats in [0, 1] (what
:func:`fusekit.io.read_image` and :func:`fusekit.fuse` return) unless
``data_range`` says otherwise; pixels outside the range are an error.

A *profile* fixes the conventions that differ between the widely used
scripts (:mod:`fusekit.metrics.profiles`, as data that the metrics read):
``standard`` (textbook, default),
``cddfuse`` (reproduces CDDFuse's ``utils/Evaluator.py``) and ``vifb``
(reproduces the VIFB benchmark's MATLAB metrics).

Examples
--------
>>> import numpy as np
>>> from fusekit.metrics import compute
>>> rng = np.random.default_rng(0)
>>> a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
>>> b = rng.integers(0, 256, (64, 64)).astype(np.uint8)
>>> f = np.maximum(a, b)
>>> s = compute(f, [a, b], metrics="mi,ssim", profile="cddfuse")
>>> s["mi"].unit
'nats'
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .base import Metric, MetricContext, Score
    from .catalog import BUILTIN_METRICS, BUILTIN_ORDER
    from .compute import compute, list_metrics, resolve_metrics
    from .profiles import PROFILES, Profile, get_profile

__all__ = [
    "Metric", "MetricContext", "Score", "Profile", "PROFILES", "BUILTIN_METRICS", "BUILTIN_ORDER",
    "compute", "list_metrics", "resolve_metrics", "get_profile",
]

#: Where each public name lives: imported on first use, so that registering the built-in metrics
#: (``fusekit fuse`` does it too) does not load the profiles and their convention tables.
_HOMES = {"Metric": "base", "MetricContext": "base", "Score": "base",
          "BUILTIN_METRICS": "catalog", "BUILTIN_ORDER": "catalog",
          "compute": "compute", "list_metrics": "compute", "resolve_metrics": "compute",
          "PROFILES": "profiles", "Profile": "profiles", "get_profile": "profiles"}


class _Package(types.ModuleType):
    """This package, whose attribute ``compute`` is always the function, never its submodule.

    ``compute`` names both the function and the submodule that defines it. Importing the submodule
    (``from fusekit.metrics.compute import ...``, which the evaluation code does) makes Python bind the
    package attribute to the *module*, so ``from fusekit.metrics import compute`` afterwards returned a
    module ("'module' object is not callable"), depending on import order. The binding is redirected to
    the function here, which keeps the package's imports lazy.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "compute" and isinstance(value, types.ModuleType):
            value = value.compute
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
