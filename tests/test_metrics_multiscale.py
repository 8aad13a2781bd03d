"""MS-SSIM and MEF-SSIM against loop transcriptions of the reference MATLAB code and hand-made cases.

The reference functions below follow Wang's ``msssim.m`` / ``ssim_index_new.m``
and Ma's ``mef_ssim.m`` line by line (patch loops, ``filter2(..., 'valid')``,
``imfilter(ones(2)/4, 'symmetric')`` then ``(1:2:end, 1:2:end)``), written
independently of fusekit's vectorised code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate2d

from fusekit.errors import InputError
from fusekit.metrics import compute
from fusekit.metrics.multiscale import (MEF_SSIM_WEIGHTS, downsample, mef_ssim_images, ms_ssim_pair)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _fspecial_gaussian(size=11, sigma=1.5):
    r = np.arange(size) - (size - 1) / 2
    h = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return h / h.sum()


def _matlab_downsample(x):
    """imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end), by explicit loops."""
    h, w = x.shape
    out = np.empty(((h + 1) // 2, (w + 1) // 2))
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            i2, j2 = min(i + 1, h - 1), min(j + 1, w - 1)  # symmetric padding repeats the edge pixel
            out[i // 2, j // 2] = (x[i, j] + x[i2, j] + x[i, j2] + x[i2, j2]) / 4
    return out


def _reference_msssim(a, b, weights=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)):
    win = _fspecial_gaussian()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mssim, mcs = [], []
    for level in range(len(weights)):
        f = lambda z: correlate2d(z, win, mode="valid")  # noqa: E731 - filter2(window, z, 'valid')
        mu1, mu2 = f(a), f(b)
        s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s1 + s2 + c2)
        ssim_map = ((2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)) * cs_map
        mssim.append(ssim_map.mean())
        mcs.append(cs_map.mean())
        a, b = _matlab_downsample(a), _matlab_downsample(b)
    n = len(weights)
    return np.prod(np.array(mcs[:n - 1]) ** np.array(weights[:n - 1])) * mssim[n - 1] ** weights[n - 1]


def _reference_mef_ssim_scale(seq, f):
    """Ma's ssim_MEF for one scale: the patch loops of mef_ssim.m."""
    w = 11
    bd = w // 2
    window = _fspecial_gaussian()
    c2 = (0.03 * 255) ** 2
    s1, s2, s3 = seq.shape
    swin = np.ones((w, w)) / w ** 2
    mu = np.zeros((s1 - 2 * bd, s2 - 2 * bd, s3))
    ed = np.zeros_like(mu)
    for k in range(s3):
        img = seq[:, :, k]
        mu[:, :, k] = correlate2d(img, swin, mode="valid")
        sigma_sq = correlate2d(img * img, swin, mode="valid") - mu[:, :, k] ** 2
        ed[:, :, k] = np.sqrt(np.maximum(w ** 2 * sigma_sq, 0)) + 0.001
    eps = np.finfo(float).eps
    q = np.zeros((s1 - 2 * bd, s2 - 2 * bd))
    for i in range(bd, s1 - bd):
        for j in range(bd, s2 - bd):
            ii, jj = i - bd, j - bd
            vecs = seq[i - bd:i + bd + 1, j - bd:j + bd + 1, :].reshape(w * w, s3)
            den = sum(np.linalg.norm(vecs[:, k] - mu[ii, jj, k]) for k in range(s3))
            summed = vecs.sum(axis=1)
            num = np.linalg.norm(summed - summed.mean())
            r = (num + eps) / (den + eps)
            r = 1 - eps if r > 1 else (eps if r < 0 else r)
            p = min(np.tan(np.pi / 2 * r), 10)
            wmap = (ed[ii, jj, :] / w) ** p + eps
            wmap = wmap / wmap.sum()
            block = np.zeros((w, w))
            for k in range(s3):
                patch = seq[i - bd:i + bd + 1, j - bd:j + bd + 1, k]
                block += wmap[k] * (patch - mu[ii, jj, k]) / ed[ii, jj, k]
            if np.linalg.norm(block) > 0:
                block = block / np.linalg.norm(block) * ed[ii, jj, :].max()
            fb = f[i - bd:i + bd + 1, j - bd:j + bd + 1]
            m1, m2 = (window * block).sum(), (window * fb).sum()
            v1 = (window * (block - m1) ** 2).sum()
            v2 = (window * (fb - m2) ** 2).sum()
            v12 = (window * (block - m1) * (fb - m2)).sum()
            q[ii, jj] = (2 * v12 + c2) / (v1 + v2 + c2)
    return q.mean()


