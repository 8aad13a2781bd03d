"""Peak signal-to-noise ratio and root mean squared error of the fused image against the sources.

``rmse``: the mean over sources of ``sqrt(mean((F - S_s)^2))`` in grey
levels (lower is better; the review of Jagalingam & Hegde 2015 defines it
against one reference; fusion papers average it over the sources, as VIFB's
``metricsRmse.m`` does, which however divides by ``M N`` instead of ``sqrt(M N)``,
see :mod:`fusekit.metrics.vifb`).

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
    peak = float(ctx.fused.max()) if ctx.profile.psnr_peak == "max-fused" else 255.0
    if mse == 0.0:
        return float("inf")
    if peak <= 0.0:
        return float("-inf")
    return float(10.0 * np.log10(peak * peak / mse))


def root_mean_squared_error(ctx: MetricContext) -> float:
    """Mean over sources of ``sqrt(mean((F - S_s)^2))``, in grey levels; 0 if F equals every source."""
    return float(np.mean([np.sqrt(np.mean(np.square(ctx.fused - s))) for s in ctx.sources]))


PSNR = Metric("psnr", "peak signal-to-noise ratio", "dB", True, True,
              "10 log10(peak^2 / MSE), MSE averaged over sources", psnr,
              description="peak 255 (standard) or max(F) (cddfuse)")

RMSE = Metric("rmse", "root mean squared error", "grey levels", False, True,
              "Jagalingam & Hegde, Aquatic Procedia 2015; mean over sources", root_mean_squared_error,
              description="(RMSE(A,F) + RMSE(B,F)) / 2",
              profile_units={"vifb": "grey levels / sqrt(pixels)"})

METRICS = (PSNR,)
