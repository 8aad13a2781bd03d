"""Separable filters shared by the metrics.

Every 2-D window the metrics use (Gaussian, uniform, Sobel) is the outer
product of two 1-D kernels, so filtering is done as two 1-D passes: O(k)
instead of O(k^2) operations per pixel, with the same values up to
floating-point rounding. The Gaussian passes are products with small banded
matrices (:func:`filter_valid`), which BLAS computes faster than a direct
correlation.
"""

from __future__ import annotations

import numpy as np
from ..errors import InputError
from . import compiled


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


def _window_geometry(image: np.ndarray, kernel: np.ndarray, what: str) -> tuple[int, int, int]:
    """Kernel size ``k`` and image ``h, w``; InputError if the image is smaller than the window."""
    k = len(kernel)
    h, w = image.shape[-2:]
    if h < k or w < k:
        raise InputError(f"{what}: image of {w}x{h} pixels is smaller than its {k}x{k} window; "
                         f"use images of at least {k}x{k} pixels")
    return k, h, w


#: Output rows (or columns) per banded block, and the width of the other side of each product:
#: small enough that every product stays on one BLAS thread and in cache.
_BLOCK = 16
_CHUNK = 256


def _banded(kernel: np.ndarray, outputs: int, step: int) -> np.ndarray:
    """Matrix ``T`` with ``(x @ T)[j] = sum_t kernel[t] x[step * j + t]``: shape (step (outputs-1) + k, outputs)."""
    k = len(kernel)
    band = np.zeros((step * (outputs - 1) + k, outputs))
    for j in range(outputs):
        band[step * j:step * j + k, j] = kernel
    return band


def filter_valid(image: np.ndarray, kernel: np.ndarray, what: str = "metric", step: int = 1) -> np.ndarray:
    """Correlate with ``outer(kernel, kernel)``, keeping only fully covered pixels.

    With numba (:mod:`fusekit.metrics.compiled`) both passes are compiled
    loops, one output row at a time. Without it each 1-D pass is a product
    with a small banded matrix per block of 16 outputs (a Toeplitz band of
    the kernel), which BLAS runs about twice as fast as a direct 1-D
    correlation for the 3-17 tap windows of the metrics. With ``step = 2``
    only the kept outputs are computed.

    Parameters
    ----------
    image : ndarray, shape (..., H, W), float64
        Filtered over the last two axes (a stack is filtered at once).
    kernel : ndarray, shape (k,)
        1-D kernel; symmetric kernels make this a convolution too.
    what : str
        Metric name for the error message.
    step : int
        Keep every ``step``-th output in both directions (2: filter, then
        down-sample by 2, as VIF between its scales).

    Returns
    -------
    ndarray, shape (..., (H - k) // step + 1, (W - k) // step + 1)
        Same as ``scipy.signal.convolve2d(image, window, mode="valid")[::step, ::step]``
        for a symmetric window, up to floating-point rounding (about 1e-16
        relative).

    Raises
    ------
    InputError
        The image is smaller than the window.
    """
    k, h, w = _window_geometry(image, kernel, what)
    image = np.asarray(image, dtype=np.float64)
    lead = image.shape[:-2]
    rows, cols = (h - k) // step + 1, (w - k) // step + 1
    kernels = compiled.kernels()
    if kernels is not None:  # direct loops, about 1.6x faster than the BLAS products below
        stack = np.ascontiguousarray(image).reshape((-1, h, w))
        taps = np.ascontiguousarray(kernel, dtype=np.float64)
        return kernels.filter_valid(stack, taps, step).reshape(lead + (rows, cols))
    band = _banded(np.asarray(kernel, dtype=np.float64), _BLOCK, step)
    band_t = np.ascontiguousarray(band.T)
    half = np.empty(lead + (rows, w))          # filtered down the columns
    for i0 in range(0, rows, _BLOCK):
        b = min(_BLOCK, rows - i0)
        span = step * (b - 1) + k
        source = image[..., step * i0:step * i0 + span, :]
        for j0 in range(0, w, _CHUNK):
            np.matmul(band_t[:b, :span], source[..., j0:j0 + _CHUNK],
                      out=half[..., i0:i0 + b, j0:j0 + _CHUNK])
    out = np.empty(lead + (rows, cols))       # then along the rows
    for j0 in range(0, cols, _BLOCK):
        b = min(_BLOCK, cols - j0)
        span = step * (b - 1) + k
        source = half[..., step * j0:step * j0 + span]
        for i0 in range(0, rows, _CHUNK):
            np.matmul(source[..., i0:i0 + _CHUNK, :], band[:span, :b],
                      out=out[..., i0:i0 + _CHUNK, j0:j0 + b])
    return out


def sobel(image: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses as ``scipy.signal.convolve2d`` / MATLAB ``conv2`` give them.

    Parameters
    ----------
    image : ndarray, shape (H, W), float64
    mode : {"constant", "mirror", "replicate"}
        Border handling: ``"constant"`` pads with zeros (``convolve2d(...,
        mode="same")``); ``"mirror"`` reflects without repeating the edge
        pixel (MATLAB code that extends the image symmetrically first);
        ``"replicate"`` repeats the edge pixel (MATLAB ``imfilter(...,
        'replicate')``).

    Returns
    -------
    gx, gy : ndarray, shape (H, W)
        Convolution with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (gx) and
        ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]`` (gy): both are
        ``x[., j-1] - x[., j+1]`` and ``x[i+1, .] - x[i-1, .]`` smoothed by
        ``[1, 2, 1]`` across the difference direction. Integer images give
        exact integer responses.
    """
    pads = {"constant": "constant", "mirror": "reflect", "replicate": "edge"}
    if mode not in pads:
        raise ValueError(f"mode must be 'constant', 'mirror' or 'replicate', got {mode!r}")
    p = np.pad(image, 1, mode=pads[mode])
    d = p[:, :-2] - p[:, 2:]             # (H+2, W): left minus right
    gx = d[1:-1] * 2.0
    gx += d[:-2]
    gx += d[2:]
    e = p[2:] - p[:-2]                   # (H, W+2): below minus above
    gy = e[:, 1:-1] * 2.0
    gy += e[:, :-2]
    gy += e[:, 2:]
    return gx, gy
