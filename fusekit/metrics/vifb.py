"""The ``vifb`` profile: the 13 metrics of the VIFB benchmark's MATLAB code.

VIFB (Zhang, Ye & Xiao, CVPR Workshops 2020; github.com/xingchenzhang/VIFB,
folder ``metrics/``, commit 22b2ea9) scores a fused image with
``metricsX(imgVI, imgIR, fused)`` on the arrays MATLAB's ``imread`` gives
(8-bit). What these functions reproduce, read from that code:

Colour
    If the fused image has one channel, each metric converts colour sources
    to grey with MATLAB's ``rgb2gray`` (weights 0.298936021293775,
    0.587043074451121, 0.114020904255103), rounded to 8 bits where the code
    converts the ``uint8`` array (CE, MI, SSIM) and unrounded where it
    converts a ``double`` copy (PSNR, RMSE, Q^{AB/F}). Q_CB and Q_CV have no
    conversion there and fail in MATLAB; fusekit raises a clear error. If the
    fused image has three channels, every metric is computed per channel
    (channel k of the fused image against channel k of each colour source,
    or the grey source itself) and the three values are averaged.
    fusekit generalises "colour source" to either source (VIFB's code needs
    the visible one to be colour).
Ranges
    0-255 grey levels; images are quantised to 8 bits as ``imread`` of an
    8-bit file gives them.

Metric by metric (F fused, S a source, sums over the two sources):

``ag``   MATLAB ``gradient`` (central differences, one-sided at borders),
         ``sum sqrt((gx^2 + gy^2)/2)`` divided by (M-1)(N-1), not M N.
``ce``   ``(CE(VI, F) + CE(IR, F)) / 2`` with ``CE(S, F) = sum p_S log2(p_S / p_F)``
         over the grey levels where both histograms are non-zero.
``ei``   Sobel magnitude with replicated borders (``imfilter(..., 'replicate')``), mean.
``en``   Shannon entropy of the 256-level histogram, bits.
``mi``   ``MI(VI, F) + MI(IR, F)`` in **nats**, each image min-max stretched to
         0-255 and rounded (half away from zero) before the joint histogram.
``psnr`` ``20 log10(255 / sqrt(m))`` with ``m`` the mean over sources of
         ``sqrt(sum (S - F)^2) / (M N)`` (not the mean squared error).
``qabf`` Xydeas-Petrovic with zero-padded Sobel responses, ``G = g_F`` where
         ``g_S == g_F``, angle ``pi/2`` where ``gx == 0``, in float64.
``qcb``  Chen-Blum, Liu's implementation (:mod:`fusekit.metrics.perceptual`).
``qcv``  Chen-Varshney, Liu's implementation; lower is better.
``rmse`` the mean over sources of ``sqrt(sum (S - F)^2) / (M N)`` (VIFB's "RMSE";
         the root of the mean squared error divided by ``sqrt(M N)``).
``sf``   ``sqrt(RF + CF)`` with the sums of squared differences divided by ``M N``;
         for a colour F, MATLAB's ``[m, n] = size(F)`` makes ``n = 3 W``, so the
         three channels are laid side by side and treated as one ``M x 3W``
         image (the differences across the two seams included).
``sd``   population standard deviation (VIFB's "Variance" metric returns it).
``ssim`` ``SSIM(VI, F) + SSIM(IR, F)``, 11 x 11 Gaussian (sigma 1.5), L = 255, valid region.

The values were checked against the per-image numbers VIFB publishes
(``output/evaluation_metrics_single``, 5 significant digits) for its own
fused images; see ``tests/golden/vifb/README.md``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InputError
from .base import MetricContext
from .filters import filter_valid, gaussian_kernel, sobel
from .perceptual import chen_blum, chen_blum_contrast, chen_varshney, chen_varshney_saliency, round_half_away

#: MATLAB ``rgb2gray`` weights (first row of the inverse of the NTSC YIQ matrix).
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)

_GAUSS = gaussian_kernel(11, 1.5)


def rgb2gray(image: np.ndarray, rounded: bool) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an (H, W, 3) array; ``rounded`` as for ``uint8`` input (half away from 0)."""
    r, g, b = RGB2GRAY
    grey = image[..., 0] * r + image[..., 1] * g + image[..., 2] * b
    return np.clip(round_half_away(grey), 0, 255) if rounded else grey


