"""FMI (fast feature mutual information): hand-checkable cases and a loop transcription of fmi.m's steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusekit.errors import InputError
from fusekit.metrics import compute
from fusekit.metrics.fmi import feature_image, feature_mutual_information

KEYS = ("fmi-pixel", "fmi-w", "fmi-dct")
FEATURE = {"fmi-pixel": "pixel", "fmi-w": "wavelet", "fmi-dct": "dct"}


def _pair_slow(sSub, fSub, w):
    l = w * w
    if np.array_equal(sSub, fSub):
        return 1.0, fSub
    def scale(x):
        mx, mn = x.max(), x.min()
        return np.ones((w, w)) if mx == mn else (x - mn) / (mx - mn)
    sSub = scale(sSub); fSub = scale(fSub)
    sP = sSub.flatten(order="F") / sSub.sum(); fP = fSub.flatten(order="F") / fSub.sum()
    sC = [0.0] * l; fC = [0.0] * l
    sC[0] = sP[0]; fC[0] = fP[0]
    for i in range(1, l):
        sC[i] = sP[i] + sC[i - 1]; fC[i] = fP[i] + fC[i - 1]
    st = sP - sP.mean(); ft = fP - fP.mean()
    num = float(np.sum(st * ft))
    c = 0.0 if num == 0 else num / math.sqrt(np.sum(st * st) * np.sum(ft * ft))
    es = e2s = ef = e2f = 0.0
    for i in range(1, l + 1):
        es += i * sP[i - 1]; e2s += i * i * sP[i - 1]; ef += i * fP[i - 1]; e2f += i * i * fP[i - 1]
    sSd = math.sqrt(max(e2s - es * es, 0)); fSd = math.sqrt(max(e2f - ef * ef, 0))
    if c >= 0:
        B = lambda x, y: min(x, y)
        if c == 0 or sSd == 0 or fSd == 0:
            k = 0.0
        else:
            cov = sum(B(fC[i], sC[j]) - fC[i] * sC[j] for i in range(l) for j in range(l))
            k = c / (cov / (fSd * sSd))
    else:
        B = lambda x, y: max(x + y - 1, 0.0)
        if sSd == 0 or fSd == 0:
            k = 0.0
        else:
            cov = sum(B(fC[i], sC[j]) - fC[i] * sC[j] for i in range(l) for j in range(l))
            k = c / (cov / (fSd * sSd))
    Bf = lambda i, j: 0.0 if i < 0 or j < 0 else B(fC[i], sC[j])
    J = 0.0
    for i in range(l):
        for j in range(l):
            m = Bf(i, j) - Bf(i - 1, j) - Bf(i, j - 1) + Bf(i - 1, j - 1)
            p = k * m + (1 - k) * fP[i] * sP[j]
            if p != 0:
                J += -p * math.log2(abs(p))
    Hs = -sum(v * math.log2(v) for v in sP if v != 0)
    Hf = -sum(v * math.log2(v) for v in fP if v != 0)
    mi = Hs + Hf - J
    return (0.0 if mi == 0 else 2 * mi / (Hs + Hf)), fSub

def fmi_slow(fa, fb, ff, w=3, script_order=False):
    m, n = fa.shape
    h = w // 2
    vals = []
    for p in range(h, m - h):
        for q in range(h, n - h):
            a = fa[p-h:p+h+1, q-h:q+h+1]; b = fb[p-h:p+h+1, q-h:q+h+1]; f = ff[p-h:p+h+1, q-h:q+h+1]
            va, f2 = _pair_slow(a, f, w)
            vb, _ = _pair_slow(b, f2 if script_order else f, w)
            vals.append((va + vb) / 2)
    return float(np.mean(vals))


@pytest.fixture(scope="module")
def triplet():
    """Small images with the cases fmi.m branches on: windows equal to a source, flat windows."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:14, 0:13]
    a = np.round(np.clip(110 + 70 * np.sin(x / 2.0) + rng.normal(0, 9, x.shape), 0, 255))
    b = np.round(np.clip(90 + 80 * np.cos(y / 3.0) + rng.normal(0, 9, x.shape), 0, 255))
    f = np.round(0.6 * a + 0.4 * b)
    f[:4, :4] = b[:4, :4]                           # B equals F, A does not
    a[5:9, 5:9] = f[5:9, 5:9] = 40                  # flat and equal in A and F
    b[0:4, 8:12] = f[0:4, 8:12] = 7                 # flat and equal in B and F
    f[10:, :5] = a[10:, :5]                         # A equals F
    return a, b, f


