"""Separable filters shared by the metrics.

Every 2-D window the metrics use (Gaussian, uniform, Sobel) is the outer
product of two 1-D kernels, so filtering is done as two 1-D passes
(:func:`scipy.ndimage.correlate1d`): O(k) instead of O(k^2) operations per
pixel, with the same values up to floating-point rounding.
"""

from __future__ import annotations

import numpy as np
from ..errors import InputError


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian whose outer product is MATLAB's ``fspecial('gaussian')``.

    Parameters
    ----------
    size : int
        Odd number of taps.
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    ndarray, shape (size,), float64
        Sums to 1. ``np.outer(k, k)`` equals the normalised 2-D window
        ``exp(-(x^2 + y^2) / (2 sigma^2)) / sum`` (MATLAB also zeroes taps
        below ``eps * max``; for the sizes used here, ``sigma >= size / 5``,
        no tap is that small, so the window is exactly separable).
    """
    half = (size - 1) / 2.0
    x = np.arange(-half, half + 1.0)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _window_geometry(image: np.ndarray, kernel: np.ndarray, what: str) -> tuple[int, int, int, int]:
    """Kernel size ``k``, radius ``k // 2`` and image ``h, w``; InputError if the image is smaller."""
    k = len(kernel)
    h, w = image.shape[-2:]
    if h < k or w < k:
        raise InputError(f"{what}: image of {w}x{h} pixels is smaller than its {k}x{k} window; "
                         f"use images of at least {k}x{k} pixels")
    return k, k // 2, h, w


def filter_valid(image: np.ndarray, kernel: np.ndarray, what: str = "metric") -> np.ndarray:
    """Correlate with ``outer(kernel, kernel)``, keeping only fully covered pixels.

    Parameters
    ----------
    image : ndarray, shape (..., H, W)
        Filtered over the last two axes (a stack is filtered at once).
    kernel : ndarray, shape (k,)
        1-D kernel; symmetric kernels make this a convolution too.
    what : str
        Metric name for the error message.

    Returns
    -------
    ndarray, shape (..., H - k + 1, W - k + 1)
        Same as ``scipy.signal.convolve2d(image, window, mode="valid")``
        for a symmetric window.

    Raises
    ------
    InputError
        The image is smaller than the window.
    """
    from scipy import ndimage  # imported on use: registering metrics stays cheap

    k, r, h, w = _window_geometry(image, kernel, what)
    out = ndimage.correlate1d(image, kernel, axis=-1, mode="constant")[..., r:w - r]
    return ndimage.correlate1d(out, kernel, axis=-2, mode="constant")[..., r:h - r, :]


def filter_valid_transposed(image: np.ndarray, kernel: np.ndarray, what: str = "metric") -> np.ndarray:
    """:func:`filter_valid` with the last two axes swapped in the result, about 15% faster.

    The first pass writes its output transposed, so the second pass also runs
    along contiguous memory. For statistics that are combined pixel by pixel
    and then summed (SSIM, VIF), the orientation does not matter.

    Returns
    -------
    ndarray, shape (..., W - k + 1, H - k + 1)
        ``filter_valid(image, kernel)`` with its last two axes swapped.
    """
    from scipy import ndimage

    k, r, h, w = _window_geometry(image, kernel, what)
    buf = np.empty(image.shape[:-2] + (w, h))
    ndimage.correlate1d(image, kernel, axis=-1, mode="constant", output=np.swapaxes(buf, -1, -2))
    return ndimage.correlate1d(buf[..., r:w - r, :], kernel, axis=-1, mode="constant")[..., r:h - r]


def filter_valid_decimate(image: np.ndarray, kernel: np.ndarray, what: str = "metric") -> np.ndarray:
    """``filter_valid(image, kernel)[..., ::2, ::2]``, filtering only the kept columns' rows.

    Parameters
    ----------
    image : ndarray, shape (..., H, W)
    kernel : ndarray, shape (k,)
    what : str

    Returns
    -------
    ndarray, shape (..., ceil((H - k + 1) / 2), ceil((W - k + 1) / 2))
    """
    from scipy import ndimage

    k, r, h, w = _window_geometry(image, kernel, what)
    # rows first along the contiguous axis, keeping every other column, then columns
    out = np.ascontiguousarray(ndimage.correlate1d(image, kernel, axis=-1, mode="constant")[..., r:w - r:2])
    return ndimage.correlate1d(out, kernel, axis=-2, mode="constant")[..., r:h - r:2, :]


def sobel(image: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses as ``scipy.signal.convolve2d`` / MATLAB ``conv2`` give them.

    Parameters
    ----------
    image : ndarray, shape (H, W), float64
    mode : {"constant", "mirror"}
        Border handling: ``"constant"`` pads with zeros (``convolve2d(...,
        mode="same")``); ``"mirror"`` reflects without repeating the edge
        pixel (MATLAB code that extends the image symmetrically first).

    Returns
    -------
    gx, gy : ndarray, shape (H, W)
        Convolution with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (gx) and
        ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]`` (gy): both are
        ``x[., j-1] - x[., j+1]`` and ``x[i+1, .] - x[i-1, .]`` smoothed by
        ``[1, 2, 1]`` across the difference direction. Integer images give
        exact integer responses.
    """
    if mode not in ("constant", "mirror"):
        raise ValueError(f"mode must be 'constant' or 'mirror', got {mode!r}")
    p = np.pad(image, 1, mode="constant" if mode == "constant" else "reflect")
    d = p[:, :-2] - p[:, 2:]             # (H+2, W): left minus right
    gx = d[1:-1] * 2.0
    gx += d[:-2]
    gx += d[2:]
    e = p[2:] - p[:-2]                   # (H, W+2): below minus above
    gy = e[:, 1:-1] * 2.0
    gy += e[:, :-2]
    gy += e[:, 2:]
    return gx, gy
