"""Structural similarity (SSIM) between the fused image and each source, summed; Yang's Q_Y.

``standard``: Wang et al. (2004) as in their reference code: 11 x 11
Gaussian window (sigma 1.5), population (weighted) covariance, K1 = 0.01,
K2 = 0.03, L = 255, mean over the pixels where the window fits (valid
region). The fused image's local statistics are computed once for all
sources, and each source's once for all fused images of it (the context's
source cache). Range of the sum: [-2, 2] for two sources.

``cddfuse``: scikit-image's ``structural_similarity`` with the defaults of
version 0.19 as CDDFuse's script calls it: 7 x 7 uniform window, sample
covariance (``49/48``), ``data_range = 2`` (float input), mirrored borders,
the mean over the image without a 3-pixel border, computed in float32 as
that function does for float32 input. With ``data_range = 2`` on 0-255 data
the stabilising constants are almost zero, so flat regions give noisy
values; that is what the papers using the script report.

``qy`` (Yang et al. 2008), as Zheng Liu's ``metricYang.m``
(github.com/zhengliu6699/imageFusionMetrics) computes it: local SSIM maps
with a 7 x 7 Gaussian window (sigma 1.5), valid region and C1 = C2 = 2e-16
(practically none); where ``SSIM(A, B) >= 0.75`` (redundant regions)
``Q = l SSIM(A, F) + (1 - l) SSIM(B, F)`` with ``l = s_A^2 / (s_A^2 + s_B^2)``
from the local variances, elsewhere ``max(SSIM(A, F), SSIM(B, F))``; the mean
of Q.

Flat windows (all 49 pixels equal) have variance 0 and covariance 0 with any
image, set exactly: computed as ``E[x^2] - E[x]^2`` they would be rounding
noise of about ``1e-16 x 255^2``, far above ``C``, and the SSIM of two flat
windows a ratio of two noises (values such as 5 or -40, different between the
numpy and the compiled filters). With exact zeros the SSIM of two flat
windows is the luminance term ``(2 mu_A mu_B + C) / (mu_A^2 + mu_B^2 + C)``,
and that of a flat and a textured window about 0: what ``metricYang.m``
gives in exact arithmetic, and what Wang and Bovik's quality index defines
for a zero variance. Where both sources' windows are flat the weight ``l``
is 0/0: fusekit takes ``l = 1/2``; the reference gets NaN there and leaves
those pixels out of the mean (so the two differ on images with flat areas
in both sources, by how much those pixels' Q differs from the mean).

References
----------
Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
assessment: from error visibility to structural similarity", IEEE
Transactions on Image Processing 13 (2004) 600-612.
C. Yang, J.-Q. Zhang, X.-R. Wang, X. Liu, "A novel similarity based quality
metric for image fusion", Information Fusion 9 (2008) 156-160.
"""

from __future__ import annotations

import numpy as np
from ..errors import InputError
from . import compiled
from .base import Metric, MetricContext
from .exact_filters import EXACT_LIMIT as _EXACT_LIMIT
from .exact_filters import box_mean, integer_valued
from .filters import filter_valid, gaussian_kernel

_K1, _K2 = 0.01, 0.03
_GAUSS = gaussian_kernel(11, 1.5)


