"""Feature mutual information (FMI) of Haghighat et al., in its fast windowed form.

FMI scores how much of the sources' *feature* information the fused image
carries. Haghighat, Aghagolzadeh & Seyedarabi (2011) defined it; Haghighat
& Razian (2014) gave the fast form that the authors' MATLAB code
``fmi.m`` (Mohammad Haghighat, MathWorks File Exchange, copied into many
fusion toolkits, e.g. MEFB's ``metrics/``) computes and that papers report
as FMI_pixel, FMI_w and FMI_dct. fusekit follows that code:

1. Feature images: the pixels themselves (``fmi-pixel``, the script's
   ``'none'``); the whole-image orthonormal 2-D DCT-II (``fmi-dct``,
   MATLAB ``dct2``); or one level of the discrete Meyer wavelet transform
   (``fmi-w``, MATLAB ``dwt2(I, 'dmey')`` with half-sample symmetric
   extension), its four sub-bands laid out as ``[cA cH; cV cD]`` and the
   whole mosaic min-max scaled to [0, 1].
2. For every 3 x 3 window (valid region, no padding) and every source S,
   the window of S and of F are each min-max scaled to [0, 1] (a constant
   window becomes all ones) and divided by their sums: two 9-point
   distributions ``p_S``, ``p_F`` over the window positions, taken in
   column-major order (MATLAB's ``x(:)``). Identical raw windows score 1.
3. Their joint distribution is estimated with Nelsen's method from the
   Pearson correlation ``c`` of the two 9-vectors: ``phi = c / corr_up``
   mixes the Frechet upper bound ``min(P_F(i), P_S(j))`` (for ``c >= 0``; the
   lower bound ``max(P_F(i) + P_S(j) - 1, 0)`` and ``theta = c / corr_lo``
   for ``c < 0``) with independence ``p_F(i) p_S(j)``; ``corr_up``
   (``corr_lo``) is the correlation of the position indices under that
   bound (Hoeffding's covariance over the population standard deviations).
   ``phi`` is 0 when ``c == 0`` or a standard deviation is 0.
4. ``FMI(S, F) = 2 I(S; F) / (H(S) + H(F))`` in bits from that joint
   distribution (0 when the information is 0), averaged over the window's
   sources, then over all windows.

The value lies in [0, 1] (1 when F equals every source). Three
differences from ``fmi.m``, all stated in ``docs/metric_conventions.md``:

- ``fmi.m`` overwrites its copy of the fused window with the scaled one
  while scoring the first source, and then compares the *second* source's
  raw window with that scaled copy. So a window where B equals F but A does
  not is scored by the estimate, not as 1, and a constant window where B
  equals F scores 0 instead of 1: the script is not symmetric in its
  sources. fusekit compares each source with the raw fused window
  (symmetric; :func:`feature_mutual_information` with
  ``script_order=True`` reproduces the script for the tests).
- The discrete Meyer filter: MATLAB's ``dmey`` has 102 taps, PyWavelets'
  (which fusekit uses) 62, an FIR approximation of the same wavelet that
  differs in the 3rd-4th digit; the sub-band images are 20 pixels smaller
  a side. ``fmi-w`` therefore agrees with ``fmi.m`` to about 2 digits, not to
  rounding. ``fmi-pixel`` and ``fmi-dct`` agree to rounding.
- Any number of sources (the mean over them); the script takes two.

The three are computed only when asked for by name (``--metrics
fmi-pixel,fmi-w,fmi-dct``; ``Metric.on_request``): each takes a few seconds
on a 640 x 480 image (every window builds a 9 x 9 joint distribution).

``fmi.m``'s joint entropy keeps ``real(-p log2 p)`` of the estimated joint
probabilities, some of which can be slightly negative: ``-p log2 |p|``,
reproduced here.

References
----------
M. B. A. Haghighat, A. Aghagolzadeh, H. Seyedarabi, "A non-reference image
fusion metric based on mutual information of image features", Computers &
Electrical Engineering 37 (2011) 744-756.
M. Haghighat, M. A. Razian, "Fast-FMI: non-reference image fusion metric",
8th International Conference on Application of Information and
Communication Technologies (AICT) 2014, 1-3.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Metric, MetricContext

#: Side of the sliding window (``fmi.m``'s default ``w = 3``).
WINDOW = 3

#: Windows scored per vectorised step (bounds the (n, 9, 9) temporaries to ~6 MB each).
_CHUNK = 8192

FEATURES = ("pixel", "wavelet", "dct")


def feature_image(image: np.ndarray, feature: str) -> np.ndarray:
    """The feature image FMI compares (step 1 of the module docstring).

    Parameters
    ----------
    image : ndarray, shape (H, W), float
    feature : {"pixel", "wavelet", "dct"}

    Returns
    -------
    ndarray, float64
        ``(H, W)`` for ``pixel`` and ``dct``; the ``[cA cH; cV cD]`` mosaic
        scaled to [0, 1] for ``wavelet``.
    """
    x = np.asarray(image, dtype=np.float64)
    if feature == "pixel":
        return x
    if feature == "dct":
        from scipy.fft import dctn

        return dctn(x, type=2, norm="ortho")
    if feature == "wavelet":
        import pywt

        ca, (ch, cv, cd) = pywt.dwt2(x, "dmey", mode="symmetric")
        mosaic = np.block([[ca, ch], [cv, cd]])
        lo, hi = float(mosaic.min()), float(mosaic.max())
        return np.ones_like(mosaic) if hi == lo else (mosaic - lo) / (hi - lo)
    raise ValueError(f"unknown FMI feature {feature!r}; use one of {', '.join(FEATURES)}")


def _windows(feature: np.ndarray, w: int) -> np.ndarray:
    """Every w x w window (valid region) as a row of w*w values in column-major order."""
    from numpy.lib.stride_tricks import sliding_window_view

    if min(feature.shape) < w:
        from ..errors import InputError

        raise InputError(f"FMI needs images of at least {w} x {w} pixels, got {feature.shape[1]} x "
                         f"{feature.shape[0]}")
    win = sliding_window_view(feature, (w, w))            # (m-w+1, n-w+1, w, w): [row, col]
    return np.ascontiguousarray(win.swapaxes(-1, -2)).reshape(-1, w * w)  # column-major within


class _Stats:
    """Per-window distributions of one feature image (step 2), shared by every pair it enters."""

    def __init__(self, raw: np.ndarray) -> None:
        l = raw.shape[1]
        lo, hi = raw.min(axis=1, keepdims=True), raw.max(axis=1, keepdims=True)
        span = hi - lo
        flat = (span == 0)[:, 0]
        scaled = np.where(span == 0, 1.0, (raw - lo) / np.where(span == 0, 1.0, span))
        self.raw = raw
        self.scaled = scaled
        self.flat = flat
        self.pdf = scaled / scaled.sum(axis=1, keepdims=True)
        self.cdf = np.cumsum(self.pdf, axis=1)
        idx = np.arange(1, l + 1, dtype=np.float64)
        mean = self.pdf @ idx
        self.sd = np.sqrt(np.maximum(self.pdf @ (idx * idx) - mean * mean, 0.0))
        self.centred = self.pdf - self.pdf.mean(axis=1, keepdims=True)
        self.entropy = _entropy_rows(self.pdf)

    def take(self, rows: slice) -> "_Stats":
        out = object.__new__(_Stats)
        for k, v in vars(self).items():
            setattr(out, k, v[rows])
        return out


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    """``sum -p log2 |p|`` over the non-zero entries of each row (MATLAB's ``real(-p .* log2(p))``)."""
    ap = np.abs(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p != 0, -p * np.log2(np.where(p != 0, ap, 1.0)), 0.0)
    return terms.reshape(p.shape[0], -1).sum(axis=1)


def _pair(s: _Stats, f: _Stats, equal: np.ndarray) -> np.ndarray:
    """FMI(S, F) of each window (steps 3-4); ``equal`` marks windows that score 1 outright."""
    num = np.einsum("ij,ij->i", s.centred, f.centred)
    den = np.sqrt(np.einsum("ij,ij->i", s.centred, s.centred) * np.einsum("ij,ij->i", f.centred, f.centred))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / den)
    fc, sc = f.cdf[:, :, None], s.cdf[:, None, :]          # i indexes F, j indexes S (as fmi.m)
    prod_cdf = fc * sc
    up = np.minimum(fc, sc)
    lo = np.maximum(fc + sc - 1.0, 0.0)
    positive = c >= 0
    bound = np.where(positive[:, None, None], up, lo)
    sd = f.sd * s.sd
    cov = (bound - prod_cdf).sum(axis=(1, 2))
    usable = (sd != 0) & ~((c == 0) & positive)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(usable, c / (cov / np.where(sd == 0, 1.0, sd)), 0.0)
    padded = np.pad(bound, ((0, 0), (1, 0), (1, 0)))        # the bound is 0 before the first position
    mass = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    joint = weight[:, None, None] * mass + (1.0 - weight)[:, None, None] * (f.pdf[:, :, None] * s.pdf[:, None, :])
    mi = s.entropy + f.entropy - _entropy_rows(joint)
    total = s.entropy + f.entropy
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where((mi == 0) | (total == 0), 0.0, 2.0 * mi / np.where(total == 0, 1.0, total))
    return np.where(equal, 1.0, value)


