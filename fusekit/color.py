"""Colour handling: the only place fusekit's colour policy lives.

Fusion happens on luminance. Every source is split into Y (BT.601 luma) and
chroma (Cb, Cr); fusers see only the Y images. The fused Y is then given
chroma by these rules:

* all sources grey -> the result is grey;
* one source in colour (a visible image, PET or SPECT) -> its chroma;
* several in colour -> per pixel and per channel, a blend of the sources'
  chroma weighted by each one's distance from neutral grey,
  ``C = sum_i C_i |C_i - 0.5| / sum_i |C_i - 0.5|`` (0.5 where all are
  neutral), so the most saturated source dominates.

The conversion is full-range BT.601 (as JPEG and OpenCV's YCrCb), on float32
in [0, 1] with chroma centred at 0.5.

References
----------
ITU-R Recommendation BT.601-7, "Studio encoding parameters of digital
television", 2011.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Full-range BT.601: rows give Y, Cb, Cr from R, G, B.
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114],
     [-0.168736, -0.331264, 0.5],
     [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR.astype(np.float64)).astype(np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """RGB to YCbCr (full-range BT.601).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        float in [0, 1].

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        Y in [0, 1]; Cb, Cr in [0, 1] centred at 0.5.
    """
    ycc = np.asarray(rgb, dtype=np.float32) @ _RGB_TO_YCBCR.T
    ycc[..., 1:] += 0.5
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """YCbCr (full-range BT.601, chroma centred at 0.5) to RGB, clipped to [0, 1].

    Parameters
    ----------
    ycc : ndarray, shape (H, W, 3)

    Returns
    -------
    ndarray, shape (H, W, 3), float32
    """
    shifted = np.asarray(ycc, dtype=np.float32).copy()
    shifted[..., 1:] -= 0.5
    return np.clip(shifted @ _YCBCR_TO_RGB.T, 0.0, 1.0)


def luminance(image: np.ndarray) -> np.ndarray:
    """Y channel of an image: grey images are returned as float32 unchanged.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        float in [0, 1].

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return image
    return image @ _RGB_TO_YCBCR[0]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Replicate a grey ``H x W`` image to ``H x W x 3``; RGB passes through."""
    image = np.asarray(image, dtype=np.float32)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def fuse_chroma(sources: Sequence[np.ndarray]) -> np.ndarray | None:
    """Chroma of the fused image by the rules in the module docstring.

    Parameters
    ----------
    sources : sequence of ndarray
        The sources, each ``H x W`` (grey) or ``H x W x 3`` (RGB).

    Returns
    -------
    ndarray, shape (H, W, 2), or None
        (Cb, Cr) centred at 0.5, or ``None`` when every source is grey.
    """
    chromas = [rgb_to_ycbcr(s)[..., 1:] for s in sources if np.ndim(s) == 3]
    if not chromas:
        return None
    if len(chromas) == 1:
        return chromas[0]
    stack = np.stack(chromas)                       # K x H x W x 2
    weight = np.abs(stack - 0.5)
    total = weight.sum(axis=0)
    blended = (stack * weight).sum(axis=0)
    return np.where(total > 1e-12, blended / np.maximum(total, 1e-12), 0.5).astype(np.float32)


def merge(luma: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    """Put chroma back on a fused luminance image.

    Parameters
    ----------
    luma : ndarray, shape (H, W)
        Fused Y in [0, 1].
    chroma : ndarray, shape (H, W, 2), or None
        From :func:`fuse_chroma`; ``None`` gives a grey result.

    Returns
    -------
    ndarray
        ``H x W`` (grey) or ``H x W x 3`` RGB, float32 in [0, 1].
    """
    luma = np.clip(np.asarray(luma, dtype=np.float32), 0.0, 1.0)
    if chroma is None:
        return luma
    return ycbcr_to_rgb(np.concatenate([luma[..., None], chroma], axis=2))
