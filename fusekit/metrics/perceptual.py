"""Human-perception-inspired metrics: Chen-Blum (Q_CB) and Chen-Varshney (Q_CV).

Both filter the images with a contrast sensitivity function (CSF) in the
frequency domain. The constants, filters and block sizes follow Zheng Liu's
MATLAB implementations (``metricChenBlum.m`` and ``metricChen.m`` of
github.com/zhengliu6699/imageFusionMetrics), which the VIFB benchmark and most
later papers use; the reference code is described step by step in
:func:`chen_blum` and :func:`chen_varshney`.

Q_CB (higher is better, in [0, 1]) measures how much of each source's local
contrast, after CSF filtering, survives in the fused image, weighted by a
saliency map. Q_CV (lower is better, squared grey levels) is the
saliency-weighted mean of the CSF-filtered squared difference between each
source and the fused image, over 16 x 16 blocks.

Every image is first stretched to the full 0-255 range and rounded (Liu's
``normalize1``), so both metrics ignore the absolute grey levels.

Where the reference divides 0 by 0 (a constant image, a pixel without any
contrast) it returns NaN. The ``vifb`` profile keeps that (``strict``: fusekit
then reports the metric as undefined for the image, as VIFB's ``nanmean``
drops it); the ``standard`` and ``cddfuse`` profiles define those cases
instead (see :func:`chen_blum` and :func:`chen_varshney`), so that a flat
fused image scores 0 contrast preserved rather than nothing.

References
----------
Y. Chen, R. S. Blum, "A new automated quality assessment algorithm for image
fusion", Image and Vision Computing 27 (2009) 1421-1432.
H. Chen, P. K. Varshney, "A human perception inspired quality metric for
image fusion based on regional information", Information Fusion 8 (2007)
193-207.
Z. Liu, E. Blasch, Z. Xue, J. Zhao, R. Laganiere, W. Wu, "Objective
assessment of multiresolution image fusion algorithms for context
enhancement in night vision: a comparative study", IEEE TPAMI 34 (2012)
94-109 (the implementations).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext
from .exact_filters import correlate_zero_pair


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: halves go away from zero (numpy's ``rint`` goes to even).

    Exact for every float: ``x - floor(x)`` has no rounding error.
    """
    x = np.asarray(x, dtype=np.float64)
    mag = np.abs(x)
    low = np.floor(mag)
    return np.copysign(low + ((mag - low) >= 0.5), x)


def stretch_255(image: np.ndarray, strict: bool = True) -> np.ndarray:
    """Liu's ``normalize1``: map ``[min, max]`` to ``[0, 255]`` and round (half away from zero).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    strict : bool
        What to do with a constant image other than all zeros, which the
        reference divides 0 by 0: ``True`` returns NaN there, as the
        reference does; ``False`` returns zeros, as the reference does for
        an all-zero image (no contrast).

    Returns
    -------
    ndarray, shape (H, W), float64
        Integers 0..255. An all-zero image is returned as it is.
    """
    data = np.asarray(image, dtype=np.float64)
    hi, lo = float(data.max()), float(data.min())
    if hi == 0.0 and lo == 0.0:
        return data.copy()
    if hi == lo:
        return np.full_like(data, np.nan if strict else 0.0)
    return round_half_away((data - lo) / (hi - lo) * 255.0)