def _channel_sets(ctx: MetricContext, grey: str) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """``(fused channel, [source channels])`` per channel as VIFB's wrappers pass them.

    ``grey`` tells what a colour source becomes when the fused image is grey:
    ``"rounded"``, ``"double"`` (unrounded) or ``"fail"``.
    """
    f = ctx.fused
    if f.ndim == 2:
        out = []
        for i, s in enumerate(ctx.sources):
            if s.ndim == 3:
                if grey == "fail":
                    raise InputError("VIFB's code cannot score a grey fused image against a colour "
                                     "source with this metric (MATLAB fails); save the fused image "
                                     "in colour or use another profile")
                s = ctx.cached_image(i + 1, ("vifb-grey", grey), lambda s=s: rgb2gray(s, grey == "rounded"))
            out.append(s)
        return [(f, out)]
    return [(f[..., k], [s[..., k] if s.ndim == 3 else s for s in ctx.sources]) for k in range(f.shape[2])]


def _per_channel(ctx: MetricContext, grey: str, fn: Callable[[np.ndarray, list[np.ndarray]], float]) -> float:
    return float(np.mean([fn(f, ss) for f, ss in _channel_sets(ctx, grey)]))


def _fused_channels(ctx: MetricContext) -> list[np.ndarray]:
    f = ctx.fused
    return [f] if f.ndim == 2 else [f[..., k] for k in range(f.shape[2])]


def _levels(x: np.ndarray) -> np.ndarray:
    """Histogram indices of an 8-bit image (values are integers 0..255 here)."""
    return np.clip(np.floor(x), 0, 255).astype(np.int64).ravel()


# -- fused image alone -------------------------------------------------------------------------

def ag(ctx: MetricContext) -> float:
    """Average gradient: central differences, summed over M N pixels, divided by (M-1)(N-1)."""
    values = []
    for f in _fused_channels(ctx):
        rows, cols = f.shape
        gy = np.gradient(f, axis=0) if rows > 1 else np.zeros_like(f)
        gx = np.gradient(f, axis=1) if cols > 1 else np.zeros_like(f)
        values.append(np.sum(np.sqrt((gx * gx + gy * gy) / 2.0)) / ((rows - 1) * (cols - 1)))
    return float(np.mean(values))


def ei(ctx: MetricContext) -> float:
    """Edge intensity: mean Sobel magnitude with replicated borders, over pixels and channels."""
    values = []
    for f in _fused_channels(ctx):
        gx, gy = sobel(f, "replicate")
        values.append(np.mean(np.sqrt(gx * gx + gy * gy)))
    return float(np.mean(values))


def en(ctx: MetricContext) -> float:
    """Entropy in bits of each channel's 256-level histogram, averaged."""
    values = []
    for f in _fused_channels(ctx):
        counts = np.bincount(_levels(f), minlength=256)
        p = counts[counts > 0] / f.size
        values.append(-np.sum(p * np.log2(p)))
    return float(np.mean(values))


def sd(ctx: MetricContext) -> float:
    """Population standard deviation of each channel, averaged."""
    return float(np.mean([np.sqrt(np.sum((f - f.mean()) ** 2) / f.size) for f in _fused_channels(ctx)]))


def sf(ctx: MetricContext) -> float:
    """Spatial frequency of the channels laid side by side, sums divided by the pixel count."""
    f = ctx.fused
    if f.ndim == 3:  # MATLAB's 2-subscript view of an M x N x 3 array: [R G B]
        f = np.concatenate([f[..., k] for k in range(f.shape[2])], axis=1)
    n = f.size
    rf = np.sum((f[:, 1:] - f[:, :-1]) ** 2) / n
    cf = np.sum((f[1:, :] - f[:-1, :]) ** 2) / n
    return float(np.sqrt(rf + cf))


# -- against the sources -----------------------------------------------------------------------

def _cross_entropy(source: np.ndarray, fused: np.ndarray) -> float:
    ps = np.bincount(_levels(source), minlength=256) / source.size
    pf = np.bincount(_levels(fused), minlength=256) / fused.size
    both = (ps > 0) & (pf > 0)
    return float(np.sum(ps[both] * np.log2(ps[both] / pf[both])))


def ce(ctx: MetricContext) -> float:
    """Cross-entropy, mean over the two sources, per channel, averaged (bits)."""
    return _per_channel(ctx, "rounded",
                        lambda f, ss: float(np.mean([_cross_entropy(s, f) for s in ss])))


def _stretch_levels(x: np.ndarray) -> np.ndarray:
    """VIFB's ``mutinf`` quantisation: min-max to [0, 1], ``int16(x * 255)`` (half away from 0)."""
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros(x.size, dtype=np.int64)
    return round_half_away((x - lo) / (hi - lo) * 255.0).astype(np.int64).ravel()


