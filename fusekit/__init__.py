"""fusekit: image fusion for infrared-visible, medical, multi-focus and multi-exposure images.

Public API
----------
fuse, get_fuser, list_fusers
    Fuse arrays with any registered method.
evaluate
    Score fused images of a dataset with the fusion metrics.
Fuser, TorchFuser, LossProposer, Reconstructor, Option
    The interfaces plugins implement; ``Option`` declares a method's options.
hookimpl
    Decorator for plugin hook implementations.
FusekitError, InputError, ParameterError, WeightsError, PluginError, UnknownNameError
    The errors fusekit raises.

``import fusekit`` does not import torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0.dev0"

from .api import fuse, fuse_files, get_fuser, list_fusers
from .errors import (FusekitError, InputError, ParameterError, PluginError, UnknownNameError,
                     WeightsError)
from .hookspecs import hookimpl
from .interfaces import TASKS, Fuser, LossProposer, Option, Reconstructor, TorchFuser

__all__ = [
    "__version__", "fuse", "fuse_files", "get_fuser", "list_fusers", "evaluate",
    "Fuser", "TorchFuser", "LossProposer", "Reconstructor", "Option", "TASKS", "hookimpl",
    "FusekitError", "InputError", "ParameterError", "PluginError", "UnknownNameError",
    "WeightsError",
]


def __getattr__(name: str) -> Any:
    # evaluate lives in a heavier module; load it on first use
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'fusekit' has no attribute {name!r}")
