"""Peak signal-to-noise ratio of the fused image against the sources.

``standard``: ``PSNR = 10 log10(255^2 / MSE)`` with ``MSE`` the mean over
sources of ``mean((F - S_s)^2)``. ``cddfuse``: the peak is ``max(F)``
instead of 255, as in CDDFuse's script. Infinite when the fused image equals
every source (MSE 0).
"""

from __future__ import annotations

import numpy as np

from .base import Metric, MetricContext


def mean_squared_error(ctx: MetricContext) -> float:
    """Mean over sources of ``mean((F - S_s)^2)``, in squared grey levels."""
    def make() -> float:
        return float(np.mean([np.mean(np.square(ctx.fused - s)) for s in ctx.sources]))

    return ctx.cached("mse", make)


def psnr(ctx: MetricContext) -> float:
    """Peak signal-to-noise ratio in dB (see module docstring for the peak)."""
    mse = mean_squared_error(ctx)
    peak = float(ctx.fused.max()) if ctx.profile.name == "cddfuse" else 255.0
    if mse == 0.0:
        return float("inf")
    if peak <= 0.0:
        return float("-inf")
    return float(10.0 * np.log10(peak * peak / mse))


PSNR = Metric("psnr", "peak signal-to-noise ratio", "dB", True, True,
              "10 log10(peak^2 / MSE), MSE averaged over sources", psnr,
              description="peak 255 (standard) or max(F) (cddfuse)")

METRICS = (PSNR,)
