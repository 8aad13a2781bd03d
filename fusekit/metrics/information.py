"""Mutual information between the fused image and each source.

``MI = sum_s I(F; S_s)``, where ``I(F; S) = sum_{f,s} p(f,s) log(p(f,s) /
(p(f) p(s)))`` is computed from the 256 x 256 joint histogram of the rounded
grey levels (one ``np.bincount`` per source). Units: bits (log2) in the
``standard`` profile, nats (natural log, as scikit-learn's
``mutual_info_score`` used by CDDFuse's script) in ``cddfuse``.

References
----------
G. Qu, D. Zhang, P. Yan, "Information measure for performance of image
fusion", Electronics Letters 38 (2002) 313-315.
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
    if ctx.profile.name == "cddfuse":
        return float(total)
    return float(total / np.log(2.0))


MI = Metric("mi", "mutual information", "bits", True, True,
            "Qu, Zhang & Yan, Electronics Letters 2002", mutual_information,
            description="I(F;A) + I(F;B) from 256-level joint histograms",
            profile_units={"cddfuse": "nats"})

METRICS = (MI,)
