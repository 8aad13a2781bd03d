"""Visual information fidelity (pixel domain, VIFp), summed over sources.

``VIF = sum_s VIFp(S_s -> F)``: each source is the reference and the fused
image the "distorted" one. VIFp (Sheikh & Bovik 2006, pixel-domain version
of their reference code) works at 4 scales with Gaussian windows of 17, 9, 5
and 3 taps (sigma = size / 5), "valid" filtering, and down-sampling by 2
between scales; the noise variance is ``sigma_n^2 = 2`` and the
thresholds (``eps = 1e-10``) are those of the widely used Python port in
CDDFuse's ``Evaluator.py``, so both profiles give the same number.

All windows are separable, so every local mean, variance and covariance is
two 1-D passes; the images of one scale are filtered as one stack and the
fused image's statistics are shared by all sources. The sources' statistics
(and the denominators, which depend on the sources alone) are cached in the
context's source cache, so scoring another fused image of the same sources
filters only the maps that involve it.

A source with no variance at any scale carries no information
(``den = 0``, so ``VIFp = 0/0``); fusekit counts that term as 1, as the
script does (nothing of the source is lost).

References
----------
H. R. Sheikh, A. C. Bovik, "Image information and visual quality", IEEE
Transactions on Image Processing 15 (2006) 430-444.
(MEFB's "VIF" is a different metric, Han et al., Information Fusion 2013.)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import InputError
from . import compiled
from .base import Metric, MetricContext
from .filters import filter_valid, gaussian_kernel

_SIGMA_NSQ = 2.0
_EPS = 1e-10
#: Smallest side for which all 4 scales have a valid window (17, then 9, 5, 3 taps).
_MIN_SIZE = 41


class _SourceScale(NamedTuple):
    """What VIFp needs of the sources at one scale (shared across fused images)."""

    images: np.ndarray      # (n, h, w): the sources at this scale
    mu: np.ndarray          # (n, h', w'): local means
    sigma_sq: np.ndarray    # (n, h', w'): local variances, 0 where flat
    flat: tuple[np.ndarray | None, ...]  # per source: mask of variance < eps, None if there is none
    den: np.ndarray         # (n,): sum of log(1 + sigma_sq / sigma_n^2)


def _log_sum(x: np.ndarray) -> float:
    """``sum(log(x))`` for ``x >= 1``, as logs of products of 8 values (8x fewer logs).

    Every VIF term is ``1 + v / sigma_n^2`` with ``v`` at most a local
    variance of 0-255 data (below 127.5^2), so a product of 8 stays far below
    the float64 range; the plain sum of logs is the fallback if it ever does not.
    """
    flat = x.reshape(-1)
    n = flat.size - flat.size % 8
    rows = flat[:n].reshape(8, -1)
    product = rows[0].copy()
    for row in rows[1:]:
        product *= row
    total = float(np.log(product).sum() + np.log(flat[n:]).sum())
    return total if np.isfinite(total) else float(np.log(flat).sum())


def _window(scale: int) -> np.ndarray:
    size = 2 ** (5 - scale) + 1
    return gaussian_kernel(size, size / 5.0)


def _source_scale(ctx: MetricContext, scale: int) -> _SourceScale:
    """Cached source statistics of ``scale`` (1-4); they depend on the sources alone."""
    def make() -> _SourceScale:
        kernels = compiled.kernels()
        win = _window(scale)
        if scale == 1:
            images = np.stack(ctx.sources)
        else:
            images = filter_valid(_source_scale(ctx, scale - 1).images, win, "vif", step=2)
        n = images.shape[0]
        maps = np.empty((2 * n,) + images.shape[1:])
        maps[:n] = images
        np.multiply(images, images, out=maps[n:])
        stats = filter_valid(maps, win, "vif")
        mu = stats[:n]
        flat: list[np.ndarray | None] = []
        den = np.empty(n)
        if kernels is not None:  # one pass per source
            sigma_sq = np.empty_like(mu)
            for s in range(n):
                sigma_sq[s], flat_count, den[s] = kernels.vif_source_terms(mu[s], stats[n + s], _SIGMA_NSQ, _EPS)
                flat.append(sigma_sq[s] < _EPS if flat_count else None)
            return _SourceScale(images, mu, sigma_sq, tuple(flat), den)
        sigma_sq = np.maximum(stats[n:] - mu * mu, 0.0)
        for s in range(n):
            mask = sigma_sq[s] < _EPS
            if mask.any():  # flat regions are rare: skip the masked writes when there are none
                np.copyto(sigma_sq[s], 0.0, where=mask)
                flat.append(mask)
            else:
                flat.append(None)
            den[s] = _log_sum(sigma_sq[s] * (1.0 / _SIGMA_NSQ) + 1.0)
        return _SourceScale(images, mu, sigma_sq, tuple(flat), den)

    return ctx.cached_source(("vif", scale), make)


def _fused_terms(src: _SourceScale, fused: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Per-source numerator sums of one scale for the fused image ``fused`` at that scale."""
    n = src.images.shape[0]
    maps = np.empty((n + 2,) + fused.shape)
    maps[0] = fused
    np.multiply(fused, fused, out=maps[1])
    np.multiply(src.images, fused, out=maps[2:])
    stats = filter_valid(maps, win, "vif")
    kernels = compiled.kernels()
    if kernels is not None:  # one pass per source, no temporary maps
        return np.array([kernels.vif_numerator(src.mu[s], src.sigma_sq[s], stats[0], stats[1], stats[2 + s],
                                               _SIGMA_NSQ, _EPS) for s in range(n)])
    mu2 = stats[0]
    sigma2_sq = np.maximum(stats[1] - mu2 * mu2, 0.0)
    flat2 = sigma2_sq < _EPS
    any_flat2 = bool(flat2.any())
    nums = np.empty(n)
    for s in range(n):
        mu1 = src.mu[s]
        sigma1_sq = src.sigma_sq[s]
        sigma12 = stats[2 + s] - mu1 * mu2
        g = sigma12 / (sigma1_sq + _EPS)
        sv_sq = sigma2_sq - g * sigma12
        flat1 = src.flat[s]
        if flat1 is not None:
            np.copyto(g, 0.0, where=flat1)
            np.copyto(sv_sq, sigma2_sq, where=flat1)
        if any_flat2:
            np.copyto(g, 0.0, where=flat2)
            np.copyto(sv_sq, 0.0, where=flat2)
        negative = g < 0
        np.copyto(sv_sq, sigma2_sq, where=negative)
        np.copyto(g, 0.0, where=negative)
        np.maximum(sv_sq, _EPS, out=sv_sq)
        # log(1 + x) as the script's log10(1 + x): the base cancels in num / den
        g *= g
        g *= sigma1_sq
        sv_sq += _SIGMA_NSQ
        g /= sv_sq
        g += 1.0
        nums[s] = _log_sum(g)
    return nums


def vif(ctx: MetricContext) -> float:
    """``sum_s VIFp(S_s, F)`` (see module docstring); typically 0-2 for two sources."""
    h, w = ctx.fused.shape
    if min(h, w) < _MIN_SIZE:
        raise InputError(f"vif needs images of at least {_MIN_SIZE}x{_MIN_SIZE} pixels for its 4 scales, "
                         f"got {w}x{h}; drop vif for such small images")
    n = len(ctx.sources)
    num = np.zeros(n)
    den = np.zeros(n)
    fused = ctx.fused
    for scale in range(1, 5):
        win = _window(scale)
        if scale > 1:
            fused = filter_valid(fused, win, "vif", step=2)
        src = _source_scale(ctx, scale)
        num += _fused_terms(src, fused, win)
        den += src.den
    values = [num[s] / den[s] if den[s] > 0 else 1.0 for s in range(n)]
    return float(sum(values))


VIF = Metric("vif", "visual information fidelity", "", True, True,
             "Sheikh & Bovik, IEEE TIP 2006 (VIFp, sigma_n^2 = 2)", vif,
             description="VIFp(A,F) + VIFp(B,F), 4 scales")

METRICS = (VIF,)
