"""The ``vifb`` profile and the metrics added with it (CE, EI, RMSE, Q_CB, Q_CV).

Reference values: ``tests/golden/vifb/README.md`` (published by VIFB, computed
by its MATLAB code). Hand-checked cases and independent transcriptions of the
reference code cover the rest.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate2d

from fusekit.errors import InputError
from fusekit.metrics import PROFILES, MetricContext, compute, list_metrics, resolve_metrics
from fusekit.metrics.perceptual import round_half_away, stretch_255
from fusekit.metrics.vifb import IMPLEMENTATIONS, RGB2GRAY

from .conftest import require_data

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "vifb"
VIFB_KEYS = ("ag", "ce", "ei", "en", "mi", "psnr", "qabf", "qcb", "qcv", "rmse", "sf", "ssim", "sd")
ROWS = list(csv.DictReader((GOLDEN / "vifb_published.csv").open()))


def _sources(row: dict[str, str]) -> tuple[Path, Path]:
    return require_data(row["vi"]), require_data(row["ir"])


@pytest.mark.parametrize("row", ROWS, ids=[r["fused"] for r in ROWS])
def test_vifb_profile_reproduces_the_published_values(row):
    from fusekit.io import read_image

    vi, ir = _sources(row)
    images = [read_image(p, near_grey="keep") for p in (GOLDEN / row["fused"], vi, ir)]
    values = compute(images[0], images[1:], metrics=VIFB_KEYS, profile="vifb", data_range=1.0)
    for key in VIFB_KEYS:
        assert values[key] == pytest.approx(float(row[key]), rel=1e-4), key


def test_fusekit_eval_with_the_vifb_profile(tmp_path):
    from fusekit.evaluation import evaluate

    rows = ROWS[:2]
    data, fused = tmp_path / "data", tmp_path / "fused"
    for folder in (data / "ir", data / "vi", fused):
        folder.mkdir(parents=True)
    for row in rows:
        vi, ir = _sources(row)
        (data / "vi" / vi.name).symlink_to(vi)
        (data / "ir" / ir.name).symlink_to(ir)
        (fused / f"{row['scene']}.jpg").symlink_to(GOLDEN / row["fused"])
    report = evaluate(data, fused=fused, profile="vifb")
    assert report.ok, report.failures
    assert [m.name for m in report.metrics] == ["en", "sd", "sf", "ag", "mi", "qabf", "ssim", "psnr",
                                                "ce", "ei", "rmse", "qcb", "qcv"]
    scored = {r["image"]: r for r in report.rows}
    for row in rows:
        got = next(v for name, v in scored.items() if name.startswith(row["scene"]))
        for key in VIFB_KEYS:
            assert got[key] == pytest.approx(float(row[key]), rel=1e-4), (row["scene"], key)


# -- the profile's rules -------------------------------------------------------------------------

def test_profile_defines_exactly_vifbs_metrics_and_names_the_others():
    vifb = PROFILES["vifb"]
    assert set(IMPLEMENTATIONS) == set(VIFB_KEYS)
    assert [m.name for m in resolve_metrics(None, profile="vifb")] == [
        "en", "sd", "sf", "ag", "mi", "qabf", "ssim", "psnr", "ce", "ei", "rmse", "qcb", "qcv"]
    with pytest.raises(InputError, match=r"'vif' is not part of profile 'vifb'; profiles that define it: "
                                         r"standard, cddfuse"):
        resolve_metrics("en,vif", profile=vifb)
    metrics = {m.name: m for m in list_metrics()}
    assert metrics["mi"].unit_for("vifb") == "nats"
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(InputError, match="not part of profile"):
        compute(a, [a, a], metrics="nabf", profile="vifb")
    assert set(compute(a, [], profile="vifb")) == {"en", "sd", "sf", "ag", "ei"}


def _ramp(rows: int = 4, cols: int = 6) -> np.ndarray:
    return np.tile(np.arange(cols, dtype=np.float64) * 10.0, (rows, 1))  # +10 per column


def test_fused_only_conventions_by_hand():
    f = _ramp()
    v = compute(f, [], metrics="ag,ei,sf,sd,en", profile="vifb", data_range=255)
    # gradient 10 along x everywhere (central and one-sided), summed over 24 pixels / (3 * 5)
    assert v["ag"] == pytest.approx(24 * 10 / math.sqrt(2) / 15, rel=1e-12)
    # Sobel 1-2-1 weights: 4 * 20 inside, 4 * 10 in the replicated border columns
    assert v["ei"] == pytest.approx((4 * 80 + 2 * 40) / 6, rel=1e-12)
    # 4 rows x 5 differences of 10, divided by the 24 pixels; no vertical differences
    assert v["sf"] == pytest.approx(math.sqrt(4 * 5 * 100 / 24), rel=1e-12)
    assert v["sd"] == pytest.approx(np.std(f), rel=1e-12)
    assert v["en"] == pytest.approx(math.log2(6), rel=1e-12)
    # the standard profile's EI is the same, its AG uses forward differences over (M-1)(N-1)
    assert compute(f, [], metrics="ei", data_range=255)["ei"] == pytest.approx(v["ei"], rel=1e-12)


def test_colour_fused_image_is_scored_per_channel_and_averaged():
    rng = np.random.default_rng(1)
    vi = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    ir = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    f = ((vi.astype(np.int64) + ir[..., None]) // 2).astype(np.uint8)
    both = compute(f, [vi, ir], metrics=VIFB_KEYS, profile="vifb")
    for key in VIFB_KEYS:
        if key == "sf":
            continue
        per = [compute(f[..., k], [vi[..., k], ir], metrics=key, profile="vifb")[key] for k in range(3)]
        assert both[key] == pytest.approx(np.mean(per), rel=1e-12), key
    # SF: MATLAB's size(F) with two outputs folds the channels into the columns: [R G B]
    side = np.concatenate([f[..., k] for k in range(3)], axis=1)
    assert both["sf"] == pytest.approx(compute(side, [], metrics="sf", profile="vifb")["sf"], rel=1e-12)


def test_grey_fused_image_converts_colour_sources_like_matlab():
    rng = np.random.default_rng(2)
    vi = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    ir = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    f = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    grey = vi.astype(np.float64) @ np.array(RGB2GRAY)
    rounded = round_half_away(grey)
    assert not np.array_equal(grey, rounded)
    # CE, MI, SSIM: rgb2gray of the uint8 array (rounded); PSNR, RMSE, Qabf: of a double copy
    for key, src in (("ce", rounded), ("mi", rounded), ("ssim", rounded),
                     ("psnr", grey), ("rmse", grey), ("qabf", grey)):
        got = compute(f, [vi, ir], metrics=key, profile="vifb")[key]
        # the profile would round a float source to 8 bits: build the context by hand
        ctx = MetricContext(f, [src, ir], PROFILES["vifb"])
        assert got == pytest.approx(IMPLEMENTATIONS[key](ctx), rel=1e-12), key
    # Q_CB and Q_CV fail in MATLAB there; fusekit says so instead of inventing a number
    for key in ("qcb", "qcv"):
        with pytest.raises(InputError, match="grey fused image against a colour source"):
            compute(f, [vi, ir], metrics=key, profile="vifb")


def test_vifb_inputs_are_8_bit_levels():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    as_float = a.astype(np.float32) / 255.0          # what fusekit.io.read_image returns
    assert np.array_equal(PROFILES["vifb"].prepare(as_float, 1.0), a.astype(np.float64))
    assert PROFILES["vifb"].prepare(np.full((2, 2), 2.5), 255.0)[0, 0] == 3.0  # half away from zero


def test_vifb_mi_psnr_rmse_ce_by_hand():
    a = np.zeros((8, 8), np.uint8)
    a[:, 4:] = 200                                    # two equal halves
    v = compute(a, [a, a], metrics="mi,psnr,rmse,ce", profile="vifb")
    assert v["mi"] == pytest.approx(2 * math.log(2), rel=1e-12)   # nats, summed over sources
    assert v["ce"] == 0.0
    assert v["psnr"] == math.inf and v["rmse"] == 0.0
    b = a + 3
    v = compute(b, [a, a + 5], metrics="psnr,rmse", profile="vifb")
    pseudo = [math.sqrt(64 * d * d) / 64 for d in (3, 2)]   # sqrt(sum d^2) / (M N)
    assert v["rmse"] == pytest.approx(np.mean(pseudo), rel=1e-12)
    assert v["psnr"] == pytest.approx(20 * math.log10(255 / math.sqrt(np.mean(pseudo))), rel=1e-12)


# -- the added metrics under the standard profile ------------------------------------------------

def test_cross_entropy_by_hand():
    s = np.zeros((4, 4), np.uint8)
    s[:, 2:] = 100                                    # levels 0 and 100, half each
    f = np.zeros((4, 4), np.uint8)
    f[:, 1:] = 100                                    # a quarter 0, three quarters 100
    expected = 0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75)
    assert compute(f, [s, s], metrics="ce")["ce"] == pytest.approx(expected, rel=1e-12)
    assert compute(s, [s, s], metrics="ce")["ce"] == 0.0
    # a level missing from F is skipped, not infinite
    assert compute(np.full((4, 4), 100, np.uint8), [s, s], metrics="ce")["ce"] == pytest.approx(
        0.5 * math.log2(0.5), rel=1e-12)


def test_rmse_by_hand_and_its_direction():
    a = np.full((8, 8), 50.0)
    v = compute(a + 3, [a, a - 2], metrics="rmse", data_range=255)
    assert v["rmse"] == pytest.approx((3 + 5) / 2, rel=1e-12)
    assert v["rmse"].higher_is_better is False and v["rmse"].unit == "grey levels"


@pytest.fixture(scope="module")
def textured():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:48, 0:40]
    a = 120 + 80 * np.sin(x / 3.0) + rng.normal(0, 5, (48, 40))
    b = 100 + 90 * np.cos(y / 4.0) + rng.normal(0, 5, (48, 40))
    f = (a + b) / 2
    return [np.clip(np.round(t), 0, 255) for t in (a, b, f)]


def _freq(n: int) -> np.ndarray:
    """MATLAB freqspace for n points, written from its documentation: [-n:2:n-2]/n or [-n+1:2:n-1]/n."""
    return np.arange(-n, n - 1, 2) / n if n % 2 == 0 else np.arange(-n + 1, n, 2) / n


def _qcb_transcribed(a, b, f):
    """Liu's metricChenBlum.m step by step: centred spectra, full 31 x 31 windows, mask products."""
    def contrast_map(img):
        img = stretch_255(img)
        h, w = img.shape
        u, v = np.meshgrid(_freq(w) * (w / 30), _freq(h) * (h / 30))
        r = np.sqrt(u ** 2 + v ** 2)
        sd = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)
        filt = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(img)) * sd))
        x, y = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))
        g1 = np.exp(-(x * x + y * y) / 8.0) / (8.0 * np.pi)
        g2 = np.exp(-(x * x + y * y) / 32.0) / (32.0 * np.pi)
        c = np.abs(correlate2d(filt, g1, mode="same") / correlate2d(filt, g2, mode="same") - 1)
        return c ** 3 / (c ** 2 + 0.0001)

    c1, c2, cf = (contrast_map(t) for t in (a, b, f))
    m1, m2 = (c1 < cf).astype(float), (c2 < cf).astype(float)
    q1 = (c1 / cf) * m1 + (cf / c1) * (1 - m1)
    q2 = (c2 / cf) * m2 + (cf / c2) * (1 - m2)
    l1 = c1 * c1 / (c1 * c1 + c2 * c2)
    return float(np.mean(l1 * q1 + (1 - l1) * q2))