def _frequency_radius(shape: tuple[int, int], scale_rows: float, scale_cols: float) -> np.ndarray:
    """``r = sqrt(u^2 + v^2)`` on MATLAB's ``freqspace(shape, 'meshgrid')`` grid, scaled.

    ``freqspace`` gives ``(k - floor(n/2)) * 2/n`` for ``k = 0..n-1`` (centred,
    as after ``fftshift``); ``u`` (columns) is multiplied by ``scale_cols``,
    ``v`` (rows) by ``scale_rows``. The result is returned in unshifted FFT
    order (``ifftshift`` applied), ready to multiply ``fft2`` of an image.
    """
    rows, cols = shape
    v = (np.arange(rows) - rows // 2) * (2.0 / rows) * scale_rows
    u = (np.arange(cols) - cols // 2) * (2.0 / cols) * scale_cols
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    return np.fft.ifftshift(r)


def _csf_filter(image: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Multiply the image's spectrum by ``response`` (unshifted order); real part of the inverse."""
    return np.fft.ifft2(np.fft.fft2(image) * response).real


# -- Chen-Blum -------------------------------------------------------------------------------

#: Liu's constants: the DoG CSF (f0, f1, a), the contrast gain (k, h, p, q, Z), the 31x31
#: Gaussian windows of sigma 2 and 4 of the local contrast.
_CB_F0, _CB_F1, _CB_A = 15.3870, 1.3456, 0.7622
_CB_P, _CB_Q, _CB_Z = 3.0, 2.0, 0.0001
_CB_HALF = 15


def _gaussian_taps(sigma: float) -> np.ndarray:
    """1-D factor of Liu's unnormalised 31 x 31 window ``exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2)``."""
    x = np.arange(-_CB_HALF, _CB_HALF + 1, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / (np.sqrt(2.0 * np.pi) * sigma)


_CB_G1, _CB_G2 = _gaussian_taps(2.0), _gaussian_taps(4.0)


def _window_sums(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``filter2(outer(g, g), image, 'same')`` for Liu's two windows ``g`` (sigma 2 and 4).

    Zero padding, two 1-D passes per window. The values of
    ``scipy.ndimage.correlate1d`` along both axes, bit for bit, without
    importing scipy.ndimage; the two windows share their first pass's pair
    sums (:func:`fusekit.metrics.exact_filters.correlate_zero_pair`).

    Parameters
    ----------
    image : ndarray, shape (H, W), float64

    Returns
    -------
    tuple of two ndarray, shape (H, W), float64
        The sums under the sigma-2 and the sigma-4 window.
    """
    return correlate_zero_pair(image, _CB_G1, _CB_G2)


@functools.lru_cache(maxsize=4)
def _chen_blum_csf(shape: tuple[int, int]) -> np.ndarray:
    """Liu's DoG CSF ``exp(-(r/f0)^2) - a exp(-(r/f1)^2)`` for images of ``shape`` (read-only, cached:
    the sources and the fused image of a scene share their size, and this costs ~3 ms at 0.15 MP)."""
    rows, cols = shape
    r = _frequency_radius(shape, rows / 30.0, cols / 30.0)
    csf = np.exp(-(r / _CB_F0) ** 2) - _CB_A * np.exp(-(r / _CB_F1) ** 2)
    csf.flags.writeable = False
    return csf


def chen_blum_contrast(image: np.ndarray, strict: bool = True) -> np.ndarray:
    """Masked local contrast ``C^p / (C^q + Z)`` of one image for Q_CB.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Any range; stretched to 0-255 first (:func:`stretch_255`).
    strict : bool
        ``True``: NaN where the reference divides 0 by 0 (a constant image);
        ``False``: contrast 0 there.

    Returns
    -------
    ndarray, shape (H, W), float64
        ``C = |G_2 * I' / (G_4 * I') - 1|`` of the CSF-filtered image ``I'``
        (DoG CSF ``exp(-(r/f0)^2) - a exp(-(r/f1)^2)`` with ``r`` in cycles
        per degree for a viewing distance where the image spans 30 units
        each way, as in Liu's code), then ``C^3 / (C^2 + 1e-4)``.
    """
    return _masked_contrast(stretch_255(image, strict), strict)


def _masked_contrast(data: np.ndarray, strict: bool) -> np.ndarray:
    """:func:`chen_blum_contrast` of an image already stretched (:func:`stretch_255`, same ``strict``).

    Parameters
    ----------
    data : ndarray, shape (H, W), float64
        Integers 0..255 (or NaN, where ``strict`` stretching left it); not modified.
    strict : bool

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    filtered = _csf_filter(data, _chen_blum_csf(data.shape))
    narrow, wide = _window_sums(filtered)
    with np.errstate(divide="ignore", invalid="ignore"):
        contrast = np.abs(narrow / wide - 1.0)
        masked = contrast ** _CB_P / (contrast ** _CB_Q + _CB_Z)
    if not strict:
        masked[~np.isfinite(masked)] = 0.0
    return masked


def chen_blum(sources: list[np.ndarray] | tuple[np.ndarray, ...], fused: np.ndarray,
              contrasts: list[np.ndarray] | None = None, strict: bool = True,
              fused_contrast: np.ndarray | None = None) -> float:
    """Q_CB of a fused image and two sources (Chen & Blum 2009, Liu's implementation).

    Parameters
    ----------
    sources : two ndarrays, each (H, W)
    fused : ndarray, shape (H, W)
    contrasts : list of two ndarrays, optional
        :func:`chen_blum_contrast` of the sources (same ``strict``), if
        already computed.
    strict : bool
        ``True`` follows the reference where it divides by zero: NaN wherever
        a contrast is exactly 0 (the reference's ``(a/b) mask + (b/a)(1 -
        mask)`` turns any ``x/0`` into NaN), which makes the mean NaN.
        ``False`` defines those pixels: ``Q_SF = 1`` where both contrasts
        are 0, else 0 where one is; equal saliency where both sources' are 0.
    fused_contrast : ndarray, shape (H, W), optional
        :func:`chen_blum_contrast` of ``fused`` (same ``strict``), if
        already computed.

    Returns
    -------
    float
        ``mean(l_1 Q_1F + l_2 Q_2F)`` with ``Q_SF = min(C_S, C_F) / max(C_S, C_F)``
        of the masked contrasts and saliency ``l_S = C_S^2 / (C_1^2 + C_2^2)``.
        In [0, 1]; higher is better.
    """
    c1, c2 = contrasts if contrasts is not None else [chen_blum_contrast(s, strict) for s in sources]
    cf = fused_contrast if fused_contrast is not None else chen_blum_contrast(fused, strict)
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = np.where(c1 < cf, c1 / cf, cf / c1)
        q2 = np.where(c2 < cf, c2 / cf, cf / c2)
        s1, s2 = c1 * c1, c2 * c2
        l1 = s1 / (s1 + s2)
    if strict:
        undefined = (c1 == 0) | (c2 == 0) | (cf == 0)
        quality = l1 * q1 + (1.0 - l1) * q2
        quality[undefined] = np.nan
    else:
        q1[(c1 == 0) | (cf == 0)] = 0.0
        q2[(c2 == 0) | (cf == 0)] = 0.0
        q1[(c1 == 0) & (cf == 0)] = 1.0
        q2[(c2 == 0) & (cf == 0)] = 1.0
        l1[(s1 + s2) == 0] = 0.5
        quality = l1 * q1 + (1.0 - l1) * q2
    return float(np.mean(quality))


# -- Chen-Varshney ---------------------------------------------------------------------------

_CV_BLOCK = 16
_CV_ALPHA = 5.0


def _block_reduce(values: np.ndarray, block: int) -> np.ndarray:
    """Sums over ``block x block`` tiles, the last partial tiles padded with zeros (``blkproc``)."""
    rows, cols = values.shape
    pr, pc = -rows % block, -cols % block
    padded = np.pad(values, ((0, pr), (0, pc)))
    h, w = padded.shape
    return padded.reshape(h // block, block, w // block, block).sum(axis=(1, 3))


def _sobel_magnitude_zero_padded(image: np.ndarray) -> np.ndarray:
    """``sqrt(gx^2 + gy^2)`` of MATLAB ``filter2`` with the Sobel kernels, zero padding."""
    from .filters import sobel

    gx, gy = sobel(image, "constant")
    return np.sqrt(gx * gx + gy * gy)


def chen_varshney_saliency(image: np.ndarray, strict: bool = True) -> np.ndarray:
    """Regional saliency ``sum over each 16 x 16 block of g^5`` of a stretched source (Q_CV).

    Parameters
    ----------
    image : ndarray, shape (H, W)

    Returns
    -------
    ndarray, shape (ceil(H / 16), ceil(W / 16))
        ``g`` is the Sobel gradient magnitude (zero-padded borders) of the
        image stretched to 0-255 (``strict`` as in :func:`stretch_255`);
        partial blocks at the right and bottom sum what they hold.
    """
    return _saliency(stretch_255(image, strict))


def _saliency(data: np.ndarray) -> np.ndarray:
    """:func:`chen_varshney_saliency` of an image already stretched (:func:`stretch_255`).

    Parameters
    ----------
    data : ndarray, shape (H, W), float64
        Not modified.

    Returns
    -------
    ndarray, shape (ceil(H / 16), ceil(W / 16)), float64
    """
    g = _sobel_magnitude_zero_padded(data)
    return _block_reduce(g ** _CV_ALPHA, _CV_BLOCK)


@functools.lru_cache(maxsize=4)
def _mannos_sakrison(shape: tuple[int, int]) -> np.ndarray:
    """Mannos-Sakrison CSF ``2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1)``, ``r`` scaled by (H/8, W/8)
    (read-only, cached per size: images of one data set often share it)."""
    rows, cols = shape
    r = _frequency_radius(shape, rows / 8.0, cols / 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    csf.flags.writeable = False
    return csf


def chen_varshney(sources: list[np.ndarray] | tuple[np.ndarray, ...], fused: np.ndarray,
                  saliencies: list[np.ndarray] | None = None, strict: bool = True,
                  stretched: tuple[np.ndarray, ...] | None = None) -> float:
    """Q_CV of a fused image and two sources (Chen & Varshney 2007, Liu's implementation).

    Parameters
    ----------
    sources : two ndarrays, each (H, W)
    fused : ndarray, shape (H, W)
    saliencies : list of two ndarrays, optional
        :func:`chen_varshney_saliency` of the sources (same ``strict``), if
        already computed.
    strict : bool
        ``True``: NaN where the reference has it (a constant image other
        than all zeros; no edges in either source). ``False``: a constant
        image counts as all zeros, and without edges the two sources weigh
        the same.
    stretched : tuple of ndarray, each (H, W), optional
        :func:`stretch_255` (same ``strict``) of ``fused`` and then of each
        source, if already computed.

    Returns
    -------
    float
        ``sum_blocks(l_1 D_1 + l_2 D_2) / sum_blocks(l_1 + l_2)``, where
        ``D_S`` is the mean over each 16 x 16 block (partial blocks divided by
        256 too, as ``blkproc`` pads them with zeros) of the squared
        Mannos-Sakrison-filtered difference ``S - F`` (all images stretched to
        0-255) and ``l_S`` the block saliency. Squared grey levels; lower is
        better; 0 when the fused image equals both sources.
    """
    lam = saliencies if saliencies is not None else [chen_varshney_saliency(s, strict) for s in sources]
    if stretched is None:
        stretched = (stretch_255(fused, strict), *(stretch_255(s, strict) for s in sources))
    f = stretched[0]
    csf = _mannos_sakrison(f.shape)
    dists = []
    for source in stretched[1:]:
        diff = _csf_filter(source - f, csf)
        dists.append(_block_reduce(diff * diff, _CV_BLOCK) / float(_CV_BLOCK * _CV_BLOCK))
    num = float(sum(np.sum(w * d) for w, d in zip(lam, dists)))
    den = float(sum(np.sum(w) for w in lam))
    if den == 0.0:
        if strict:
            return float("nan")
        return float(np.mean([np.mean(d) for d in dists]))
    return num / den


# -- metrics on luminance (standard and cddfuse profiles) ------------------------------------

def _two_sources(ctx: MetricContext, name: str) -> None:
    if len(ctx.sources) != 2:
        raise InputError(f"{name} is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")


def stretched(ctx: MetricContext, index: int) -> np.ndarray:
    """``stretch_255(ctx.images[index], strict=False)``, computed once per image and shared.

    Q_CB, Q_CV and the normalised information metrics all stretch every
    image the same way; the result is cached on the context (read-only).

    Parameters
    ----------
    ctx : MetricContext
    index : int
        0 for the fused image, 1.. for the sources.

    Returns
    -------
    ndarray, shape (H, W), float64
        Integers 0..255; read-only.
    """
    def make() -> np.ndarray:
        data = stretch_255(ctx.images[index], strict=False)
        data.flags.writeable = False
        return data

    return ctx.cached_image(index, "stretch-255", make)


def qcb(ctx: MetricContext) -> float:
    """Q_CB of the luminances (see :func:`chen_blum`); the sources' contrasts are computed once."""
    _two_sources(ctx, "qcb")
    contrasts = [ctx.cached_image(i, "qcb-contrast", lambda i=i: _masked_contrast(stretched(ctx, i), False))
                 for i in (1, 2)]
    return chen_blum(ctx.sources, ctx.fused, contrasts, strict=False,
                     fused_contrast=_masked_contrast(stretched(ctx, 0), False))


def qcv(ctx: MetricContext) -> float:
    """Q_CV of the luminances (see :func:`chen_varshney`); the sources' saliency is computed once."""
    _two_sources(ctx, "qcv")
    saliencies = [ctx.cached_image(i, "qcv-saliency", lambda i=i: _saliency(stretched(ctx, i)))
                  for i in (1, 2)]
    return chen_varshney(ctx.sources, ctx.fused, saliencies, strict=False,
                         stretched=tuple(stretched(ctx, i) for i in (0, 1, 2)))


QCB = Metric("qcb", "Chen-Blum perceptual quality (Q_CB)", "", True, True,
             "Chen & Blum, Image and Vision Computing 2009; Liu's metricChenBlum.m", qcb,
             description="CSF-filtered local contrast of A and B preserved in F, saliency-weighted",
             sources=(2,), label="Qcb")
QCV = Metric("qcv", "Chen-Varshney perceptual distortion (Q_CV)", "squared grey levels", False, True,
             "Chen & Varshney, Information Fusion 2007; Liu's metricChen.m", qcv,
             description="CSF-filtered squared difference to A and B over 16x16 blocks, "
                         "edge-saliency-weighted",
             sources=(2,), label="Qcv")

METRICS = (QCB, QCV)
