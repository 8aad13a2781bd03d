"""numba kernels behind :mod:`fusekit.metrics.compiled` (imported only when numba is present).

The float32 kernels (SSIM, Q^{AB/F}) keep the operation order and dtypes of
the numpy/scipy code they replace, so that they agree bit for bit (SSIM) or
up to the order of the final float64 sums (Q^{AB/F}). The float64 kernels
(Gaussian filtering, VIF's terms) add the same terms in another order and
agree to rounding (about 1e-12 relative on a metric). ``fastmath`` stays
off: no reassociation and no fused multiply-adds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``error_model="numpy"``: IEEE division (inf/nan, no Python ZeroDivisionError check), which vectorises.
_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_OPTIONS)
def _mirror(i: int, n: int) -> int:
    """Index ``i`` folded into ``[0, n)`` as ``scipy.ndimage``'s ``"reflect"`` mode does (edge repeated)."""
    m = i % (2 * n)
    return m if m < n else 2 * n - 1 - m


@njit(**_OPTIONS)
def _row_values(x: np.ndarray, y: np.ndarray, i: int, mode: int, out: np.ndarray) -> None:
    """``out[j] = p[i, j]`` in float64, with ``p`` = ``x``, ``x * x`` or ``x * y`` (float32 products)."""
    w = x.shape[1]
    if mode == 0:
        for j in range(w):
            out[j] = x[i, j]
    elif mode == 1:
        for j in range(w):
            out[j] = x[i, j] * x[i, j]
    else:
        for j in range(w):
            out[j] = x[i, j] * y[i, j]