def _qcv_transcribed(a, b, f):
    """Liu's metricChen.m step by step, with explicit zero-padded 16 x 16 blocks."""
    a, b, f = (stretch_255(t) for t in (a, b, f))
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def grad(t):
        return np.hypot(correlate2d(t, sx, mode="same"), correlate2d(t, sx.T, mode="same"))

    h, w = f.shape
    u, v = np.meshgrid(_freq(w) * (w / 8), _freq(h) * (h / 8))
    r = np.sqrt(u ** 2 + v ** 2)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-(0.144 * r) ** 1.1)
    H, W = -(-h // 16) * 16, -(-w // 16) * 16
    num = den = 0.0
    for s in (a, b):
        g = np.zeros((H, W))
        g[:h, :w] = grad(s) ** 5
        d = np.zeros((H, W), complex)
        d[:h, :w] = np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(s - f)) * csf))
        for i in range(0, H, 16):
            for j in range(0, W, 16):
                lam = g[i:i + 16, j:j + 16].sum()
                num += lam * np.mean(d[i:i + 16, j:j + 16] ** 2).real
                den += lam
    return num / den


def test_qcb_and_qcv_match_transcriptions_of_the_reference_code(textured):
    a, b, f = textured
    v = compute(f, [a, b], metrics="qcb,qcv", data_range=255)
    assert v["qcb"] == pytest.approx(_qcb_transcribed(a, b, f), rel=1e-9)
    assert v["qcv"] == pytest.approx(_qcv_transcribed(a, b, f), rel=1e-9)
    odd = [t[:45, :37] for t in textured]            # odd sizes: freqspace's other branch, partial blocks
    v = compute(odd[2], odd[:2], metrics="qcb,qcv", data_range=255)
    assert v["qcb"] == pytest.approx(_qcb_transcribed(*odd), rel=1e-9)
    assert v["qcv"] == pytest.approx(_qcv_transcribed(*odd), rel=1e-9)


