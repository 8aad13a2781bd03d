"""Multi-scale structural metrics: MS-SSIM (Wang, Simoncelli & Bovik) and MEF-SSIM (Ma, Zeng & Wang).

``ms-ssim`` (Wang, Simoncelli & Bovik 2003), as Wang's reference MATLAB
code ``msssim.m`` (with ``ssim_index_new.m``) computes it for a pair: five
scales; at each, local statistics with an 11 x 11 Gaussian window
(sigma 1.5, MATLAB ``fspecial``), valid region, K1 = 0.01, K2 = 0.03,
L = 255; the mean contrast-structure term ``cs`` at scales 1-4 and the mean
SSIM at scale 5; ``MS-SSIM = prod_j cs_j^w_j * ssim_5^w_5`` with the
paper's exponents ``w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. Between
scales each image is averaged over 2 x 2 blocks (``imfilter(ones(2)/4,
'symmetric')``, so the last row and column are repeated for odd sizes) and
every second pixel kept. For fusion, fusekit sums over the sources,
``MS-SSIM(A, F) + MS-SSIM(B, F)``, as it does for SSIM. The coarsest scale
needs the window to fit: images must be at least 161 pixels on each side
(an ``InputError`` says so). A negative ``cs`` raised to a fractional power
has no real value (the reference returns a complex number); fusekit clips
``cs`` and SSIM at 0 first and says so in the conventions.

``mef-ssim`` (Ma, Zeng & Wang 2015), for multi-exposure fusion, as Kede
Ma's MATLAB code released with the paper (``mef_ssim.m``, the code MEFB
calls) computes it on grey images: for every 11 x 11 patch position (valid
region), each source patch ``x_k`` is split into its mean ``mu_k``
(uniform window), contrast ``c_k = ||x_k - mu_k|| + 0.001`` and structure
``(x_k - mu_k) / c_k``. The desired patch has the largest contrast and the
structures averaged with weights ``(c_k / 11)^p`` (normalised), where
``p = min(tan(pi R / 2), 10)`` grows with the structural consistency
``R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||`` of the sources (R
clipped into (0, 1)); the luminance is left out. The local quality is the
SSIM contrast-structure term between that patch and the fused patch with
an 11 x 11 Gaussian window (sigma 1.5) and C2 = (0.03 * 255)^2, averaged over
the image. Three scales (2 x 2 averaging and every second pixel between
them, as for MS-SSIM) are combined as ``prod_l Q_l^w_l`` with
``w = (0.0448, 0.2856, 0.3001) / 0.6605``. All sources enter at once (any
number of exposures, at least 2).

Both are computed only when asked for by name (``--metrics ms-ssim,mef-ssim``;
``Metric.on_request``): MS-SSIM needs large images and MEF-SSIM is meant
for exposure stacks. fusekit computes the patch sums with
window filters instead of looping over patches; the tests compare it with a
transcription of the reference loops.

References
----------
Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity
for image quality assessment", 37th Asilomar Conference on Signals, Systems
and Computers (2003) 1398-1402; reference code ``msssim.m``,
https://ece.uwaterloo.ca/~z70wang/research/ssim/.
K. Ma, K. Zeng, Z. Wang, "Perceptual quality assessment for multi-exposure
image fusion", IEEE Transactions on Image Processing 24 (2015) 3345-3356;
reference code ``mef_ssim.m``, https://ece.uwaterloo.ca/~k29ma/ (also in
xingchenzhang/MEFB ``metrics/``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext
from .filters import filter_valid, gaussian_kernel

#: Wang et al.'s exponents of the five MS-SSIM scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: MEF-SSIM's three scales: the first three MS-SSIM exponents, normalised to sum 1.
MEF_SSIM_WEIGHTS = tuple(w / sum(MS_SSIM_WEIGHTS[:3]) for w in MS_SSIM_WEIGHTS[:3])
WINDOW = 11
_GAUSS = gaussian_kernel(WINDOW, 1.5)
_UNIFORM = np.full(WINDOW, 1.0 / WINDOW)
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
_EPS = np.finfo(np.float64).eps


def downsample(image: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks and keep every second pixel, as the reference codes do.

    MATLAB's ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` followed by
    ``x(1:2:end, 1:2:end)``: output ``(i, j)`` is the mean of pixels
    ``2i..2i+1, 2j..2j+1``, the last row and column repeated for odd sizes.

    Parameters
    ----------
    image : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (ceil(H / 2), ceil(W / 2)), float64
    """
    x = np.asarray(image, dtype=np.float64)
    x = np.pad(x, ((0, 1), (0, 1)), mode="edge")[: x.shape[0] + x.shape[0] % 2, : x.shape[1] + x.shape[1] % 2]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4.0


