"""Correlation metrics: CC and SCD.

Pearson's correlation ``r(x, y) = sum (x - mean x)(y - mean y) /
sqrt(sum (x - mean x)^2 sum (y - mean y)^2)`` is 0/0 when either image is
constant. fusekit defines ``r = 0`` there: a constant image carries no
linearly related information. This keeps a method that outputs a flat image
from dropping out of the averages (CDDFuse's script returns NaN there, which
turns the mean of a whole dataset into NaN).

References
----------
V. Aslantas, E. Bendes, "A new image quality metric for image fusion: the
sum of the correlations of differences", AEU - International Journal of
Electronics and Communications 69 (2015) 1890-1896.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """``sum(x * y)`` without BLAS (whose threads stall on busy machines)."""
    return float(np.einsum("ij,ij->", x, y))


def _centre(image: np.ndarray) -> tuple[np.ndarray, float]:
    """``(image - mean, sum of squares)``; exactly ``(0, 0.0)`` sums for a constant image."""
    d = image - image.flat[0]
    if not d.any():  # exactly constant: no variance at all
        return d, 0.0
    d -= d.mean()
    return d, _dot(d, d)


def _centred(ctx: MetricContext, index: int) -> tuple[np.ndarray, float]:
    """Cached :func:`_centre` of image ``index`` (0 = fused)."""
    return ctx.cached_image(index, "centred", lambda: _centre(ctx.images[index]))


def pearson(x: tuple[np.ndarray, float], y: tuple[np.ndarray, float]) -> float:
    """Pearson correlation of two centred images given as ``(centred, sum of squares)``.

    Returns 0 when either image is exactly constant.
    """
    (dx, sx), (dy, sy) = x, y
    if sx == 0.0 or sy == 0.0:
        return 0.0
    return float(_dot(dx, dy) / np.sqrt(sx * sy))


def correlation_coefficient(ctx: MetricContext) -> float:
    """Mean over sources of ``r(S_s, F)``; range [-1, 1].

    A term with a constant image counts as 0 (see the module docstring).
    """
    f = _centred(ctx, 0)
    rs = [pearson(_centred(ctx, i), f) for i in range(1, len(ctx.images))]
    return float(np.mean(rs))


def scd(ctx: MetricContext) -> float:
    """Sum of the correlations of differences, ``r(F - B, A) + r(F - A, B)``.

    Range [-2, 2]. A term whose difference image is constant (the fused
    image equals a source up to an offset) counts as 0: the fused image then
    carries nothing of the other source beyond that source itself.
    """
    if len(ctx.sources) != 2:
        raise InputError(f"scd is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")
    f, a, b = ctx.images
    return pearson(_centre(f - b), _centred(ctx, 1)) + pearson(_centre(f - a), _centred(ctx, 2))


CC = Metric("cc", "correlation coefficient", "", True, True,
            "Pearson correlation, mean over sources", correlation_coefficient,
            description="(r(A,F) + r(B,F)) / 2; 0 for a constant image")
SCD = Metric("scd", "sum of the correlations of differences", "", True, True,
             "Aslantas & Bendes, AEU 2015", scd,
             description="r(F-B, A) + r(F-A, B); a constant difference counts 0",
             sources=(2,))

METRICS = (CC, SCD)