def _ssim_standard(ctx: MetricContext) -> float:
    c1 = (_K1 * 255.0) ** 2
    c2 = (_K2 * 255.0) ** 2
    n = len(ctx.sources)

    def source_stats() -> tuple[np.ndarray, np.ndarray]:
        sources = np.stack(ctx.sources)
        stats = filter_valid(np.concatenate([sources, sources * sources]), _GAUSS, "ssim")
        mu_s = stats[:n]
        return mu_s, stats[n:] - mu_s * mu_s

    mu_all, var_all = ctx.cached_source("ssim-std", source_stats)
    f = ctx.fused
    maps = np.empty((n + 2,) + f.shape)
    maps[0] = f
    np.multiply(f, f, out=maps[1])
    for i, s in enumerate(ctx.sources):
        np.multiply(s, f, out=maps[2 + i])
    stats = filter_valid(maps, _GAUSS, "ssim")
    kernels = compiled.kernels()
    if kernels is not None:  # one pass per source, no temporary maps
        return sum(kernels.ssim_standard_mean(mu_all[i], var_all[i], stats[0], stats[1], stats[2 + i], c1, c2)
                   for i in range(n))
    mu_f = stats[0]
    var_f = stats[1] - mu_f * mu_f
    total = 0.0
    for i in range(n):
        mu_s, var_s = mu_all[i], var_all[i]
        cov = stats[2 + i] - mu_s * mu_f
        num = (2.0 * mu_s * mu_f + c1) * (2.0 * cov + c2)
        den = (mu_s * mu_s + mu_f * mu_f + c1) * (var_s + var_f + c2)
        total += float(np.mean(num / den))
    return total


def _integer_images(ctx: MetricContext) -> bool:
    """Whether every image of ``ctx`` is integer-valued (within :data:`_EXACT_LIMIT`): their window
    sums are then exact, so exact sums (numpy's or numba's) reproduce scipy bit for bit. The
    ``cddfuse`` profile rounds every image, so only hand-made contexts can fail this."""
    return all(ctx.cached_image(i, "integer-f32", lambda i=i: integer_valued(ctx.float32(i), _EXACT_LIMIT))
               for i in range(len(ctx.images)))


def _ssim_cddfuse(ctx: MetricContext) -> float:
    # Mirrors skimage.metrics.structural_similarity(F, S, data_range=2) on
    # float32 input: same filters, operation order and dtype. The window means
    # are scipy's uniform_filter, bit for bit: numba's or numpy's exact sums on
    # integer images (exact_filters.box_mean; no scipy.ndimage import), scipy's
    # own filter otherwise.
    win = 7
    cov_norm = win * win / (win * win - 1.0)
    c1 = (_K1 * 2.0) ** 2
    c2 = (_K2 * 2.0) ** 2
    pad = (win - 1) // 2

    if min(ctx.fused.shape) < win:
        raise InputError(f"ssim needs images of at least {win}x{win} pixels, got "
                         f"{ctx.fused.shape[1]}x{ctx.fused.shape[0]}")

    exact = _integer_images(ctx)
    kernels = compiled.kernels() if exact else None
    if exact:
        uniform = box_mean
    else:
        from scipy.ndimage import uniform_filter as uniform  # here: importing it costs ~0.2 s
    f32 = np.float32

    def local_stats(index: int) -> tuple[np.ndarray, np.ndarray]:
        x = ctx.float32(index)
        if kernels is not None:
            u = kernels.box_mean(x, x, win, 0)
            return u, kernels.ssim_variance(u, kernels.box_mean(x, x, win, 1), f32(cov_norm))
        u = uniform(x, win)
        uu = uniform(x * x, win)
        return u, cov_norm * (uu - u * u)

    ux, vx = ctx.cached_image(0, ("ssim-cdd", kernels is not None), lambda: local_stats(0))
    f = ctx.float32(0)
    total = 0.0
    for i in range(1, len(ctx.images)):
        uy, vy = ctx.cached_image(i, ("ssim-cdd", kernels is not None), lambda: local_stats(i))
        if kernels is not None:
            uxy = kernels.box_mean(f, ctx.float32(i), win, 2)
            smap = kernels.ssim_map(uxy, ux, vx, uy, vy, f32(cov_norm), f32(c1), f32(c2))
        else:
            uxy = uniform(f * ctx.float32(i), win)
            vxy = cov_norm * (uxy - ux * uy)
            a1 = 2 * ux * uy + c1
            a2 = 2 * vxy + c2
            b1 = ux ** 2 + uy ** 2 + c1
            b2 = vx + vy + c2
            smap = (a1 * a2) / (b1 * b2)
        h, w = smap.shape
        total += float(smap[pad:h - pad, pad:w - pad].mean(dtype=np.float64))
    return total


