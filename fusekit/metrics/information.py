"""Information-theoretic metrics: mutual information (MI) and cross-entropy (CE).

``MI = sum_s I(F; S_s)``, where ``I(F; S) = sum_{f,s} p(f,s) log(p(f,s) /
(p(f) p(s)))`` is computed from the 256 x 256 joint histogram of the rounded
grey levels (one ``np.bincount`` per source). Units: bits (log2) in the
``standard`` profile, nats (natural log, as scikit-learn's
``mutual_info_score`` used by CDDFuse's script) in ``cddfuse``.

``CE = mean_s CE(S_s, F)`` with ``CE(S, F) = sum_l p_S(l) log2(p_S(l) / p_F(l))``
over the 256 grey levels ``l`` where both histograms are non-zero (the
relative entropy of the source's histogram to the fused one, as Bulanon et
al. define it and as VIFB's ``metricsCross_entropy.m`` computes it; a level
missing from F would make it infinite, so it is skipped). Bits; lower is
better; 0 when F has each source's histogram.

References
----------
G. Qu, D. Zhang, P. Yan, "Information measure for performance of image
fusion", Electronics Letters 38 (2002) 313-315.
D. M. Bulanon, T. F. Burks, V. Alchanatis, "Image fusion of visible and
thermal images for fruit detection", Biosystems Engineering 103 (2009)
12-22.
"""

from __future__ import annotations

import numpy as np

from .base import Metric, MetricContext
from .intensity import grey_levels


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of two integer label arrays in 0..255, in nats."""
    n = a.size
    joint = np.bincount(a * 256 + b, minlength=65536).reshape(256, 256)
    pa = joint.sum(axis=1)
    pb = joint.sum(axis=0)
    rows, cols = np.nonzero(joint)
    nz = joint[rows, cols].astype(np.float64)
    # sum p_ab log(p_ab / (p_a p_b)) with p = count / n
    terms = nz * (np.log(nz) + np.log(n) - np.log(pa[rows].astype(np.float64))
                  - np.log(pb[cols].astype(np.float64)))
    return max(float(terms.sum() / n), 0.0)


def mutual_information(ctx: MetricContext) -> float:
    """``sum_s I(F; S_s)`` in bits (standard) or nats (cddfuse).

    Integer histograms with ``np.bincount``; the fused image's grey levels
    are computed once for all sources. 0 when either image is constant.
    """
    f = grey_levels(ctx, 0)
    total = sum(_mutual_information(f, grey_levels(ctx, i)) for i in range(1, len(ctx.images)))
    return float(total / np.log(ctx.profile.mi_log_base))  # natural log: / 1.0, exact


def _histogram(ctx: MetricContext, index: int) -> np.ndarray:
    """Probabilities of the 256 grey levels of image ``index`` (0 = fused), cached."""
    def make() -> np.ndarray:
        levels = grey_levels(ctx, index)
        return np.bincount(levels, minlength=256) / float(levels.size)

    return ctx.cached_image(index, "histogram", make)


def relative_entropy_bits(ps: np.ndarray, pf: np.ndarray) -> float:
    """``sum p_s log2(p_s / p_f)`` over the levels where both probabilities are non-zero.

    Parameters
    ----------
    ps, pf : ndarray, shape (256,)
        Grey-level probabilities of a source and of the fused image.
    """
    both = (ps > 0) & (pf > 0)
    return float(np.sum(ps[both] * np.log2(ps[both] / pf[both])))


def cross_entropy(ctx: MetricContext) -> float:
    """Mean over sources of ``CE(S_s, F)`` in bits (see the module docstring)."""
    pf = _histogram(ctx, 0)
    return float(np.mean([relative_entropy_bits(_histogram(ctx, i), pf) for i in range(1, len(ctx.images))]))


MI = Metric("mi", "mutual information", "bits", True, True,
            "Qu, Zhang & Yan, Electronics Letters 2002", mutual_information,
            description="I(F;A) + I(F;B) from 256-level joint histograms",
            profile_units={"cddfuse": "nats", "vifb": "nats"})
CE = Metric("ce", "cross-entropy", "bits", False, True,
            "Bulanon, Burks & Alchanatis, Biosystems Engineering 2009", cross_entropy,
            description="(CE(A,F) + CE(B,F)) / 2 from 256-level histograms; levels empty in "
                        "either image skipped")

METRICS = (MI,)
