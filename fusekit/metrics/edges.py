"""Edge-based metrics: Q^{AB/F} (edge information preserved) and N^{AB/F} (artefacts).

Both compare Sobel edge strength ``g = sqrt(gx^2 + gy^2)`` and orientation
``alpha = arctan(gy / gx)`` of each source with the fused image, pixel by
pixel, and pass the relative strength and orientation through sigmoids. The
fused image's gradients are computed once and shared by both metrics.

Q^{AB/F} (Xydeas & Petrovic 2000), constants Tg = 0.9994, kg = -15,
Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8, weights ``w = g`` (L = 1)::

    G^{AF} = g_F / g_A if g_A > g_F else g_A / g_F
    A^{AF} = 1 - |alpha_A - alpha_F| / (pi / 2)
    Q^{AF} = Tg / (1 + exp(kg (G - Dg))) * Ta / (1 + exp(ka (A - Da)))
    Q^{AB/F} = sum(Q^{AF} w_A + Q^{BF} w_B) / sum(w_A + w_B)

``standard`` follows the paper: ``G = 1`` where the strengths are equal,
``alpha = +-pi/2`` by the sign of ``gy`` where ``gx = 0`` (0 where both are
0), mirrored borders. ``cddfuse`` follows the script that nearly all Python
evaluation code shares: zero-padded borders, ``G = g_F`` (not 1) where
``g_A == g_F``, and ``alpha = pi/2`` wherever ``gx = 0``.

N^{AB/F} is Shreyamsha Kumar's modified fusion-artefact measure (the same
in both profiles), with Petrovic's parameters Td = 2, wt_min = 0.001,
Lg = 1.5, Nrg = 0.9999, kg = 19, sigma_g = 0.5, Nra = 0.9995, ka = 22,
sigma_a = 0.5, Sobel kernels divided by 8 on mirrored borders::

    Q^{AF} = sqrt(Qg Qa),  AM = (g_F > g_A) & (g_F > g_B)
    N^{AB/F} = sum(AM ((1 - Q^{AF}) w_A + (1 - Q^{BF}) w_B)) / sum(w_A + w_B)

with ``w = g^Lg`` where ``g >= Td`` else ``wt_min``. 0 means no artefacts.

References
----------
C. S. Xydeas, V. Petrovic, "Objective image fusion performance measure",
Electronics Letters 36 (2000) 308-309.
B. K. Shreyamsha Kumar, "Multifocus and multispectral image fusion based on
pixel significance using discrete cosine harmonic wavelet transform",
Signal, Image and Video Processing 7 (2013) 1125-1143.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Metric, MetricContext
from .filters import sobel


def _gradients(ctx: MetricContext, index: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cached ``(gx, gy, g^2)`` of image ``index`` with the given border mode."""
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gx, gy = sobel(ctx.images[index], mode)
        return gx, gy, gx * gx + gy * gy

    return ctx.cached(("sobel", index, mode), make)


def _angle(gx: np.ndarray, gy: np.ndarray, zero_x: float | None) -> np.ndarray:
    """``arctan(gy / gx)``; where ``gx == 0``: ``zero_x`` if given, else ``+-pi/2`` (0 if gy == 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.arctan(gy / gx)
    if zero_x is not None:
        return np.where(gx == 0, zero_x, a)
    return np.where(gx == 0, np.sign(gy) * (np.pi / 2), a)


def _check_two(ctx: MetricContext, name: str) -> None:
    if len(ctx.sources) != 2:
        raise InputError(f"{name} is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")


def _qabf_pair(ctx: MetricContext, s: int, mode: str, quirks: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(Q^{SF}, g_S)`` for source index ``s`` (1-based in ``ctx.images``)."""
    fx, fy, f2 = _gradients(ctx, 0, mode)
    sx, sy, s2 = _gradients(ctx, s, mode)
    gf = ctx.cached(("g", 0, mode), lambda: np.sqrt(f2))
    gs = ctx.cached(("g", s, mode), lambda: np.sqrt(s2))
    zero_x = np.pi / 2 if quirks else None
    af = ctx.cached(("angle", 0, mode, quirks), lambda: _angle(fx, fy, zero_x))
    as_ = _angle(sx, sy, zero_x)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(s2 > f2, gf / gs, gs / gf)
    equal = s2 == f2  # exact: squared magnitudes of integer-valued inputs are exact
    ratio = np.where(equal, gf if quirks else 1.0, ratio)
    orient = 1.0 - np.abs(as_ - af) / (np.pi / 2)
    qg = 0.9994 / (1.0 + np.exp(-15.0 * (ratio - 0.5)))
    qa = 0.9879 / (1.0 + np.exp(-22.0 * (orient - 0.8)))
    return qg * qa, gs


def qabf(ctx: MetricContext) -> float:
    """Q^{AB/F} in [0, 1] (see module docstring for the profile differences)."""
    _check_two(ctx, "qabf")
    quirks = ctx.profile.name == "cddfuse"
    mode = "constant" if quirks else "mirror"
    qa, ga = _qabf_pair(ctx, 1, mode, quirks)
    qb, gb = _qabf_pair(ctx, 2, mode, quirks)
    den = float(np.sum(ga) + np.sum(gb))
    if den == 0.0:
        return 0.0  # no edges in either source: nothing to preserve, nothing preserved
    return float(np.sum(qa * ga + qb * gb) / den)


def nabf(ctx: MetricContext) -> float:
    """Modified N^{AB/F} (Shreyamsha Kumar 2013) in [0, 1]; lower is better."""
    _check_two(ctx, "nabf")
    mode = "mirror"
    fx, fy, f2 = _gradients(ctx, 0, mode)
    gf = ctx.cached(("g", 0, mode), lambda: np.sqrt(f2)) / 8.0
    af = _angle(fx, fy, None)
    af = np.where((fx == 0) & (fy == 0), 0.0, af)
    strengths, terms = [], []
    for s in (1, 2):
        sx, sy, s2 = _gradients(ctx, s, mode)
        gs = ctx.cached(("g", s, mode), lambda: np.sqrt(s2)) / 8.0
        as_ = np.where((sx == 0) & (sy == 0), 0.0, _angle(sx, sy, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(gs > gf, gf / gs, gs / gf)
        ratio = np.where((gs == 0) | (gf == 0), 0.0, ratio)
        orient = np.abs(np.abs(as_ - af) - np.pi / 2) * (2.0 / np.pi)
        qg = 0.9999 / (1.0 + np.exp(-19.0 * (ratio - 0.5)))
        qa = 0.9995 / (1.0 + np.exp(-22.0 * (orient - 0.5)))
        q = np.sqrt(qg * qa)
        w = np.where(gs >= 2.0, gs ** 1.5, 0.001)
        strengths.append(gs)
        terms.append(((1.0 - q) * w, w))
    artefact = (gf > strengths[0]) & (gf > strengths[1])
    den = float(terms[0][1].sum() + terms[1][1].sum())
    return float(np.sum(np.where(artefact, terms[0][0] + terms[1][0], 0.0)) / den)


QABF = Metric("qabf", "edge information preserved (Q^{AB/F})", "", True, True,
              "Xydeas & Petrovic, Electronics Letters 2000", qabf,
              description="gradient-weighted edge preservation of A and B in F",
              sources=(2,))
NABF = Metric("nabf", "fusion artefacts (modified N^{AB/F})", "", False, True,
              "Shreyamsha Kumar, Signal Image Video Process. 2013", nabf,
              description="edges in F stronger than in both sources, weighted",
              sources=(2,))

METRICS = (QABF, NABF)