def test_qcb_and_qcv_limits(textured):
    a, _, _ = textured
    v = compute(a, [a, a], metrics="qcb,qcv", data_range=255)
    assert v["qcb"] == pytest.approx(1.0, rel=1e-12)   # every contrast kept
    assert v["qcv"] == 0.0                             # no difference
    stretched = compute(a * 0.5 + 20, [a, a], metrics="qcv", data_range=255)["qcv"]  # both stretch to 0-255 first
    assert stretched == pytest.approx(0.0, abs=1e-9)
    metrics = {m.name: m for m in list_metrics()}
    assert metrics["qcv"].higher_is_better is False and metrics["qcb"].higher_is_better
    flat = np.full_like(a, 7.0)
    # the reference divides 0 by 0 for a constant image: vifb reports it undefined, standard defines it
    for key in ("qcb", "qcv"):
        with pytest.raises(ArithmeticError, match="undefined"):
            compute(np.stack([a] * 3, -1), [np.stack([a] * 3, -1), flat], metrics=key, profile="vifb", data_range=255)
    v = compute(flat, [a, a], metrics="qcb,qcv", data_range=255)
    assert v["qcb"] == 0.0                              # no contrast preserved
    assert v["qcv"] == pytest.approx(compute(np.zeros_like(a), [a, a], metrics="qcv", data_range=255)["qcv"], rel=1e-12)
