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
0), mirrored borders, float64. ``cddfuse`` follows the script that nearly
all Python evaluation code shares: zero-padded borders, ``G = g_F`` (not 1)
where ``g_A == g_F``, ``alpha = pi/2`` wherever ``gx = 0``, and float32
arithmetic after the (exact) Sobel responses, as in the script.

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

from types import ModuleType

import numpy as np

from ..errors import InputError
from . import compiled
from .base import Metric, MetricContext
from .filters import sobel


def _edges(ctx: MetricContext, index: int, mode: str, quirks: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cached ``(g^2, g, alpha)`` of image ``index`` (0 = fused).

    ``alpha = arctan(gy / gx)``; where ``gx == 0`` it is ``pi/2`` with
    ``quirks`` (the script), else ``sign(gy) pi/2`` (0 where ``gy`` is 0 too).
    """
    def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kernels = compiled.kernels()
        if kernels is not None and mode == "mirror" and not quirks:
            return kernels.edges_standard(ctx.images[index])
        gx, gy = sobel(ctx.images[index], mode)
        g2 = gx * gx
        g2 += gy * gy
        zero = gx == 0
        if quirks:  # the script works in float32 from here on (its Sobel output is exact)
            gx, gy = gx.astype(np.float32), gy.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.arctan(gy / gx)
        np.copyto(alpha, (np.pi / 2) if quirks else np.sign(gy) * (np.pi / 2), where=zero)
        return g2, np.sqrt(g2.astype(alpha.dtype)), alpha

    return ctx.cached_image(index, ("edges", mode, quirks), make)


def _check_two(ctx: MetricContext, name: str) -> None:
    if len(ctx.sources) != 2:
        raise InputError(f"{name} is defined for 2 sources, got {len(ctx.sources)}; "
                         "drop it from the metric list for this data")


def _relative_strength(gs: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """``min(g_S, g_F) / max(g_S, g_F)``; NaN where both are 0 (callers fix that)."""
    hi = np.maximum(gs, gf)
    lo = np.minimum(gs, gf)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo /= hi
    return lo


def _sigmoid(x: np.ndarray, scale: float, k: float, centre: float) -> np.ndarray:
    """``scale / (1 + exp(-k (x - centre)))``, overwriting ``x``."""
    x -= centre
    x *= -k
    np.exp(x, out=x)
    x += 1.0
    np.divide(scale, x, out=x)
    return x


def _qabf_source(ctx: MetricContext, s: int, mode: str, quirks: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(Q^{SF}, g_S)`` for source index ``s`` (1-based in ``ctx.images``)."""
    f2, gf, af = _edges(ctx, 0, mode, quirks)
    s2, gs, as_ = _edges(ctx, s, mode, quirks)
    ratio = _relative_strength(gs, gf)
    # where the strengths are equal: 1 (paper) or g_F (script); exact test on g^2
    np.copyto(ratio, gf if quirks else 1.0, where=s2 == f2)
    orient = np.subtract(as_, af)
    np.abs(orient, out=orient)
    orient *= -2.0 / np.pi
    orient += 1.0
    q = _sigmoid(ratio, 0.9994, 15.0, 0.5)
    q *= _sigmoid(orient, 0.9879, 22.0, 0.8)
    return q, gs


def qabf(ctx: MetricContext) -> float:
    """Q^{AB/F} in [0, 1] (see module docstring for the profile differences)."""
    _check_two(ctx, "qabf")
    quirks = ctx.profile.qabf_variant == "script"
    kernels = compiled.kernels()
    if kernels is not None:
        return _qabf_compiled(ctx, kernels, quirks)
    mode = "constant" if quirks else "mirror"
    qa, ga = _qabf_source(ctx, 1, mode, quirks)
    qb, gb = _qabf_source(ctx, 2, mode, quirks)
    den = float(ga.sum(dtype=np.float64) + gb.sum(dtype=np.float64))
    if den == 0.0:
        return 0.0  # no edges in either source: nothing to preserve, nothing preserved
    qa *= ga
    qb *= gb
    return float((qa.sum(dtype=np.float64) + qb.sum(dtype=np.float64)) / den)


def _qabf_compiled(ctx: MetricContext, kernels: ModuleType, quirks: bool) -> float:
    """Q^{AB/F} with the numba kernels: the same steps, one pass per image and source.

    ``cddfuse`` keeps the script's float32 arithmetic (numpy's float32 exp
    between two kernels, as in the script); ``standard`` runs in float64.
    """
    def edges(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not quirks:
            return _edges(ctx, index, "mirror", False)
        return ctx.cached_image(index, "edges-cddfuse", lambda: kernels.edges_cddfuse(ctx.images[index]))

    fused = edges(0)
    num = den = 0.0
    for s in (1, 2):
        source = edges(s)
        if quirks:
            strength, orientation = kernels.qabf_exponents(*source, *fused)
            np.exp(strength, out=strength)
            np.exp(orientation, out=orientation)
            part_num, part_den = kernels.qabf_sums(strength, orientation, source[1])
        else:
            part_num, part_den = kernels.qabf_standard(*source, *fused)
        num += part_num
        den += part_den
    return 0.0 if den == 0.0 else num / den


def _nabf_weight(g: np.ndarray) -> tuple[np.ndarray, float]:
    """Kumar's edge weight ``w = (g/8)^1.5`` where ``g/8 >= 2``, else 0.001, and its sum."""
    g8 = g / 8.0
    w = np.where(g8 >= 2.0, g8 * np.sqrt(g8), 0.001)
    return w, float(w.sum())


def nabf(ctx: MetricContext) -> float:
    """Modified N^{AB/F} (Shreyamsha Kumar 2013) in [0, 1]; lower is better."""
    _check_two(ctx, "nabf")
    # Kumar's Sobel kernels are divided by 8: strengths scale, ratios and angles do not
    mode = "mirror"
    _, gf, af = _edges(ctx, 0, mode, False)
    kernels = compiled.kernels()
    if kernels is not None:  # one pass, no temporary maps
        parts = []
        for s in (1, 2):
            _, gs, as_ = _edges(ctx, s, mode, False)
            w, w_sum = ctx.cached_image(s, "nabf-weight", lambda: _nabf_weight(gs))
            parts.append((gs, as_, w, w_sum))
        (ga, aa, wa, sa), (gb, ab, wb, sb) = parts
        return kernels.nabf_numerator(ga, aa, wa, gb, ab, wb, gf, af) / (sa + sb)
    artefact = np.ones(gf.shape, dtype=bool)
    den = 0.0
    terms = []
    for s in (1, 2):
        _, gs, as_ = _edges(ctx, s, mode, False)
        artefact &= gf > gs
        ratio = _relative_strength(gs, gf)
        np.copyto(ratio, 0.0, where=(gs == 0) | (gf == 0))
        orient = np.subtract(as_, af)
        np.abs(orient, out=orient)
        orient -= np.pi / 2
        np.abs(orient, out=orient)
        orient *= 2.0 / np.pi
        q = _sigmoid(ratio, 0.9999, 19.0, 0.5)
        q *= _sigmoid(orient, 0.9995, 22.0, 0.5)
        np.sqrt(q, out=q)
        w, w_sum = ctx.cached_image(s, "nabf-weight", lambda: _nabf_weight(gs))
        den += w_sum
        np.subtract(1.0, q, out=q)
        q *= w
        terms.append(q)
    num = float(np.sum(terms[0] + terms[1], where=artefact))
    return num / den


QABF = Metric("qabf", "edge information preserved (Q^{AB/F})", "", True, True,
              "Xydeas & Petrovic, Electronics Letters 2000", qabf,
              description="gradient-weighted edge preservation of A and B in F",
              sources=(2,), label="Qabf")
NABF = Metric("nabf", "fusion artefacts (modified N^{AB/F})", "", False, True,
              "Shreyamsha Kumar, Signal Image Video Process. 2013", nabf,
              description="edges in F stronger than in both sources, weighted",
              sources=(2,), label="Nabf")

METRICS = (QABF, NABF)
