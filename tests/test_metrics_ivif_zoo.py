"""The ivif_zoo profile against transcriptions of IVIF_ZOO's Metric/ code (torch, float32, as it runs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from fusekit.errors import InputError
from fusekit.metrics import compute


@pytest.fixture(scope="module")
def triplet():
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:48, 0:52]
    ir = 120 + 90 * np.sin(x / 4.0) * np.cos(y / 6.0) + rng.normal(0, 6, x.shape)
    vi = 100 + 60 * np.cos((x + y) / 5.0) + rng.normal(0, 10, x.shape)
    f = 0.5 * ir + 0.5 * vi + 15 * np.sin(y / 2.0)
    return [np.clip(np.round(t), 0, 255).astype(np.uint8) for t in (ir, vi, f)]


def _t(a):
    return torch.tensor(a.astype(np.float32))


# -- transcriptions of the script's functions (float32 torch) --------------------------------------

def _ssim_script(x, y):
    X, Y = _t(x)[None, None] * 255.0, _t(y)[None, None] * 255.0   # to_tensor(float32) * 255
    g = torch.exp(-((torch.arange(11, dtype=torch.float32) - 5) ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum())[None, None]

    def filt(z):
        z = tf.conv2d(z, g.unsqueeze(2), padding=0)                  # along W... then H
        return tf.conv2d(z, g.unsqueeze(3), padding=0)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m1, m2 = filt(X), filt(Y)
    s11, s22, s12 = filt(X * X) - m1 ** 2, filt(Y * Y) - m2 ** 2, filt(X * Y) - m1 * m2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return float((((2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)) * cs).mean())


def _vif_script(ref, dist):
    ref, dist = _t(ref), _t(dist)

    def win(n):
        t = torch.linspace(-n // 2, n // 2, n)
        xx, yy = torch.meshgrid(t, t, indexing="ij")
        w = torch.exp(-(xx ** 2 + yy ** 2) / (2 * (n / 5) ** 2))
        return w / w.sum()

    def conv(z, k):
        return tf.conv2d(z[None, None], k[None, None], padding=k.shape[0] // 2)[0, 0]

    num = den = 0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        w = win(n)
        if scale > 1:
            ref, dist = conv(ref, w)[::2, ::2], conv(dist, w)[::2, ::2]
        m1, m2 = conv(ref, w), conv(dist, w)
        s1 = conv(ref * ref, w) - m1 * m1
        s2 = conv(dist * dist, w) - m2 * m2
        s12 = conv(ref * dist, w) - m1 * m2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10] = 0
        sv[s1 < 1e-10] = s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10] = 0
        sv[s2 < 1e-10] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += torch.sum(torch.log10(1 + g ** 2 * s1 / (sv + 2)))
        den += torch.sum(torch.log10(1 + s1 / 2))
    return float(num / den)


def _psnr_script(a, b, f):
    a, b, f = (_t(z) / 255.0 for z in (a, b, f))
    mse = 0.5 * torch.mean((f - a) ** 2) + 0.5 * torch.mean((f - b) ** 2)
    return float(20 * torch.log10(255 / torch.sqrt(mse)))


def _nabf_script(i1, i2, f):
    """get_Nabf with its per_extn_im_fn border and scipy convolve2d, line by line."""
    from scipy.signal import convolve2d

    def ext(x):
        p, q = x.shape
        out = np.zeros((p + 2, q + 2))
        out[1:p + 1, 1:q + 1] = x
        out[0, :] = out[2, :]
        out[p + 1, :] = out[-3, :]
        out[:, 0] = out[:, 2]
        out[:, q + 1] = out[:, -3]
        return out

    def sob(x):
        v = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
        h = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8
        e = ext(x)
        return convolve2d(e, v, mode="valid"), convolve2d(e, h, mode="valid")

    (gvA, ghA), (gvB, ghB), (gvF, ghF) = (sob(z.astype(np.float64)) for z in (i1, i2, f))
    gA, gB, gF = np.sqrt(ghA ** 2 + gvA ** 2), np.sqrt(ghB ** 2 + gvB ** 2), np.sqrt(ghF ** 2 + gvF ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        gAF = np.zeros(gA.shape)
        m = (gA == 0) | (gF == 0)
        gAF[~m] = np.where(gA > gF, gF / gA, gA / gF)[~m]
        gBF = np.zeros(gB.shape)
        m = (gB == 0) | (gF == 0)
        gBF[~m] = np.where(gB > gF, gF / gB, gB / gF)[~m]
        aA = np.where((gvA == 0) & (ghA == 0), 0, np.arctan(gvA / ghA))
        aB = np.where((gvB == 0) & (ghB == 0), 0, np.arctan(gvB / ghB))
        aF = np.where((gvF == 0) & (ghF == 0), 0, np.arctan(gvF / ghF))
    aAF = np.abs(np.abs(aA - aF) - np.pi / 2) * 2 / np.pi
    aBF = np.abs(np.abs(aB - aF) - np.pi / 2) * 2 / np.pi
    QAF = np.sqrt(0.9999 / (1 + np.exp(-19 * (gAF - 0.5))) * 0.9995 / (1 + np.exp(-22 * (aAF - 0.5))))
    QBF = np.sqrt(0.9999 / (1 + np.exp(-19 * (gBF - 0.5))) * 0.9995 / (1 + np.exp(-22 * (aBF - 0.5))))
    wtA = np.where(gA >= 2, gA ** 1.5, 0)
    wtB = np.where(gB >= 2, gB ** 1.5, 0)
    na = np.where((gF > gA) & (gF > gB), 1, 0)
    return float(np.sum(na * ((1 - QAF) * wtA + (1 - QBF) * wtB)) / np.sum(wtA + wtB))


def test_matches_script_transcriptions(triplet):
    ir, vi, f = triplet
    got = compute(f, [ir, vi], metrics="ssim,psnr,vif,nabf", profile="ivif_zoo")
    assert float(got["ssim"]) == pytest.approx(_ssim_script(ir, f) + _ssim_script(vi, f), rel=1e-5)
    assert float(got["psnr"]) == pytest.approx(_psnr_script(ir, vi, f), rel=1e-6)
    assert float(got["vif"]) == pytest.approx(_vif_script(ir, f) + _vif_script(vi, f), rel=1e-4)
    assert float(got["nabf"]) == pytest.approx(_nabf_script(ir, vi, f), rel=1e-12)
    assert float(got["nabf"]) > 0


def test_differences_from_standard(triplet):
    ir, vi, f = triplet
    zoo = compute(f, [ir, vi], metrics="ssim,psnr,vif,nabf", profile="ivif_zoo")
    std = compute(f, [ir, vi], metrics="ssim,psnr,vif,nabf")
    assert float(zoo["psnr"]) - float(std["psnr"]) == pytest.approx(20 * math.log10(255), rel=1e-9)
    for key in ("ssim", "vif"):
        assert float(zoo[key]) != pytest.approx(float(std[key]), rel=1e-3)
    # N^{AB/F}: the angle and the weights below Td change it only slightly on natural images
    assert float(zoo["nabf"]) != pytest.approx(float(std["nabf"]), rel=1e-9)
    # VIF's windows are off-centre: linspace(-N//2, N//2, N) starts at -(N+1)/2
    from fusekit.metrics.ivif_zoo import vif_window

    w = vif_window(3)
    assert w.shape == (3, 3) and w[0, 0] < w[2, 2]


def test_pil_grey_and_defined_metrics():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    from PIL import Image

    want = np.asarray(Image.fromarray(rgb).convert("L"), np.float64)
    from fusekit.metrics.profiles import get_profile

    np.testing.assert_array_equal(get_profile("ivif_zoo").prepare(rgb), want)
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(InputError, match="profiles that define it: standard, cddfuse, vifb"):
        compute(a, [a, a], metrics="en", profile="ivif_zoo")