def _reference_mef_ssim(seq, f, weights=MEF_SSIM_WEIGHTS):
    total = 1.0
    for level, wt in enumerate(weights):
        total *= _reference_mef_ssim_scale(seq, f) ** wt
        if level < len(weights) - 1:
            seq = np.stack([_matlab_downsample(seq[:, :, k]) for k in range(seq.shape[2])], axis=2)
            f = _matlab_downsample(f)
    return total


def _grey(path: Path) -> np.ndarray:
    from fusekit.color import luminance
    from fusekit.io import read_image

    img = read_image(path)
    return np.round((luminance(img) if img.ndim == 3 else img).astype(np.float64) * 255)


@pytest.fixture(scope="module")
def candle():
    """The MEIF demo pair (under, over) and a fused image (their mean), grey 0-255."""
    under, over = (_grey(EXAMPLES / "meif" / s / "Candle.png") for s in ("under", "over"))
    return under, over, np.round((under + over) / 2)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (5, 4)])
def test_downsample_is_matlabs_symmetric_2x2_mean(shape):
    x = np.random.default_rng(1).random(shape) * 255
    np.testing.assert_allclose(downsample(x), _matlab_downsample(x), rtol=0, atol=1e-12)


def test_ms_ssim_matches_the_reference_transcription(candle):
    under, over, fused = candle
    for src in (under, over):
        assert ms_ssim_pair(src, fused) == pytest.approx(_reference_msssim(src, fused), rel=1e-10)


def test_ms_ssim_hand_cases(candle):
    under, _, fused = candle
    assert ms_ssim_pair(under, under) == pytest.approx(1.0, abs=1e-12)
    # one scale with weight 1 is plain SSIM (Wang's code), which the standard profile's ssim sums
    single = ms_ssim_pair(under, fused, weights=(1.0,))
    assert single == pytest.approx(compute(fused.astype(np.uint8), [under.astype(np.uint8)],
                                           metrics="ssim")["ssim"], rel=1e-9)
    # a constant offset changes only the luminance term, which MS-SSIM keeps at the coarsest scale only
    assert 0.9 < ms_ssim_pair(under, np.clip(under + 20, 0, 255)) < 1.0
    with pytest.raises(InputError, match="at least 161 x 161"):
        ms_ssim_pair(under[:160], under[:160])


def test_ms_ssim_metric_sums_over_sources(candle):
    under, over, fused = candle
    s = compute(fused.astype(np.uint8), [under.astype(np.uint8), over.astype(np.uint8)], metrics="ms-ssim")
    assert s["ms-ssim"] == pytest.approx(ms_ssim_pair(under, fused) + ms_ssim_pair(over, fused), rel=1e-12)


def test_mef_ssim_matches_the_reference_transcription(candle):
    under, over, fused = (x[60:124, 90:154] for x in candle)  # 64 x 64: the reference loops are slow
    ref = _reference_mef_ssim(np.stack([under, over], axis=2), fused)
    assert mef_ssim_images([under, over], fused) == pytest.approx(ref, rel=1e-9)
    three = [under, over, np.round((under + fused) / 2)]  # any number of exposures
    ref3 = _reference_mef_ssim(np.stack(three, axis=2), over)
    assert mef_ssim_images(three, over) == pytest.approx(ref3, rel=1e-9)


def test_mef_ssim_hand_cases(candle):
    under, over, fused = candle
    # identical exposures: the desired patch is the source itself, so fusing it back scores 1
    assert mef_ssim_images([under, under], under) == pytest.approx(1.0, abs=1e-6)
    # a good fusion beats either exposure alone, and a flat image scores far lower
    mean = mef_ssim_images([under, over], fused)
    assert mean > max(mef_ssim_images([under, over], under), mef_ssim_images([under, over], over)) - 0.05
    assert mef_ssim_images([under, over], np.full_like(fused, 128.0)) < 0.6 * mean  # C2 keeps flat areas near 1
    with pytest.raises(InputError, match="2 or more"):
        mef_ssim_images([under], fused)
    with pytest.raises(InputError, match="at least 41 x 41"):
        mef_ssim_images([under[:40], over[:40]], fused[:40])


def test_mef_ssim_through_compute_and_profiles(candle):
    under, over, fused = (x.astype(np.uint8) for x in candle)
    for profile in ("standard", "cddfuse"):
        s = compute(fused, [under, over], metrics="mef-ssim,ms-ssim", profile=profile)
        assert 0 < s["mef-ssim"] <= 1 and 0 < s["ms-ssim"] <= 2
    with pytest.raises(InputError, match="standard"):
        compute(fused, [under, over], metrics="mef-ssim", profile="vifb")
