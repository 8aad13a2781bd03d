"""The built-in metrics, in the order reports list them."""

from __future__ import annotations

from . import (correlation, edges, fidelity, fmi, information, intensity, multiscale, normalized, perceptual,
               structural, vif)
from .base import Metric

#: Built-in metrics in report order (the order of ReFusion's tables, then the rest).
BUILTIN_METRICS: tuple[Metric, ...] = (
    *intensity.METRICS,        # en, sd, sf, ag
    *information.METRICS,      # mi
    correlation.SCD,
    *vif.METRICS,              # vif
    edges.QABF,
    *structural.METRICS,       # ssim
    *fidelity.METRICS,         # psnr
    correlation.CC,
    edges.NABF,
    # added with the vifb profile (VIFB's metrics fusekit lacked)
    information.CE,
    intensity.EI,
    fidelity.RMSE,
    *perceptual.METRICS,       # qcb, qcv
    *normalized.METRICS,       # nmi, te, qncie
    structural.QY,
    *multiscale.METRICS,       # ms-ssim, mef-ssim
    *fmi.METRICS,              # fmi-pixel, fmi-w, fmi-dct
)

#: Names of :data:`BUILTIN_METRICS`, in order.
BUILTIN_ORDER: tuple[str, ...] = tuple(m.name for m in BUILTIN_METRICS)
