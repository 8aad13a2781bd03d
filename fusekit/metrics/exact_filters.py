"""scipy.ndimage's uniform and Gaussian window filters of the metrics, bit for bit, in numpy.

Importing ``scipy.ndimage`` costs about 0.2 s of CPU (it pulls in
``scipy.special`` and scipy's array-API layer), more than all 21 ``cddfuse``
metrics of a 640x480 triplet take. The two filters the default metric sets
need are re-implemented here so that they give scipy's very numbers:

- :func:`box_mean`: ``scipy.ndimage.uniform_filter(p, k)`` (mirrored borders)
  of an integer-valued float32 image, as scikit-image's SSIM uses it
  (``cddfuse`` SSIM). scipy filters along axis 0, stores float32, then along
  axis 1, each pass a float64 running sum divided by ``k``. For integers of
  magnitude at most 2^20 every one of those sums is exact, so any exact
  summation gives the same quotient: the first pass sums in float32
  (integers below 2^23 are exact there, and dividing them by ``k = 7`` in
  float32 rounds as float64-then-float32 does, checked for every integer
  below 2^24), the second in float64 (``k`` float32 values that are
  multiples of 2^-26 below 2^20 need at most 49 bits).
- :func:`correlate_zero`: ``scipy.ndimage.correlate1d`` along both axes with
  zero padding and a symmetric kernel (``Q_CB``'s Gaussian windows), with
  the operations of scipy's symmetric loop in its order
  (``w[c] x[i] + sum_{j = c..1} (x[i - j] + x[i + j]) w[c - j]``), so the
  float64 roundings are the same.

Both work on strips of rows that stay in the CPU's cache, which makes them
about as fast as scipy's C loops (:func:`box_mean` about twice as fast).
``tests/test_metrics_exact_filters.py`` checks them against scipy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXACT_LIMIT", "box_mean", "correlate_zero", "correlate_zero_pair", "integer_valued"]

#: Largest integer magnitude of an image for which :func:`box_mean` of it and of its products
#: (``x * x``, ``x * y``, at most 2^20) is exact.
EXACT_LIMIT = 1024.0

#: Rows per strip: a strip's float64 work arrays (about 64 x 640 x 8 bytes each) stay in L2.
_STRIP = 64


def integer_valued(x: np.ndarray, limit: float = EXACT_LIMIT) -> bool:
    """Whether every value of ``x`` is an integer of magnitude at most ``limit`` (NaN: no).

    Parameters
    ----------
    x : ndarray
    limit : float

    Returns
    -------
    bool
    """
    if x.size == 0:
        return True
    if not float(np.abs(x).max()) <= limit:   # also False for NaN
        return False
    return bool(np.array_equal(x, np.rint(x)))


def _mirror_rows(p: np.ndarray, r: int) -> np.ndarray:
    """``p`` with ``r`` rows mirrored above and below (scipy's ``"reflect"``: edge row repeated)."""
    h = p.shape[0]
    out = np.empty((h + 2 * r,) + p.shape[1:], p.dtype)
    out[r:r + h] = p
    for t in range(r):                       # row -1 - t is row t, row h + t is row h - 1 - t
        out[r - 1 - t] = p[_fold(-1 - t, h)]
        out[r + h + t] = p[_fold(h + t, h)]
    return out


def _fold(i: int, n: int) -> int:
    """Index ``i`` folded into ``[0, n)`` as ``"reflect"`` does (also for ``n`` shorter than the window)."""
    m = i % (2 * n)
    return m if m < n else 2 * n - 1 - m


def box_mean(p: np.ndarray, k: int = 7) -> np.ndarray:
    """``scipy.ndimage.uniform_filter(p, k)`` of an integer-valued float32 image, bit for bit.

    Parameters
    ----------
    p : ndarray, shape (H, W), float32
        Integer values of magnitude at most 2^20 (:data:`EXACT_LIMIT` squared);
        other values give sums that are no longer exact (not checked here:
        see :func:`integer_valued`).
    k : int
        Odd window size; borders mirrored (``"reflect"``).

    Returns
    -------
    ndarray, shape (H, W), float32
    """
    p = np.asarray(p, dtype=np.float32)
    h, w = p.shape
    r = k // 2
    rows = _mirror_rows(p, r)
    cols = [_fold(j, w) for j in range(-r, 0)] + [_fold(w + t, w) for t in range(r)]
    out = np.empty((h, w), np.float32)
    strip = min(_STRIP, h)
    col = np.empty((strip, w), np.float32)
    wide = np.empty((strip, w + 2 * r))
    acc = np.empty((strip, w))
    size32 = np.float32(k)
    for i0 in range(0, h, strip):
        m = min(strip, h - i0)
        c, wd, a = col[:m], wide[:m], acc[:m]
        np.add(rows[i0:i0 + m], rows[i0 + 1:i0 + 1 + m], out=c)   # exact: integers below 2^23
        for t in range(2, k):
            c += rows[i0 + t:i0 + t + m]
        c /= size32
        wd[:, r:r + w] = c
        wd[:, :r] = c[:, cols[:r]]
        wd[:, r + w:] = c[:, cols[r:]]
        np.add(wd[:, 0:w], wd[:, 1:1 + w], out=a)                  # exact in float64
        for t in range(2, k):
            a += wd[:, t:t + w]
        a /= k
        out[i0:i0 + m] = a
    return out


def correlate_zero(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``correlate1d`` along axis 0, then axis 1, zero padding, symmetric ``taps``: scipy's values.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Converted to float64.
    taps : ndarray, shape (2c + 1,)
        Symmetric kernel (``taps == taps[::-1]``), as scipy then runs its
        symmetric loop.

    Returns
    -------
    ndarray, shape (H, W), float64
        Equal to ``correlate1d(correlate1d(image, taps, 0, mode="constant"),
        taps, 1, mode="constant")``.

    Raises
    ------
    ValueError
        ``taps`` is not symmetric or has an even length.
    """
    return correlate_zero_pair(image, taps, None)[0]


def _symmetric_taps(taps: np.ndarray) -> np.ndarray:
    """``taps`` as float64, checked to be symmetric and of odd length (ValueError otherwise)."""
    taps = np.asarray(taps, dtype=np.float64)
    if taps.ndim != 1 or len(taps) % 2 == 0 or not np.array_equal(taps, taps[::-1]):
        raise ValueError("correlate_zero needs a symmetric kernel of odd length")
    return taps


def correlate_zero_pair(image: np.ndarray, taps: np.ndarray,
                        other: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`correlate_zero` of one image with two kernels of one length, sharing the work they have in common.

    Down the columns both kernels weigh the same pair sums ``x[i - j] +
    x[i + j]`` of the same padded image, so each sum is formed once (a
    sixth of the arithmetic of the two filterings). Every output is computed
    with the operations of :func:`correlate_zero`, in its order: the values
    are the same, bit for bit.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Converted to float64.
    taps, other : ndarray, shape (2c + 1,)
        Symmetric kernels of the same odd length; ``other`` may be ``None``
        (one filtering only).

    Returns
    -------
    tuple of ndarray, shape (H, W), float64
        ``(correlate_zero(image, taps), correlate_zero(image, other))``;
        the second is ``None`` when ``other`` is.

    Raises
    ------
    ValueError
        A kernel is not symmetric, has an even length, or the two differ in length.
    """
    kernels = [_symmetric_taps(taps)]
    if other is not None:
        kernels.append(_symmetric_taps(other))
        if len(kernels[1]) != len(kernels[0]):
            raise ValueError("correlate_zero_pair needs two kernels of one length")
    c = len(kernels[0]) // 2
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    padded = np.zeros((h + 2 * c, w))
    padded[c:c + h] = image
    # after the first pass, zero columns either side
    halves = [np.zeros((h, w + 2 * c)) for _ in kernels]
    outs = [np.empty((h, w)) for _ in kernels]
    strip = min(_STRIP // 2, h)
    tmp = np.empty((strip, w))
    prod = np.empty((strip, w))
    for i0 in range(0, h, strip):            # down the columns
        m = min(strip, h - i0)
        centre = padded[i0 + c:i0 + c + m]
        dsts = [half[i0:i0 + m, c:c + w] for half in halves]
        for dst, k in zip(dsts, kernels):
            np.multiply(centre, k[c], out=dst)
        t, p = tmp[:m], prod[:m]
        for j in range(c, 0, -1):
            np.add(padded[i0 + c - j:i0 + c - j + m], padded[i0 + c + j:i0 + c + j + m], out=t)
            for dst, k in zip(dsts, kernels):
                np.multiply(t, k[c - j], out=p)
                dst += p
    for half, out, k in zip(halves, outs, kernels):
        for i0 in range(0, h, strip):        # along the rows
            m = min(strip, h - i0)
            src, dst = half[i0:i0 + m], out[i0:i0 + m]
            np.multiply(src[:, c:c + w], k[c], out=dst)
            t = tmp[:m]
            for j in range(c, 0, -1):
                np.add(src[:, c - j:c - j + w], src[:, c + j:c + j + w], out=t)
                t *= k[c - j]
                dst += t
    return outs[0], (outs[1] if other is not None else None)