@pytest.mark.parametrize("key", KEYS)
def test_matches_loop_transcription(triplet, key):
    a, b, f = triplet
    fa, fb, ff = (feature_image(t, FEATURE[key]) for t in (a, b, f))
    got = compute(f.astype(np.uint8), [a.astype(np.uint8), b.astype(np.uint8)], metrics=key)[key]
    assert float(got) == pytest.approx(fmi_slow(fa, fb, ff), rel=1e-12, abs=1e-14)


def test_script_order_reproduces_fmi_m_and_is_asymmetric(triplet):
    a, b, f = triplet
    ff, fa, fb = f, a, b
    want = fmi_slow(fa, fb, ff, script_order=True)
    assert feature_mutual_information(f, [a, b], script_order=True) == pytest.approx(want, rel=1e-12)
    # fmi.m's B-after-A comparison scores the flat window where B equals F as 0, not 1
    assert want < fmi_slow(fa, fb, ff)
    assert feature_mutual_information(f, [b, a], script_order=True) == pytest.approx(
        fmi_slow(fb, fa, ff, script_order=True), rel=1e-12)


@pytest.mark.parametrize("key", KEYS)
def test_identical_images_give_the_maximum(key):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 24)).astype(np.uint8)
    assert float(compute(a, [a, a], metrics=key)[key]) == 1.0


@pytest.mark.parametrize("key", KEYS)
def test_symmetric_in_sources_and_scale_free(triplet, key):
    a, b, f = (t.astype(np.uint8) for t in triplet)
    ab = float(compute(f, [a, b], metrics=key)[key])
    ba = float(compute(f, [b, a], metrics=key)[key])
    assert ab == pytest.approx(ba, rel=1e-13)
    assert 0.0 <= ab <= 1.0


def test_independent_images_score_far_below_dependent_ones():
    rng = np.random.default_rng(5)
    a, b, f = (rng.integers(0, 256, (60, 60)).astype(np.uint8) for _ in range(3))
    independent = float(compute(f, [a, b], metrics="fmi-pixel")["fmi-pixel"])
    mixed = float(compute(((a.astype(int) + b) // 2).astype(np.uint8), [a, b], metrics="fmi-pixel")["fmi-pixel"])
    # the 9-pixel windows' estimate has a floor near 0.1 for independent noise, not 0
    assert independent < 0.15 < 0.3 < mixed


def test_flat_windows_unequal_count_zero():
    """A flat source window against a different flat fused window: no information (c = 0, phi = 0)."""
    a = np.full((5, 5), 10.0)
    f = np.full((5, 5), 200.0)
    assert feature_mutual_information(f, [a, a]) == pytest.approx(0.0, abs=1e-14)


def test_hand_computed_window():
    """One 3x3 window: F's scaled window is a permutation-free rescaling of A's, so FMI(A, F) = 1."""
    a = np.arange(9, dtype=float).reshape(3, 3)
    f = 2 * a + 10                                  # same scaled window, different raw values
    # identical distributions, c = 1, phi = 1: the joint is the diagonal, I = H, FMI = 2H/2H
    assert feature_mutual_information(f, [a]) == pytest.approx(1.0, rel=1e-12)
    assert fmi_slow(a, a, f) == pytest.approx(1.0, rel=1e-12)
    h = -sum(p * math.log2(p) for p in np.arange(9)[1:] / 36)
    assert h > 0


def test_dct_feature_is_orthonormal_dct2():
    x = np.arange(12, dtype=float).reshape(3, 4)
    d = feature_image(x, "dct")
    assert d[0, 0] == pytest.approx(x.sum() / math.sqrt(12))   # DC term of MATLAB's dct2
    assert (d ** 2).sum() == pytest.approx((x ** 2).sum())


def test_wavelet_feature_layout():
    x = np.random.default_rng(0).random((20, 22)) * 255
    w = feature_image(x, "wavelet")
    assert w.min() == 0.0 and w.max() == 1.0
    assert w.shape == (2 * ((20 + 61) // 2), 2 * ((22 + 61) // 2))   # pywt dmey: 62 taps, symmetric


def test_on_request_and_too_small():
    from fusekit.metrics import resolve_metrics

    assert not any(m.name.startswith("fmi") for m in resolve_metrics(None))
    with pytest.raises(InputError):
        compute(np.zeros((2, 2), np.uint8), [np.zeros((2, 2), np.uint8)] * 2, metrics="fmi-pixel")


def test_vifb_does_not_define_fmi():
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(InputError, match="profiles that define it: standard"):
        compute(a, [a, a], metrics="fmi-pixel", profile="vifb")