def _check_size(shape: tuple[int, ...], scales: int, name: str) -> None:
    need = (WINDOW - 1) * 2 ** (scales - 1) + 1
    if min(shape[:2]) < need:
        raise InputError(f"{name} needs images of at least {need} x {need} pixels ({scales} scales of an "
                         f"{WINDOW} x {WINDOW} window), got {shape[1]} x {shape[0]}; drop it for these images")


def _ssim_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of one scale (Wang's ``ssim_index_new``)."""
    g = lambda a: filter_valid(a, _GAUSS, "ms-ssim")  # noqa: E731
    mx, my = g(x), g(y)
    vx, vy, cxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    cs = (2.0 * cxy + _C2) / (vx + vy + _C2)
    ssim = (2.0 * mx * my + _C1) / (mx * mx + my * my + _C1) * cs
    return float(ssim.mean()), float(cs.mean())


def ms_ssim_pair(x: np.ndarray, y: np.ndarray, weights: Sequence[float] = MS_SSIM_WEIGHTS) -> float:
    """MS-SSIM of two grey images on a 0-255 scale.

    Parameters
    ----------
    x, y : ndarray, shape (H, W)
        Same size, at least ``10 * 2^(len(weights) - 1) + 1`` pixels a side.
    weights : sequence of float
        Exponent of each scale, finest first (default: Wang et al.'s five).

    Returns
    -------
    float
        ``prod_{j<M} cs_j^w_j * ssim_M^w_M``, in [0, 1] (1 for ``x == y``);
        negative scale means are clipped at 0 before the powers.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_size(x.shape, len(weights), "ms-ssim")
    total = 1.0
    for level, w in enumerate(weights):
        ssim, cs = _ssim_terms(x, y)
        last = level == len(weights) - 1
        total *= max(ssim if last else cs, 0.0) ** w
        if not last:
            x, y = downsample(x), downsample(y)
    return float(total)


def ms_ssim(ctx: MetricContext) -> float:
    """``sum_s MS-SSIM(S, F)`` (see the module docstring)."""
    return float(sum(ms_ssim_pair(s, ctx.fused) for s in ctx.sources))


def _mef_ssim_scale(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
    """Mean MEF-SSIM quality map of one scale (the reference's ``ssim_MEF``), by window sums."""
    u = lambda a: filter_valid(a, _UNIFORM, "mef-ssim")  # noqa: E731 - mean over the 11 x 11 patch
    g = lambda a: filter_valid(a, _GAUSS, "mef-ssim")  # noqa: E731
    n = float(WINDOW * WINDOW)
    k = len(sources)
    mu = [u(x) for x in sources]
    sq = [u(x * x) for x in sources]
    spread = [np.sqrt(np.maximum(n * (s - m * m), 0.0)) for s, m in zip(sq, mu)]  # ||x_k - mu_k||
    contrast = [d + 0.001 for d in spread]
    total = np.sum(sources, axis=0)
    mt = u(total)
    numerator = np.sqrt(np.maximum(n * (u(total * total) - mt * mt), 0.0))  # ||sum_k (x_k - mu_k)||
    r = (numerator + _EPS) / (np.sum(spread, axis=0) + _EPS)
    r = np.where(r > 1, 1 - _EPS, r)
    r = np.where(r < 0, _EPS, r)
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)
    weight = [(c / WINDOW) ** p + _EPS for c in contrast]
    norm = np.sum(weight, axis=0)
    a = [w / norm / c for w, c in zip(weight, contrast)]  # patch = sum_k a_k (x_k - mu_k), then rescaled
    # ||sum_k a_k (x_k - mu_k)||^2 and its Gaussian-weighted moments, from window sums of products
    sq_norm = np.zeros_like(mt)
    gauss_sq = np.zeros_like(mt)
    gx = [g(x) for x in sources]
    gmean = np.zeros_like(mt)
    for i in range(k):
        gmean += a[i] * (gx[i] - mu[i])
        for j in range(i, k):
            factor = a[i] * a[j] * (1.0 if i == j else 2.0)
            prod = sources[i] * sources[j]
            sq_norm += factor * n * (u(prod) - mu[i] * mu[j])
            gauss_sq += factor * (g(prod) - mu[i] * gx[j] - mu[j] * gx[i] + mu[i] * mu[j])
    length = np.sqrt(np.maximum(sq_norm, 0.0))
    peak = np.max(contrast, axis=0)
    scale = np.where(length > 0, peak / np.where(length > 0, length, 1.0), 1.0)
    gf = g(fused)
    cross = np.zeros_like(mt)
    for i in range(k):
        cross += a[i] * (g(sources[i] * fused) - mu[i] * gf)
    mean_r = scale * gmean
    var_r = scale * scale * gauss_sq - mean_r * mean_r
    var_f = g(fused * fused) - gf * gf
    cov = scale * cross - mean_r * gf
    return float(np.mean((2.0 * cov + _C2) / (var_r + var_f + _C2)))


def mef_ssim_images(sources: Sequence[np.ndarray], fused: np.ndarray,
                    weights: Sequence[float] = MEF_SSIM_WEIGHTS) -> float:
    """MEF-SSIM of a fused image against an exposure stack, grey, 0-255 scale.

    Parameters
    ----------
    sources : sequence of ndarray, shape (H, W)
        The exposures (two or more), same size as ``fused``.
    fused : ndarray, shape (H, W)
    weights : sequence of float
        Exponent of each scale, finest first (default: the reference's three).

    Returns
    -------
    float
        ``prod_l Q_l^w_l``, at most 1; negative scale means clipped at 0.
    """
    xs = [np.asarray(s, dtype=np.float64) for s in sources]
    f = np.asarray(fused, dtype=np.float64)
    if len(xs) < 2:
        raise InputError(f"mef-ssim needs an exposure stack of 2 or more sources, got {len(xs)}")
    _check_size(f.shape, len(weights), "mef-ssim")
    total = 1.0
    for level, w in enumerate(weights):
        total *= max(_mef_ssim_scale(xs, f), 0.0) ** w
        if level < len(weights) - 1:
            xs, f = [downsample(x) for x in xs], downsample(f)
    return float(total)


def mef_ssim(ctx: MetricContext) -> float:
    """MEF-SSIM of the fused image against all sources at once (see the module docstring)."""
    return mef_ssim_images(ctx.sources, ctx.fused)


MS_SSIM = Metric("ms-ssim", "multi-scale structural similarity (MS-SSIM)", "", True, True,
                 "Wang, Simoncelli & Bovik, Asilomar 2003; Wang's msssim.m", ms_ssim,
                 description="MS-SSIM(A,F) + MS-SSIM(B,F); 5 scales, 11x11 Gaussian, L = 255",
                 label="MS-SSIM", on_request=True)
MEF_SSIM = Metric("mef-ssim", "multi-exposure fusion structural similarity (MEF-SSIM)", "", True, True,
                  "Ma, Zeng & Wang, IEEE TIP 2015; Ma's mef_ssim.m", mef_ssim,
                  description="structure of the best-contrast, consistency-weighted patch vs F; 3 scales",
                  label="MEF-SSIM", on_request=True)

METRICS = (MS_SSIM, MEF_SSIM)