@njit(**_OPTIONS)
def box_mean(x: np.ndarray, y: np.ndarray, k: int, mode: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter(p, k)`` of the float32 image ``p``, for integer-valued ``p``.

    ``p`` is ``x`` (mode 0), ``x * x`` (mode 1) or ``x * y`` (mode 2), each
    product in float32 as numpy forms it. scipy filters along axis 0, rounds
    to float32, then filters along axis 1, each pass as a float64 running
    sum divided by ``k``. For integer ``p`` of magnitude at most 2^20 both
    sums are exact in float64 (the second sums float32 values of ``n / k``,
    which are multiples of 2^-26 below 2^23), so a direct window sum gives
    the very same float64 quotient, and the same float32 result, in any
    order: here column sums updated row by row, then ``k``-term row sums,
    each loop running along a row so that it vectorises.
    """
    h, w = x.shape
    r = k // 2
    size = np.float64(k)
    out = np.empty((h, w), np.float32)
    col = np.zeros(w)                      # exact column sums of the current window
    mid = np.empty(w + 2 * r)              # one row of the first pass, mirrored at both ends
    acc = np.empty(w)
    incoming = np.empty(w)
    outgoing = np.empty(w)
    for t in range(-r, r + 1):
        _row_values(x, y, _mirror(t, h), mode, incoming)
        for j in range(w):
            col[j] += incoming[j]
    for i in range(h):
        if i > 0:
            _row_values(x, y, _mirror(i + r, h), mode, incoming)
            _row_values(x, y, _mirror(i - r - 1, h), mode, outgoing)
            for j in range(w):
                col[j] += incoming[j] - outgoing[j]
        for j in range(w):
            mid[r + j] = np.float32(col[j] / size)
        for t in range(r):
            mid[r - 1 - t] = mid[r + _mirror(-1 - t, w)]
            mid[r + w + t] = mid[r + _mirror(w + t, w)]
        for j in range(w):
            acc[j] = mid[j]
        for t in range(1, k):
            for j in range(w):
                acc[j] += mid[j + t]
        for j in range(w):
            out[i, j] = np.float32(acc[j] / size)
    return out


@njit(**_OPTIONS)
def ssim_variance(u: np.ndarray, uu: np.ndarray, cov_norm: np.float32) -> np.ndarray:
    """Local variance ``cov_norm * (U(x^2) - u^2)`` in float32 from two :func:`box_mean` maps, as
    scikit-image forms it. Kept apart from :func:`box_mean` (not calling it): numba then compiles
    the window sum once, not once more inside every caller (about 1.8 s less on a first run)."""
    h, w = u.shape
    var = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            var[i, j] = cov_norm * (uu[i, j] - u[i, j] * u[i, j])
    return var


@njit(**_OPTIONS)
def ssim_map(uxy: np.ndarray, ux: np.ndarray, vx: np.ndarray, uy: np.ndarray, vy: np.ndarray,
             cov_norm: np.float32, c1: np.float32, c2: np.float32) -> np.ndarray:
    """scikit-image's float32 SSIM map of ``x`` and ``y`` from their local statistics and the
    :func:`box_mean` ``uxy`` of ``x * y``, in one pass."""
    h, w = ux.shape
    two = np.float32(2.0)
    out = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            a = ux[i, j]
            b = uy[i, j]
            vxy = cov_norm * (uxy[i, j] - a * b)
            a1 = two * a * b + c1
            a2 = two * vxy + c2
            b1 = a * a + b * b + c1
            b2 = vx[i, j] + vy[i, j] + c2
            out[i, j] = (a1 * a2) / (b1 * b2)
    return out


@njit(**_OPTIONS)
def filter_valid(image: np.ndarray, kernel: np.ndarray, step: int) -> np.ndarray:
    """Separable 'valid' correlation of each ``(h, w)`` slice of ``image`` with ``outer(kernel, kernel)``.

    ``image`` is ``(n, h, w)`` float64; the result is
    ``(n, (h - k) // step + 1, (w - k) // step + 1)``, keeping every
    ``step``-th output. Each output row is the kernel-weighted sum of ``k``
    input rows (a vectorised loop along the row), then the same along the
    row; values agree with any other order of the same sums to rounding.
    """
    n, h, w = image.shape
    k = kernel.shape[0]
    rows = (h - k) // step + 1
    cols = (w - k) // step + 1
    out = np.empty((n, rows, cols))
    half = np.empty(w)
    for m in range(n):
        for i in range(rows):
            top = i * step
            c = kernel[0]
            src = image[m, top]
            for j in range(w):
                half[j] = c * src[j]
            for t in range(1, k):
                c = kernel[t]
                src = image[m, top + t]
                for j in range(w):
                    half[j] += c * src[j]
            c = kernel[0]
            dst = out[m, i]
            if step == 1:  # separate loops: a known unit stride vectorises
                for j in range(cols):
                    dst[j] = c * half[j]
                for t in range(1, k):
                    c = kernel[t]
                    shifted = half[t:]
                    for j in range(cols):
                        dst[j] += c * shifted[j]
            else:
                for j in range(cols):
                    dst[j] = c * half[step * j]
                for t in range(1, k):
                    c = kernel[t]
                    shifted = half[t:]
                    for j in range(cols):
                        dst[j] += c * shifted[step * j]
    return out


#: A running product of VIF terms (each >= 1, about 1e4 at most on 0-255 data) is logged and
#: restarted above this; a term above _TERM_LIMIT is logged on its own, so nothing can overflow.
_PRODUCT_LIMIT = 1e280
_TERM_LIMIT = 1e20


@njit(**_OPTIONS)
def _log_accumulate(term: float, product: float, total: float) -> tuple[float, float]:
    """Fold ``log(term)`` into ``(product, total)``: ``total + log(product)`` is the running sum of logs."""
    if term > _TERM_LIMIT:
        return product, total + np.log(term)
    product *= term
    if product > _PRODUCT_LIMIT:
        return 1.0, total + np.log(product)
    return product, total


@njit(**_OPTIONS)
def vif_denominator(sigma_sq: np.ndarray, sigma_nsq: float) -> float:
    """``sum(log(1 + sigma_sq / sigma_nsq))``, as logs of running products (one log per ~80 pixels)."""
    h, w = sigma_sq.shape
    scale = 1.0 / sigma_nsq
    total = 0.0
    product = 1.0
    for i in range(h):
        for j in range(w):
            product, total = _log_accumulate(sigma_sq[i, j] * scale + 1.0, product, total)
    return total + np.log(product)


@njit(**_OPTIONS)
def vif_numerator(mu1: np.ndarray, sigma1_sq: np.ndarray, mu2: np.ndarray, mean_sq2: np.ndarray,
                  mean12: np.ndarray, sigma_nsq: float, eps: float) -> float:
    """VIFp's numerator sum at one scale, pixel by pixel, without temporary maps.

    ``sigma1_sq`` is the source's local variance with flat pixels set to 0;
    ``mu2``, ``mean_sq2`` and ``mean12`` are the local means of F, F^2 and
    S F. Pixels where either image is flat (variance < ``eps``) or the gain
    is negative add ``log(1) = 0``, as in the script.
    """
    h, w = mu1.shape
    total = 0.0
    product = 1.0
    for i in range(h):
        for j in range(w):
            v1 = sigma1_sq[i, j]
            m2 = mu2[i, j]
            v2 = max(mean_sq2[i, j] - m2 * m2, 0.0)
            if v1 < eps or v2 < eps:
                continue
            cov = mean12[i, j] - mu1[i, j] * m2
            g = cov / (v1 + eps)
            if g < 0:
                continue
            sv = max(v2 - g * cov, eps)
            product, total = _log_accumulate(g * g * v1 / (sv + sigma_nsq) + 1.0, product, total)
    return total + np.log(product)


@njit(inline="always", **_OPTIONS)
def _sobel_at(above: np.ndarray, row: np.ndarray, below: np.ndarray, j: int) -> tuple[float, float]:
    """Sobel ``(gx, gy)`` at column ``j + 1`` of a padded row and its neighbours, as
    :func:`fusekit.metrics.filters.sobel` forms them (left minus right, below minus above)."""
    gx = 2.0 * (row[j] - row[j + 2]) + (above[j] - above[j + 2]) + (below[j] - below[j + 2])
    gy = 2.0 * (below[j + 1] - above[j + 1]) + (below[j] - above[j]) + (below[j + 2] - above[j + 2])
    return gx, gy


@njit(**_OPTIONS)
def edges_cddfuse(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sobel ``(g^2, g, alpha)`` in float32 as the script forms them (zero-padded borders).

    ``image`` is float64 with integer values, so the Sobel responses are
    exact; ``g = sqrt(g^2)`` and ``alpha = arctan(gy / gx)`` (``pi/2`` where
    ``gx == 0``) are float32 operations, as in the script (``arctan`` is the
    C library's ``atanf``, as numpy's float32 ``arctan`` is on x86-64
    without AVX-512).
    """
    h, w = image.shape
    p = np.zeros((h + 2, w + 2))
    for i in range(h):            # a loop, not a slice assignment: that takes numba ~2.5 s to compile
        for j in range(w):
            p[i + 1, j + 1] = image[i, j]
    g2 = np.empty((h, w), np.float32)
    g = np.empty((h, w), np.float32)
    alpha = np.empty((h, w), np.float32)
    for i in range(h):            # vectorised: everything but the arctan
        above, row, below = p[i], p[i + 1], p[i + 2]
        for j in range(w):
            gx, gy = _sobel_at(above, row, below, j)
            s = np.float32(gx * gx + gy * gy)
            g2[i, j] = s
            g[i, j] = np.sqrt(s)
            alpha[i, j] = np.float32(gy) / np.float32(gx)   # +-inf or nan exactly where gx == 0
    half_pi = np.float32(np.pi / 2)
    for i in range(h):
        for j in range(w):
            t = alpha[i, j]
            alpha[i, j] = np.arctan(t) if np.isfinite(t) else half_pi
    return g2, g, alpha


@njit(**_OPTIONS)
def qabf_exponents(g2s: np.ndarray, gs: np.ndarray, alpha_s: np.ndarray, g2f: np.ndarray, gf: np.ndarray,
                   alpha_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two sigmoid exponents of Q^{SF}, ``-15 (G - 0.5)`` and ``-22 (A - 0.8)``, in float32.

    ``G = min(g_S, g_F) / max(g_S, g_F)``, or ``g_F`` where the strengths are
    equal (the script's quirk); ``A = 1 - |alpha_S - alpha_F| 2 / pi``.
    """
    h, w = gs.shape
    f32 = np.float32
    one = f32(1.0)
    orient_scale = f32(-2.0 / np.pi)
    strength = np.empty((h, w), np.float32)
    orientation = np.empty((h, w), np.float32)
    for i in range(h):
        for j in range(w):
            a = gs[i, j]
            b = gf[i, j]
            ratio = b if g2s[i, j] == g2f[i, j] else min(a, b) / max(a, b)
            strength[i, j] = (ratio - f32(0.5)) * f32(-15.0)
            orient = abs(alpha_s[i, j] - alpha_f[i, j]) * orient_scale + one
            orientation[i, j] = (orient - f32(0.8)) * f32(-22.0)
    return strength, orientation


@njit(**_OPTIONS)
def qabf_sums(exp_strength: np.ndarray, exp_orientation: np.ndarray, gs: np.ndarray) -> tuple[float, float]:
    """``(sum(Q^{SF} g_S), sum(g_S))`` from the exponentials of :func:`qabf_exponents`' output.

    ``Q = 0.9994 / (1 + e_G) * 0.9879 / (1 + e_A)`` in float32; the sums in float64.
    """
    h, w = gs.shape
    f32 = np.float32
    one = f32(1.0)
    num = 0.0
    den = 0.0
    for i in range(h):
        for j in range(w):
            q = f32(0.9994) / (exp_strength[i, j] + one) * (f32(0.9879) / (exp_orientation[i, j] + one))
            num += np.float64(q * gs[i, j])
            den += np.float64(gs[i, j])
    return num, den


@njit(**_OPTIONS)
def vif_source_terms(mu: np.ndarray, mean_sq: np.ndarray, sigma_nsq: float, eps: float
                     ) -> tuple[np.ndarray, int, float]:
    """A source's local variance (``max(E[x^2] - mu^2, 0)``, set to 0 below ``eps``), its number of
    such flat pixels, and the VIFp denominator ``sum(log(1 + variance / sigma_nsq))``."""
    h, w = mu.shape
    variance = np.empty((h, w))
    flat = 0
    for i in range(h):
        for j in range(w):
            v = max(mean_sq[i, j] - mu[i, j] * mu[i, j], 0.0)
            if v < eps:
                v = 0.0
                flat += 1
            variance[i, j] = v
    return variance, flat, vif_denominator(variance, sigma_nsq)


@njit(**_OPTIONS)
def edges_standard(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sobel ``(g^2, g, alpha)`` in float64 with mirrored borders (the ``standard`` profile).

    ``alpha = arctan(gy / gx)``, and ``sign(gy) pi / 2`` where ``gx == 0``
    (0 where ``gy`` is 0 too), as :func:`fusekit.metrics.edges._edges`.
    """
    h, w = image.shape
    p = np.empty((h + 2, w + 2))
    for i in range(h + 2):
        src = image[_mirror_edge(i - 1, h)]
        for j in range(w + 2):
            p[i, j] = src[_mirror_edge(j - 1, w)]
    g2 = np.empty((h, w))
    g = np.empty((h, w))
    alpha = np.empty((h, w))
    for i in range(h):
        above, row, below = p[i], p[i + 1], p[i + 2]
        for j in range(w):
            gx, gy = _sobel_at(above, row, below, j)
            s = gx * gx + gy * gy
            g2[i, j] = s
            g[i, j] = np.sqrt(s)
            alpha[i, j] = gy / gx                          # +-inf or nan exactly where gx == 0
    half_pi = np.pi / 2
    for i in range(h):
        for j in range(w):
            t = alpha[i, j]
            if np.isfinite(t):
                alpha[i, j] = np.arctan(t)
            else:
                alpha[i, j] = half_pi if t > 0 else (-half_pi if t < 0 else 0.0)
    return g2, g, alpha


@njit(**_OPTIONS)
def _mirror_edge(i: int, n: int) -> int:
    """Index ``i`` in ``[-1, n]`` reflected without repeating the edge pixel (numpy's ``"reflect"``)."""
    if i < 0:
        return -i if n > 1 else 0
    if i >= n:
        return 2 * n - 2 - i if n > 1 else 0
    return i


@njit(**_OPTIONS)
def _sigmoid(x: float, scale: float, k: float, centre: float) -> float:
    return scale / (np.exp((x - centre) * -k) + 1.0)


@njit(**_OPTIONS)
def qabf_standard(g2s: np.ndarray, gs: np.ndarray, alpha_s: np.ndarray, g2f: np.ndarray, gf: np.ndarray,
                  alpha_f: np.ndarray) -> tuple[float, float]:
    """``(sum(Q^{SF} g_S), sum(g_S))`` in float64 as printed by Xydeas & Petrovic (``G = 1`` at equal strengths)."""
    h, w = gs.shape
    num = 0.0
    den = 0.0
    for i in range(h):
        for j in range(w):
            a = gs[i, j]
            b = gf[i, j]
            ratio = 1.0 if g2s[i, j] == g2f[i, j] else min(a, b) / max(a, b)
            orient = abs(alpha_s[i, j] - alpha_f[i, j]) * (-2.0 / np.pi) + 1.0
            q = _sigmoid(ratio, 0.9994, 15.0, 0.5) * _sigmoid(orient, 0.9879, 22.0, 0.8)
            num += q * a
            den += a
    return num, den


@njit(**_OPTIONS)
def nabf_numerator(ga: np.ndarray, alpha_a: np.ndarray, wa: np.ndarray, gb: np.ndarray, alpha_b: np.ndarray,
                   wb: np.ndarray, gf: np.ndarray, alpha_f: np.ndarray) -> float:
    """Kumar's N^{AB/F} numerator: ``sum over F's artefact pixels of (1 - Q^{AF}) w_A + (1 - Q^{BF}) w_B``."""
    h, w = gf.shape
    num = 0.0
    for i in range(h):
        for j in range(w):
            f = gf[i, j]
            if not (f > ga[i, j] and f > gb[i, j]):
                continue
            total = 0.0
            for s in range(2):
                g = ga[i, j] if s == 0 else gb[i, j]
                alpha = alpha_a[i, j] if s == 0 else alpha_b[i, j]
                weight = wa[i, j] if s == 0 else wb[i, j]
                ratio = 0.0 if (g == 0.0 or f == 0.0) else min(g, f) / max(g, f)
                orient = abs(abs(alpha - alpha_f[i, j]) - np.pi / 2) * (2.0 / np.pi)
                q = np.sqrt(_sigmoid(ratio, 0.9999, 19.0, 0.5) * _sigmoid(orient, 0.9995, 22.0, 0.5))
                total += (1.0 - q) * weight
            num += total
    return num


@njit(**_OPTIONS)
def ssim_standard_mean(mu_s: np.ndarray, var_s: np.ndarray, mu_f: np.ndarray, mean_ff: np.ndarray,
                       mean_sf: np.ndarray, c1: float, c2: float) -> float:
    """Mean of Wang et al.'s SSIM map (float64) from the local statistics of a source and the fused image."""
    h, w = mu_s.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            ms = mu_s[i, j]
            mf = mu_f[i, j]
            var_f = mean_ff[i, j] - mf * mf
            cov = mean_sf[i, j] - ms * mf
            num = (2.0 * ms * mf + c1) * (2.0 * cov + c2)
            den = (ms * ms + mf * mf + c1) * (var_s[i, j] + var_f + c2)
            total += num / den
    return total / (h * w)
