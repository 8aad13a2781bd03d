"""The fuser output contract, checked once in the core for every method.

A :class:`~fusekit.interfaces.Fuser` returns float in [0, 1] of the shape it
was given (``H x W``, or ``H x W x 3`` for colour methods). A plugin that
breaks the contract (wrong shape, NaN or inf, a boolean or integer array,
0-255 floats) would otherwise be clipped or cast silently into a wrong
image with exit status 0; :func:`check_fused` turns it into an error that
names the method and the plugin that registered it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import PluginError
from .registry import owner_of

#: Values this far outside [0, 1] are float rounding, clipped without complaint.
RANGE_TOLERANCE = 1e-3


def describe(fuser: Any) -> str:
    """``method 'NAME' (plugin 'PLUGIN')`` for messages about a fuser's behaviour."""
    plugin = owner_of(fuser) or type(fuser).__module__.split(".")[0]
    return f"method {getattr(fuser, 'name', '') or type(fuser).__name__!r} (plugin {plugin!r})"


def check_fused(fuser: Any, fused: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate what ``fuser.fuse`` returned and give it back as float32 in [0, 1].

    Parameters
    ----------
    fuser : Fuser
        The fuser that produced ``fused`` (named in the message).
    fused : object
        Its return value.
    shape : tuple of int
        The expected shape: ``(H, W)`` or ``(H, W, 3)``.

    Returns
    -------
    ndarray
        float32, clipped to [0, 1] (only rounding-sized excursions remain to clip).

    Raises
    ------
    PluginError
        One line naming the method, its plugin, what came and what was expected.
    """
    who = describe(fuser)
    if not isinstance(fused, np.ndarray):
        if fused is None or not hasattr(fused, "__array__"):
            raise PluginError(f"{who} returned {type(fused).__name__}, expected a float array of shape "
                              f"{shape}; fix the plugin")
        fused = np.asarray(fused)
    if fused.shape != tuple(shape):
        raise PluginError(f"{who} returned shape {fused.shape}, expected {tuple(shape)}; fix the plugin")
    if fused.dtype.kind != "f":
        raise PluginError(f"{who} returned {fused.dtype} values, expected float in [0, 1]; fix the plugin")
    finite = np.isfinite(fused)
    if not finite.all():
        bad = int(fused.size - np.count_nonzero(finite))
        kinds = ", ".join(k for k, hit in (("NaN", np.isnan(fused).any()), ("inf", np.isinf(fused).any())) if hit)
        raise PluginError(f"{who} returned {bad} non-finite value(s) ({kinds}); fix the plugin")
    if fused.size:
        lo, hi = float(fused.min()), float(fused.max())
        if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
            hint = " (0-255 values? divide by 255)" if hi > 1.5 else ""
            raise PluginError(f"{who} returned values in [{lo:g}, {hi:g}], expected [0, 1]{hint}; "
                              "fix the plugin")
    return np.clip(fused, 0.0, 1.0).astype(np.float32, copy=False)