def feature_mutual_information(fused: np.ndarray, sources: Sequence[np.ndarray], feature: str = "pixel",
                               window: int = WINDOW, *, script_order: bool = False,
                               features: Sequence[np.ndarray] | None = None) -> float:
    """FMI of ``fused`` against ``sources`` with one feature (see the module docstring).

    Parameters
    ----------
    fused : ndarray, shape (H, W)
    sources : sequence of ndarray, each (H, W)
    feature : {"pixel", "wavelet", "dct"}
    window : int
        Odd window side (``fmi.m``'s ``w``; 3 by default).
    script_order : bool
        Reproduce ``fmi.m``'s comparison of the second source with the
        first source's scaled fused window (two sources only; not
        symmetric). Default False: each source against the raw fused window.
    features : sequence of ndarray, optional
        Feature images ``(F, S1, S2, ...)`` already computed (skips step 1).

    Returns
    -------
    float
        Mean over windows of the mean over sources of ``FMI(S, F)``, in [0, 1].
    """
    if features is None:
        features = [feature_image(x, feature) for x in (fused, *sources)]
    stats = [_Stats(_windows(x, window)) for x in features]
    return _score(stats, script_order)


def _score(stats: Sequence[_Stats], script_order: bool = False) -> float:
    f_all, s_all = stats[0], stats[1:]
    n = f_all.raw.shape[0]
    total = 0.0
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n))
        f = f_all.take(rows)
        acc = np.zeros(f.raw.shape[0])
        first_equal = None
        for k, s_full in enumerate(s_all):
            s = s_full.take(rows)
            equal = np.all(s.raw == f.raw, axis=1)
            if script_order and k == 1:
                # fmi.m compares B with F as left by A's branch: scaled where A's window differed
                equal = np.where(first_equal, equal, np.all(s.raw == f.scaled, axis=1))
            first_equal = equal if k == 0 else first_equal
            acc += _pair(s, f, equal)
        total += float((acc / len(s_all)).sum())
    return total / n


