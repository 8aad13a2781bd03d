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
fused image's statistics are shared by all sources.

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

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext
from .filters import filter_valid_decimate, filter_valid_transposed, gaussian_kernel

_SIGMA_NSQ = 2.0
_EPS = 1e-10
#: Smallest side for which all 4 scales have a valid window (17, then 9, 5, 3 taps).
_MIN_SIZE = 41


def _scale_terms(mu: np.ndarray, sq: np.ndarray, cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-source numerator and denominator sums of one scale.

    ``mu`` and ``sq`` hold local means and means of squares of
    ``(F, S_1, ..., S_n)``; ``cross`` the local means of ``S_s * F``.
    """
    mu2 = mu[0]
    sigma2_sq = np.maximum(sq[0] - mu2 * mu2, 0.0)
    flat2 = sigma2_sq < _EPS
    any_flat2 = bool(flat2.any())
    nums, dens = [], []
    for s in range(1, mu.shape[0]):
        mu1 = mu[s]
        sigma1_sq = np.maximum(sq[s] - mu1 * mu1, 0.0)
        sigma12 = cross[s - 1] - mu1 * mu2
        g = sigma12 / (sigma1_sq + _EPS)
        sv_sq = sigma2_sq - g * sigma12
        flat1 = sigma1_sq < _EPS
        if flat1.any():  # flat regions are rare: skip the masked writes when there are none
            np.copyto(g, 0.0, where=flat1)
            np.copyto(sv_sq, sigma2_sq, where=flat1)
            np.copyto(sigma1_sq, 0.0, where=flat1)
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
        nums.append(np.log(g).sum())
        sigma1_sq *= 1.0 / _SIGMA_NSQ
        sigma1_sq += 1.0
        dens.append(np.log(sigma1_sq).sum())
    return np.array(nums), np.array(dens)


def vif(ctx: MetricContext) -> float:
    """``sum_s VIFp(S_s, F)`` (see module docstring); typically 0-2 for two sources."""
    h, w = ctx.fused.shape
    if min(h, w) < _MIN_SIZE:
        raise InputError(f"vif needs images of at least {_MIN_SIZE}x{_MIN_SIZE} pixels for its 4 scales, "
                         f"got {w}x{h}; drop vif for such small images")
    images = np.stack(ctx.images)
    n = len(ctx.sources)
    num = np.zeros(n)
    den = np.zeros(n)
    for scale in range(1, 5):
        size = 2 ** (5 - scale) + 1
        win = gaussian_kernel(size, size / 5.0)
        if scale > 1:
            images = filter_valid_decimate(images, win, "vif")
        k = n + 1
        maps = np.empty((3 * k - 1,) + images.shape[1:])
        maps[:k] = images
        np.multiply(images, images, out=maps[k:2 * k])
        np.multiply(images[1:], images[0], out=maps[2 * k:])
        stats = filter_valid_transposed(maps, win, "vif")  # orientation is irrelevant here
        nums, dens = _scale_terms(stats[:k], stats[k:2 * k], stats[2 * k:])
        num += nums
        den += dens
    values = [num[s] / den[s] if den[s] > 0 else 1.0 for s in range(n)]
    return float(sum(values))


VIF = Metric("vif", "visual information fidelity", "", True, True,
             "Sheikh & Bovik, IEEE TIP 2006 (VIFp, sigma_n^2 = 2)", vif,
             description="VIFp(A,F) + VIFp(B,F), 4 scales")

METRICS = (VIF,)