def _entropy_nats(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _mutual_information_nats(a: np.ndarray, b: np.ndarray) -> float:
    la, lb = _stretch_levels(a), _stretch_levels(b)
    joint = np.bincount(la * 256 + lb, minlength=65536)
    return (_entropy_nats(np.bincount(la, minlength=256)) + _entropy_nats(np.bincount(lb, minlength=256))
            - _entropy_nats(joint))


def mi(ctx: MetricContext) -> float:
    """Mutual information in nats, summed over the two sources, per channel, averaged."""
    return _per_channel(ctx, "rounded",
                        lambda f, ss: sum(_mutual_information_nats(s, f) for s in ss))


def _pseudo_mse(a: np.ndarray, b: np.ndarray) -> float:
    """VIFB's ``mse``: ``sqrt(sum (a - b)^2) / (M N)``."""
    d = a - b
    return float(np.sqrt(np.sum(d * d)) / d.size)


def psnr(ctx: MetricContext) -> float:
    """``20 log10(255 / sqrt(mean_s pseudo_mse(S, F)))`` per channel, averaged (dB)."""
    def one(f: np.ndarray, ss: list[np.ndarray]) -> float:
        m = float(np.mean([_pseudo_mse(s, f) for s in ss]))
        return float("inf") if m == 0.0 else 20.0 * np.log10(255.0 / np.sqrt(m))

    return _per_channel(ctx, "double", one)


def rmse(ctx: MetricContext) -> float:
    """Mean over sources of ``sqrt(sum (S - F)^2) / (M N)`` per channel, averaged."""
    return _per_channel(ctx, "double", lambda f, ss: float(np.mean([_pseudo_mse(s, f) for s in ss])))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    stats = filter_valid(np.stack([a, b, a * a, b * b, a * b]), _GAUSS, "ssim")
    ua, ub = stats[0], stats[1]
    va, vb, cov = stats[2] - ua * ua, stats[3] - ub * ub, stats[4] - ua * ub
    smap = ((2 * ua * ub + c1) * (2 * cov + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
    return float(np.mean(smap))


def ssim(ctx: MetricContext) -> float:
    """``SSIM(VI, F) + SSIM(IR, F)`` per channel, averaged."""
    return _per_channel(ctx, "rounded", lambda f, ss: sum(_ssim(s, f) for s in ss))


def _edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = sobel(image, "constant")
    g = np.sqrt(gx * gx + gy * gy)
    zero = gx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.arctan(gy / np.where(zero, 1.0, gx))
    alpha[zero] = np.pi / 2
    return g, alpha


def _qabf(ss: list[np.ndarray], f: np.ndarray) -> float:
    gf, af = _edges(f)
    num = den = 0.0
    for s in ss:
        gs, as_ = _edges(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(gs > gf, gf / gs, np.where(gs == gf, gf, gs / gf))
        orient = 1.0 - np.abs(as_ - af) / (np.pi / 2)
        q = 0.9994 / (1.0 + np.exp(-15.0 * (ratio - 0.5))) * (0.9879 / (1.0 + np.exp(-22.0 * (orient - 0.8))))
        num += float(np.sum(q * gs))
        den += float(np.sum(gs))
    return num / den if den else float("nan")


def qabf(ctx: MetricContext) -> float:
    """Q^{AB/F} with the shared script's quirks in float64, per channel, averaged."""
    _two(ctx, "qabf")
    return _per_channel(ctx, "double", lambda f, ss: _qabf(ss, f))


def qcb(ctx: MetricContext) -> float:
    """Chen-Blum per channel, averaged (colour sources with a grey fused image fail, as in VIFB)."""
    _two(ctx, "qcb")
    return _per_channel(ctx, "fail", lambda f, ss: chen_blum(ss, f, [chen_blum_contrast(s) for s in ss]))


def qcv(ctx: MetricContext) -> float:
    """Chen-Varshney per channel, averaged (colour sources with a grey fused image fail, as in VIFB)."""
    _two(ctx, "qcv")
    return _per_channel(ctx, "fail",
                        lambda f, ss: chen_varshney(ss, f, [chen_varshney_saliency(s) for s in ss]))


def _two(ctx: MetricContext, name: str) -> None:
    if len(ctx.sources) != 2:
        raise InputError(f"{name} is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")


#: The VIFB implementation of each metric key, in VIFB's configMetrics order.
IMPLEMENTATIONS: dict[str, Callable[[MetricContext], float]] = {
    "ce": ce, "en": en, "mi": mi, "psnr": psnr, "ag": ag, "ei": ei, "qabf": qabf, "sd": sd,
    "sf": sf, "rmse": rmse, "ssim": ssim, "qcb": qcb, "qcv": qcv,
}

#: Units that differ from the metric's default under this profile.
UNITS = {"mi": "nats"}
