"""Metrics of the fused image alone: EN, SD, SF, AG, EI.

All take the fused luminance ``F`` (H x W, 0-255 scale).

References
----------
C. E. Shannon, "A mathematical theory of communication", Bell System
Technical Journal 27 (1948) 379-423.
A. M. Eskicioglu, P. S. Fisher, "Image quality measures and their
performance", IEEE Transactions on Communications 43 (1995) 2959-2965.
G. Cui, H. Feng, Z. Xu, Q. Li, Y. Chen, "Detail preserved fusion of visible
and infrared images using regional saliency extraction and multi-scale image
decomposition", Optics Communications 341 (2015) 199-209.
B. Rajalingam, R. Priya, "Hybrid multimodality medical image fusion technique
for feature enhancement in medical diagnosis", International Journal of
Engineering Science Invention (2018) (edge intensity; reference code: VIFB's
``metricsEdge_intensity.m``).
"""

from __future__ import annotations

import numpy as np

from .base import Metric, MetricContext


def grey_levels(ctx: MetricContext, index: int) -> np.ndarray:
    """Image ``index`` (0 = fused) quantised to the 256 integer grey levels 0..255.

    Returns
    -------
    ndarray, shape (H * W,), int64
        Rounded (half to even, as ``np.round``) and clipped to [0, 255].
    """
    def make() -> np.ndarray:
        return np.clip(np.rint(ctx.images[index]), 0, 255).astype(np.int64).ravel()

    return ctx.cached_image(index, "levels", make)


def entropy(ctx: MetricContext) -> float:
    """Shannon entropy of F's 256-level grey histogram, in bits.

    ``EN = -sum_l p_l log2 p_l`` over grey levels ``l = 0..255`` of the
    rounded image. Range [0, 8]; 0 for a constant image.
    """
    counts = np.bincount(grey_levels(ctx, 0), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def standard_deviation(ctx: MetricContext) -> float:
    """Population standard deviation of F in grey levels (``np.std``, ddof 0)."""
    return float(np.std(ctx.fused))


def spatial_frequency(ctx: MetricContext) -> float:
    """Spatial frequency ``sqrt(RF^2 + CF^2)`` in grey levels.

    ``RF^2`` is the mean of squared differences of horizontally adjacent
    pixels (over ``M (N-1)`` pairs), ``CF^2`` the same vertically
    (Eskicioglu & Fisher 1995, averaged over the differences as most scripts
    do). 0 for a constant image.
    """
    f = ctx.fused
    rf2 = np.mean(np.square(f[:, 1:] - f[:, :-1])) if f.shape[1] > 1 else 0.0
    cf2 = np.mean(np.square(f[1:, :] - f[:-1, :])) if f.shape[0] > 1 else 0.0
    return float(np.sqrt(rf2 + cf2))


def average_gradient(ctx: MetricContext) -> float:
    """Average gradient in grey levels per pixel.

    ``standard`` (Cui et al. 2015): forward differences,
    ``AG = 1/((M-1)(N-1)) sum sqrt((dx^2 + dy^2) / 2)`` over the
    ``(M-1) x (N-1)`` pixels that have both a right and a lower neighbour.

    ``cddfuse``: central differences (one-sided at the borders, as
    ``np.gradient``), ``sqrt((gx^2 + gy^2) / 2)`` averaged over all
    ``M x N`` pixels.
    """
    f = ctx.fused
    if f.shape[0] < 2 or f.shape[1] < 2:
        return 0.0
    if ctx.profile.ag_differences == "central":
        gy, gx = np.gradient(f)
        return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))
    dx = f[:-1, 1:] - f[:-1, :-1]
    dy = f[1:, :-1] - f[:-1, :-1]
    return float(np.mean(np.sqrt((dx * dx + dy * dy) / 2.0)))


def edge_intensity(ctx: MetricContext) -> float:
    """Edge intensity: mean Sobel gradient magnitude of F, in grey levels.

    ``EI = mean sqrt(Sx^2 + Sy^2)`` with the 3 x 3 Sobel responses (weights
    1, 2, 1; not divided by 8) and replicated borders, as MATLAB's
    ``imfilter(F, fspecial('sobel'), 'replicate')`` in the reference code.
    0 for a constant image.
    """
    from .filters import sobel

    gx, gy = sobel(ctx.fused, "replicate")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


EN = Metric("en", "entropy", "bits", True, False,
            "Shannon 1948 (256 grey levels)", entropy,
            description="entropy of the fused image's 256-level histogram")
SD = Metric("sd", "standard deviation", "grey levels", True, False,
            "population standard deviation", standard_deviation,
            description="contrast of the fused image")
SF = Metric("sf", "spatial frequency", "grey levels", True, False,
            "Eskicioglu & Fisher, IEEE Trans. Commun. 1995", spatial_frequency,
            description="sqrt(RF^2 + CF^2), differences averaged separately")
AG = Metric("ag", "average gradient", "grey levels/pixel", True, False,
            "Cui et al., Optics Communications 2015", average_gradient,
            description="mean of sqrt((dx^2 + dy^2)/2)")

EI = Metric("ei", "edge intensity", "grey levels", True, False,
            "Rajalingam & Priya, IJESI 2018 (VIFB metricsEdge_intensity.m)", edge_intensity,
            description="mean Sobel gradient magnitude, replicated borders")

METRICS = (EN, SD, SF, AG)