def _metric_function(feature: str):
    def fmi(ctx: MetricContext) -> float:
        def stats(i: int) -> _Stats:
            return ctx.cached_image(i, ("fmi-stats", feature),
                                    lambda: _Stats(_windows(feature_image(ctx.images[i], feature), WINDOW)))

        return _score([stats(i) for i in range(len(ctx.images))])

    fmi.__name__ = f"fmi_{feature}"
    fmi.__doc__ = f"FMI with {feature} features (see :mod:`fusekit.metrics.fmi`)."
    return fmi


_REF = ("Haghighat, Aghagolzadeh & Seyedarabi, Computers & Electrical Engineering 2011; "
        "Haghighat & Razian, AICT 2014 (fast FMI); Haghighat's fmi.m")

FMI_PIXEL = Metric("fmi-pixel", "feature mutual information, pixel features (FMI_pixel)", "", True, True,
                   _REF, _metric_function("pixel"),
                   description="fast FMI on the pixels; 3x3 windows; mean over sources and windows",
                   label="FMI_pixel", on_request=True)
FMI_W = Metric("fmi-w", "feature mutual information, wavelet features (FMI_w)", "", True, True,
               _REF, _metric_function("wavelet"),
               description="fast FMI on one-level discrete Meyer sub-bands; 3x3 windows",
               label="FMI_w", on_request=True)
FMI_DCT = Metric("fmi-dct", "feature mutual information, DCT features (FMI_dct)", "", True, True,
                 _REF, _metric_function("dct"),
                 description="fast FMI on the whole-image 2-D DCT; 3x3 windows",
                 label="FMI_dct", on_request=True)

METRICS = (FMI_PIXEL, FMI_W, FMI_DCT)
