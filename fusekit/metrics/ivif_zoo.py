"""The ``ivif_zoo`` profile: SSIM, PSNR, VIF and N^{AB/F} as the IVIF_ZOO survey's Python script computes them.

The infrared-visible fusion survey of Liu et al. ("Infrared and visible
image fusion: from data compatibility to task adaption", IEEE TPAMI 2025)
ships its evaluation code in github.com/RollingPlain/IVIF_ZOO, folder
``Metric/`` (``eval_torch.py``, ``Metric_torch.py``, ``ssim.py``,
``Nabf.py``; read at commit 61b0a44). Images are read with Pillow's
``convert('L')`` (8-bit grey in fixed point). Four of its metrics depart from
the papers and from the other profiles; fusekit reproduces those four
(the rest of the script's 21 metrics are not part of this profile):

``ssim``
    ``ssim.py`` passes float32 arrays through torchvision's ``to_tensor``
    (which divides only uint8 input by 255) and multiplies by 255, then
    uses ``data_range = 255``: the images are on a 0-65025 scale, so the
    constants are those of L = 1 on 0-255 data, ``C1 = 0.01^2``,
    ``C2 = 0.03^2``. Window 11 x 11 Gaussian (sigma 1.5, separable), valid
    region, population covariance; summed over the sources.
``psnr``
    The MSE is taken on images divided by 255, but the peak stays 255:
    ``20 log10(255 / sqrt(MSE))`` with ``MSE = (MSE(F,A) + MSE(F,B)) / 2``,
    i.e. the textbook PSNR plus ``20 log10(255) = 48.13`` dB.
``vif``
    Sheikh's pixel-domain VIF summed over the sources, with two changes:
    the Gaussian windows come from ``torch.linspace(-N//2, N//2, N)``, and
    Python's ``-N//2`` is ``-(N+1)/2``, so the N samples span
    ``[-(N+1)/2, (N-1)/2]``: off-centre and spaced ``N/(N-1)`` apart (sigma
    N/5 as usual); and the filters zero-pad to the input size ("same")
    instead of the valid region.
``nabf``
    Shreyamsha Kumar's modified N^{AB/F} with the usual constants, mirrored
    borders and Sobel / 8, but the orientation is ``arctan(gx / gy)`` (the
    script divides the vertical-kernel response by the horizontal one;
    ``+-pi/2`` where ``gy = 0``, 0 where both are 0) and the weights are 0,
    not ``wt_min``, below ``Td``. The relative strength is 0 where either
    strength is 0.

The script computes in float32 on the GPU or CPU (torch); fusekit in
float64, so values agree to about 1e-5 relative.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import MetricContext

_SIGMA_NSQ = 2.0


def _ssim_window() -> np.ndarray:
    g = np.exp(-(np.arange(11) - 5.0) ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()
    return np.outer(g, g)


def _valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    from scipy.signal import correlate2d

    return correlate2d(image, window, mode="valid")


def ssim_one(x: np.ndarray, y: np.ndarray) -> float:
    """IVIF_ZOO's SSIM of one pair on 0-255 images: Wang's SSIM with L = 1 (see the module docstring)."""
    if min(x.shape) < 11:
        raise InputError("ivif_zoo SSIM needs images of at least 11 x 11 pixels")
    w = _ssim_window()
    mu1, mu2 = _valid(x, w), _valid(y, w)
    s11 = _valid(x * x, w) - mu1 * mu1
    s22 = _valid(y * y, w) - mu2 * mu2
    s12 = _valid(x * y, w) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return float(np.mean((2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs))


def ssim(ctx: MetricContext) -> float:
    """Sum over sources of :func:`ssim_one` (source, fused)."""
    return float(sum(ssim_one(s, ctx.fused) for s in ctx.sources))


def psnr(ctx: MetricContext) -> float:
    """``20 log10(255 / sqrt(MSE))`` with the MSE of images divided by 255, averaged over sources."""
    f = ctx.fused / 255.0
    mse = float(np.mean([np.mean((f - s / 255.0) ** 2) for s in ctx.sources]))
    return float("inf") if mse == 0 else float(20.0 * np.log10(255.0 / np.sqrt(mse)))


def vif_window(n: int) -> np.ndarray:
    """The script's off-centre Gaussian: samples of ``torch.linspace(-n // 2, n // 2, n)``, sigma n/5."""
    t = np.linspace(-((n + 1) // 2), n // 2, n)
    x, y = np.meshgrid(t, t, indexing="ij")
    g = np.exp(-(x ** 2 + y ** 2) / (2 * (n / 5.0) ** 2))
    return g / g.sum()


def _same(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    from scipy.ndimage import correlate

    return correlate(image, window, mode="constant", cval=0.0)


def vifp_one(ref: np.ndarray, dist: np.ndarray) -> float:
    """IVIF_ZOO's ``vifp_mscale(ref, dist)`` (see the module docstring)."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        win = vif_window(n)
        if scale > 1:
            ref = _same(ref, win)[::2, ::2]
            dist = _same(dist, win)[::2, ::2]
        mu1, mu2 = _same(ref, win), _same(dist, win)
        s11 = np.maximum(_same(ref * ref, win) - mu1 * mu1, 0.0)
        s22 = np.maximum(_same(dist * dist, win) - mu2 * mu2, 0.0)
        s12 = _same(ref * dist, win) - mu1 * mu2
        g = s12 / (s11 + 1e-10)
        sv = s22 - g * s12
        low1 = s11 < 1e-10
        g[low1] = 0
        sv[low1] = s22[low1]
        s11[low1] = 0
        low2 = s22 < 1e-10
        g[low2] = 0
        sv[low2] = 0
        neg = g < 0
        sv[neg] = s22[neg]
        g[neg] = 0
        sv[sv <= 1e-10] = 1e-10
        num += float(np.sum(np.log10(1 + g * g * s11 / (sv + _SIGMA_NSQ))))
        den += float(np.sum(np.log10(1 + s11 / _SIGMA_NSQ)))
    return num / den


def vif(ctx: MetricContext) -> float:
    """Sum over sources of :func:`vifp_one` (source, fused)."""
    return float(sum(vifp_one(s, ctx.fused) for s in ctx.sources))


def _sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(gv, gh)`` as the script's ``sobel_fn``: true convolution of the mirrored image, kernels / 8."""
    from scipy.signal import convolve2d

    ext = np.pad(x, 1, mode="reflect")
    vtemp = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
    htemp = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8
    return convolve2d(ext, vtemp, mode="valid"), convolve2d(ext, htemp, mode="valid")


def _edge(ctx: MetricContext, index: int) -> tuple[np.ndarray, np.ndarray]:
    def make():
        gv, gh = _sobel(ctx.images[index])
        g = np.sqrt(gh ** 2 + gv ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
        return g, a

    return ctx.cached_image(index, "ivif-zoo-edges", make)


def nabf(ctx: MetricContext) -> float:
    """IVIF_ZOO's ``get_Nabf`` (see the module docstring); two sources."""
    if len(ctx.sources) != 2:
        raise InputError(f"nabf is defined for 2 sources, got {len(ctx.sources)}")
    (gf, af), (ga, aa), (gb, ab) = (_edge(ctx, i) for i in range(3))

    def q(gs: np.ndarray, as_: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where((gs == 0) | (gf == 0), 0.0, np.where(gs > gf, gf / gs, gs / gf))
        ang = np.abs(np.abs(as_ - af) - np.pi / 2) * 2 / np.pi
        qg = 0.9999 / (1 + np.exp(-19 * (rel - 0.5)))
        qa = 0.9995 / (1 + np.exp(-22 * (ang - 0.5)))
        return np.sqrt(qg * qa)

    qa_, qb_ = q(ga, aa), q(gb, ab)
    wa = np.where(ga >= 2, ga ** 1.5, 0.0)
    wb = np.where(gb >= 2, gb ** 1.5, 0.0)
    na = (gf > ga) & (gf > gb)
    return float(np.sum(na * ((1 - qa_) * wa + (1 - qb_) * wb)) / np.sum(wa + wb))


IMPLEMENTATIONS = {"ssim": ssim, "psnr": psnr, "vif": vif, "nabf": nabf}
