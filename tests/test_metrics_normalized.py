"""NMI, Tsallis entropy, Q_NCIE and Q_Y: hand-checked cases and transcriptions of Liu's MATLAB code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import correlate2d

from fusekit.metrics import compute, list_metrics
from fusekit.metrics.perceptual import stretch_255


@pytest.fixture(scope="module")
def triplet():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:40, 0:36]
    a = 110 + 70 * np.sin(x / 3.0) + rng.normal(0, 8, x.shape)
    b = 90 + 80 * np.cos(y / 5.0) + rng.normal(0, 8, x.shape)
    f = 0.6 * a + 0.4 * b
    return [np.clip(np.round(t), 0, 255) for t in (a, b, f)]


def _hist(x, y):
    """Liu's loop: h(im1 + 1, im2 + 1) += 1, then divided by the total."""
    h = np.zeros((256, 256))
    for i, j in zip(x.astype(int).ravel(), y.astype(int).ravel()):
        h[i, j] += 1
    return h / h.sum()


def _ent(p):
    return -sum(v * math.log2(v) for v in p.ravel() if v > 0)


def _mutual_info(x, y):
    h = _hist(x, y)
    hx, hy = _ent(h.sum(axis=1)), _ent(h.sum(axis=0))
    return hx + hy - _ent(h), hx, hy


def test_nmi_te_qncie_match_transcriptions(triplet):
    a, b, f = (stretch_255(t) for t in triplet)
    v = compute(triplet[2], triplet[:2], metrics="nmi,te,qncie", data_range=255)
    # metricMI.m, case 1 (Hossny)
    (ia, ha, hfa), (ib, hb, hfb) = _mutual_info(a, f), _mutual_info(b, f)
    assert v["nmi"] == pytest.approx(2 * (ia / (ha + hfa) + ib / (hb + hfb)), rel=1e-12)

    # Cvejic's formula with q = 1.85, p(x, y) against p(x) p(y)
    def tsallis(x, y, q=1.85):
        h = _hist(x, y)
        px, py = h.sum(axis=1), h.sum(axis=0)
        total = sum(h[i, j] ** q / (px[i] * py[j]) ** (q - 1)
                    for i in range(256) for j in range(256) if px[i] * py[j] != 0)
        return (1 - total) / (1 - q)

    assert v["te"] == pytest.approx(tsallis(a, f) + tsallis(b, f), rel=1e-12)
    # metricWang.m with NCC.m
    ncc = [_mutual_info(x, y)[0] / 8 for x, y in ((a, b), (a, f), (b, f))]
    r = np.linalg.eigvals(np.array([[1, ncc[0], ncc[1]], [ncc[0], 1, ncc[2]], [ncc[1], ncc[2], 1]])).real
    assert v["qncie"] == pytest.approx(1 + np.sum(r / 3 * np.log2(r / 3)) / 8, rel=1e-12)


def test_information_metrics_by_hand():
    a = np.zeros((8, 8))
    a[:, 4:] = 255                                    # two equal halves: H = 1 bit
    v = compute(a, [a, a], metrics="nmi,te", data_range=255)
    assert v["nmi"] == pytest.approx(2.0, rel=1e-12)  # F = A = B
    q = 1.85                                          # sum = 2 * 0.5^q / 0.25^(q-1) = 2^(q-1)
    assert v["te"] == pytest.approx(2 * (1 - 2 ** (q - 1)) / (1 - q), rel=1e-12)
    flat = np.full((8, 8), 9.0)
    assert compute(flat, [flat, flat], metrics="nmi", data_range=255)["nmi"] == 0.0   # no information at all
    # Q_NCIE: all 256 levels equally often and F = A = B gives R = ones, eigenvalues (3, 0, 0)
    ramp = np.arange(256, dtype=float).reshape(16, 16)
    assert compute(ramp, [ramp, ramp], metrics="qncie", data_range=255)["qncie"] == pytest.approx(1.0, abs=1e-12)
    # unrelated images (4 levels, so the histogram estimate has little bias): R ~ identity
    rng = np.random.default_rng(0)
    x, y, z = (rng.integers(0, 4, (256, 256)) * 85.0 for _ in range(3))
    assert compute(z, [x, y], metrics="qncie", data_range=255)["qncie"] == pytest.approx(1 - math.log(3) / math.log(256),
                                                                          abs=1e-6)


def _ssim_yang(x, y):
    g = np.exp(-(np.arange(-3, 4) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def filt(t):
        return correlate2d(t, w, mode="valid")

    m1, m2 = filt(x), filt(y)
    s1, s2, s12 = filt(x * x) - m1 * m1, filt(y * y) - m2 * m2, filt(x * y) - m1 * m2
    c = 2e-16
    return ((2 * m1 * m2 + c) * (2 * s12 + c)) / ((m1 ** 2 + m2 ** 2 + c) * (s1 + s2 + c)), s1, s2


def test_qy_matches_a_transcription_of_metric_yang(triplet):
    a, b, f = triplet
    ab, va, vb = _ssim_yang(a, b)
    af, bf = _ssim_yang(a, f)[0], _ssim_yang(b, f)[0]
    lam = va / (va + vb)
    binary = ab >= 0.75
    expected = np.mean((lam * af + (1 - lam) * bf) * binary + np.maximum(af, bf) * ~binary)
    assert compute(f, [a, b], metrics="qy", data_range=255)["qy"] == pytest.approx(expected, rel=1e-9)
    assert compute(a, [a, a], metrics="qy", data_range=255)["qy"] == pytest.approx(1.0, rel=1e-9)


def test_metadata():
    metrics = {m.name: m for m in list_metrics()}
    for name in ("nmi", "te", "qncie", "qy"):
        m = metrics[name]
        assert m.higher_is_better and m.needs_sources and "Liu" in m.reference