def ssim(ctx: MetricContext) -> float:
    """``sum_s SSIM(F, S_s)`` under the context's profile (see module docstring)."""
    if ctx.profile.ssim_variant == "skimage-0.19":
        return _ssim_cddfuse(ctx)
    return _ssim_standard(ctx)


_YANG_GAUSS = gaussian_kernel(7, 1.5)
_YANG_C = 2e-16


def _flat_windows(x: np.ndarray, k: int) -> np.ndarray:
    """Where the ``k x k`` window (valid region) holds one value only: its maximum equals its minimum.

    Parameters
    ----------
    x : ndarray, shape (H, W)
    k : int
        Window side.

    Returns
    -------
    ndarray of bool, shape (H - k + 1, W - k + 1)
        Exact (no arithmetic), so the same on every filter path.
    """
    cols = x.shape[1] - k + 1
    hi, lo = x[:, :cols].copy(), x[:, :cols].copy()
    for d in range(1, k):                       # along the rows, then down the columns
        np.maximum(hi, x[:, d:d + cols], out=hi)
        np.minimum(lo, x[:, d:d + cols], out=lo)
    rows = x.shape[0] - k + 1
    hi2, lo2 = hi[:rows].copy(), lo[:rows].copy()
    for d in range(1, k):
        np.maximum(hi2, hi[d:d + rows], out=hi2)
        np.minimum(lo2, lo[d:d + rows], out=lo2)
    return hi2 == lo2


def _yang_stats(ctx: MetricContext, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local mean, variance and flatness (7 x 7 Gaussian, valid region) of image ``index``, cached.

    The variance of a flat window is set to exactly 0 (see the module docstring).
    """
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = ctx.images[index]
        mu, sq = filter_valid(np.stack([x, x * x]), _YANG_GAUSS, "qy")
        flat = _flat_windows(x, _YANG_GAUSS.size)
        var = sq - mu * mu
        var[flat] = 0.0
        return mu, var, flat

    return ctx.cached_image(index, "qy-stats", make)


def _yang_ssim_map(ctx: MetricContext, i: int, j: int) -> np.ndarray:
    (mu_i, var_i, flat_i), (mu_j, var_j, flat_j) = _yang_stats(ctx, i), _yang_stats(ctx, j)
    cov = filter_valid(ctx.images[i] * ctx.images[j], _YANG_GAUSS, "qy") - mu_i * mu_j
    cov[flat_i | flat_j] = 0.0                  # exact: a flat window does not vary with anything
    c = _YANG_C
    return ((2 * mu_i * mu_j + c) * (2 * cov + c)) / ((mu_i * mu_i + mu_j * mu_j + c) * (var_i + var_j + c))


def yang(ctx: MetricContext) -> float:
    """Yang's Q_Y in [-1, 1]; higher is better (see the module docstring)."""
    if len(ctx.sources) != 2:
        raise InputError(f"qy is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")
    ab = ctx.cached_source("qy-ab", lambda: _yang_ssim_map(ctx, 1, 2))
    af, bf = _yang_ssim_map(ctx, 1, 0), _yang_ssim_map(ctx, 2, 0)
    var_a, var_b = _yang_stats(ctx, 1)[1], _yang_stats(ctx, 2)[1]
    total = var_a + var_b
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(total == 0, 0.5, var_a / total)
    q = np.where(ab >= 0.75, weight * af + (1 - weight) * bf, np.maximum(af, bf))
    return float(np.mean(q))


SSIM = Metric("ssim", "structural similarity", "", True, True,
              "Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004", ssim,
              description="SSIM(F,A) + SSIM(F,B)")

QY = Metric("qy", "Yang's structural similarity metric (Q_Y)", "", True, True,
            "Yang, Zhang, Wang & Liu, Information Fusion 2008; Liu's metricYang.m", yang,
            description="SSIM(A,F), SSIM(B,F) weighted by variance where SSIM(A,B) >= 0.75, else the max",
            sources=(2,), label="Qy")

METRICS = (SSIM,)
