"""Normalised information metrics: NMI (Hossny), Tsallis entropy (Cvejic), Q_NCIE (Wang).

All three work on 256 x 256 joint grey-level histograms of images first
stretched to the full 0-255 range and rounded (Liu's ``normalize1``,
:func:`fusekit.metrics.perceptual.stretch_255`), as the reference
implementations do (Zheng Liu's MATLAB package, github.com/zhengliu6699/
imageFusionMetrics: ``metricMI.m`` with ``mutual_info.m`` and ``tsallis.m``,
``metricWang.m`` with ``NCC.m``). A constant image stretches to all zeros
(no information).

``nmi`` (Hossny et al. 2008): ``2 (I(A;F) / (H(A) + H(F)) + I(B;F) / (H(B) + H(F)))``,
in [0, 2]; a term whose two images are both constant counts 0.

``te`` (Cvejic et al. 2006): ``I_q(A;F) + I_q(B;F)`` with q = 1.85 and
``I_q(X;Y) = (1 - sum_{x,y} p(x,y)^q / (p(x) p(y))^(q-1)) / (1 - q)``
over the pairs with ``p(x) p(y) > 0``. Liu's ``tsallis.m`` pairs
``p(x, y)`` with ``p_Y(x) p_X(y)`` (its marginals are transposed), which
gives other numbers unless both images have the same histogram; fusekit
follows the paper.

``qncie`` (Wang, Shen & Zhang 2005/2008): nonlinear correlation coefficients
``NCC(X, Y) = (H(X) + H(Y) - H(X, Y)) / log2(256)`` of the three pairs form a
3 x 3 matrix R (ones on the diagonal); with its eigenvalues ``l_i``,
``Q_NCIE = 1 + sum_i (l_i / 3) log_256(l_i / 3)``, in [0, 1].

References
----------
M. Hossny, S. Nahavandi, D. Creighton, "Comments on 'Information measure for
performance of image fusion'", Electronics Letters 44 (2008) 1066-1067.
N. Cvejic, C. N. Canagarajah, D. R. Bull, "Image fusion metric based on
mutual information and Tsallis entropy", Electronics Letters 42 (2006)
626-627.
Q. Wang, Y. Shen, J. Jin, "Performance evaluation of image fusion
techniques", in Image Fusion: Algorithms and Applications (T. Stathaki,
ed.), Academic Press 2008, 469-492.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext
from .perceptual import stretched

#: Cvejic's constant for the Tsallis entropy metric.
TSALLIS_Q = 1.85


def _levels(ctx: MetricContext, index: int) -> np.ndarray:
    """Image ``index`` (0 = fused) stretched to 0..255 and rounded, flattened, int64; cached."""
    return ctx.cached_image(index, "stretched-levels",
                            lambda: stretched(ctx, index).astype(np.int64).ravel())


def joint_probabilities(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``p[i, j]`` = fraction of pixels with level ``i`` in ``x`` and ``j`` in ``y``.

    Parameters
    ----------
    x, y : ndarray of int, shape (N,)
        Levels 0..255.

    Returns
    -------
    ndarray, shape (256, 256), float64
    """
    return np.bincount(x * 256 + y, minlength=65536).reshape(256, 256) / float(x.size)


def _entropy_bits(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-np.sum(nz * np.log2(nz)))


def _mi_parts(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``(I(X;Y), H(X), H(Y))`` in bits."""
    p = joint_probabilities(x, y)
    hx, hy = _entropy_bits(p.sum(axis=1)), _entropy_bits(p.sum(axis=0))
    return hx + hy - _entropy_bits(p), hx, hy


def _check_two(ctx: MetricContext, name: str) -> None:
    if len(ctx.sources) != 2:
        raise InputError(f"{name} is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")


def normalized_mutual_information(ctx: MetricContext) -> float:
    """Hossny's NMI ``2 sum_s I(S;F) / (H(S) + H(F))`` (see the module docstring)."""
    f = _levels(ctx, 0)
    total = 0.0
    for i in range(1, len(ctx.images)):
        mi, hs, hf = _mi_parts(_levels(ctx, i), f)
        if hs + hf > 0:
            total += mi / (hs + hf)
    return 2.0 * total


def tsallis_information(x: np.ndarray, y: np.ndarray, q: float = TSALLIS_Q) -> float:
    """Tsallis mutual information ``I_q(X;Y)`` of two level arrays (Cvejic et al. 2006).

    Parameters
    ----------
    x, y : ndarray of int, shape (N,)
        Levels 0..255.
    q : float
        Entropic index, not 1.

    Returns
    -------
    float
        ``(1 - sum p(x,y)^q / (p(x) p(y))^(q-1)) / (1 - q)`` over the pairs
        whose marginals are both non-zero (dimensionless).
    """
    p = joint_probabilities(x, y)
    px, py = p.sum(axis=1), p.sum(axis=0)
    rows, cols = np.nonzero(p)  # p(x,y) > 0 implies both marginals > 0
    terms = p[rows, cols] ** q / (px[rows] * py[cols]) ** (q - 1.0)
    return float((1.0 - terms.sum()) / (1.0 - q))


def tsallis_entropy(ctx: MetricContext) -> float:
    """``I_q(A;F) + I_q(B;F)`` with q = 1.85 (see the module docstring)."""
    f = _levels(ctx, 0)
    return float(sum(tsallis_information(_levels(ctx, i), f) for i in range(1, len(ctx.images))))


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    mi, _, _ = _mi_parts(x, y)
    return mi / 8.0  # log2(256)


def nonlinear_correlation_information_entropy(ctx: MetricContext) -> float:
    """Wang's Q_NCIE of two sources and the fused image (see the module docstring)."""
    _check_two(ctx, "qncie")
    f, a, b = (_levels(ctx, i) for i in range(3))
    ab = ctx.cached_source("qncie-ab", lambda: _ncc(a, b))
    af, bf = _ncc(a, f), _ncc(b, f)
    r = np.array([[1.0, ab, af], [ab, 1.0, bf], [af, bf, 1.0]])
    eig = np.clip(np.linalg.eigvalsh(r), 0.0, None) / 3.0
    nz = eig[eig > 0]
    return float(1.0 + np.sum(nz * np.log(nz)) / np.log(256.0))


NMI = Metric("nmi", "normalised mutual information", "", True, True,
             "Hossny, Nahavandi & Creighton, Electronics Letters 2008; Liu's metricMI.m",
             normalized_mutual_information,
             description="2 (I(A;F)/(H(A)+H(F)) + I(B;F)/(H(B)+H(F))), images stretched to 0-255",
             label="NMI")
TE = Metric("te", "Tsallis entropy (mutual information, q = 1.85)", "", True, True,
            "Cvejic, Canagarajah & Bull, Electronics Letters 2006; Liu's tsallis.m", tsallis_entropy,
            description="I_q(A;F) + I_q(B;F), q = 1.85, images stretched to 0-255")
QNCIE = Metric("qncie", "nonlinear correlation information entropy (Q_NCIE)", "", True, True,
               "Wang, Shen & Jin, in Image Fusion (Stathaki ed.) 2008; Liu's metricWang.m",
               nonlinear_correlation_information_entropy,
               description="1 - entropy of the eigenvalues of the 3x3 NCC matrix of A, B, F",
               sources=(2,), label="Qncie")

METRICS = (NMI, TE, QNCIE)
