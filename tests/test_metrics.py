"""Fusion metrics on hand-computable cases, against independent implementations, and errors."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import convolve2d

from fusekit.errors import InputError, UnknownNameError
from fusekit.hookspecs import hookimpl
from fusekit.metrics import PROFILES, Metric, Score, compute, list_metrics
from fusekit.plugins import build_host

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"  # real images in the repository
BUILTIN = ("en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim", "psnr", "cc", "nabf")


def _crop(rel: str, y: int = 100, x: int = 100, size: int = 64) -> np.ndarray:
    from fusekit.io import read_image

    img = read_image(EXAMPLES / rel)
    if img.ndim == 3:
        from fusekit.color import luminance

        img = luminance(img)
    return np.round(img[y:y + size, x:x + size].astype(np.float64) * 255.0)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return _crop("ir.png", 200, 300), _crop("vi.png", 200, 300)


def test_builtin_metrics_registered_with_metadata():
    metrics = {m.name: m for m in list_metrics()}
    for name in BUILTIN:
        m = metrics[name]
        assert isinstance(m, Metric)
        assert m.full_name and m.reference
        assert isinstance(m.higher_is_better, bool)
    assert metrics["nabf"].higher_is_better is False
    assert not metrics["en"].needs_sources and metrics["mi"].needs_sources
    assert metrics["mi"].unit_for("standard") == "bits"
    assert metrics["mi"].unit_for("cddfuse") == "nats"
    assert set(PROFILES) == {"standard", "cddfuse", "vifb", "ivif_zoo"}


def test_scores_carry_unit_and_direction(pair):
    a, b = pair
    s = compute((a + b) / 2, [a, b], metrics=["psnr", "nabf"], data_range=255)
    assert list(s) == ["psnr", "nabf"]
    assert isinstance(s["psnr"], Score) and s["psnr"].unit == "dB" and s["psnr"].higher_is_better
    assert s["nabf"].higher_is_better is False
    assert "dB" in repr(s["psnr"])


def test_default_without_sources_computes_fused_only_metrics(pair):
    a, _ = pair
    assert set(compute(a, [], data_range=255)) == {"en", "sd", "sf", "ag", "ei"}


# -- hand-computable values ---------------------------------------------------


def test_entropy_of_two_equal_levels_is_one_bit_and_constant_is_zero():
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 200
    assert compute(img, [], metrics="en")["en"] == pytest.approx(1.0, abs=1e-12)
    assert compute(np.full((8, 8), 7, np.uint8), [], metrics="en")["en"] == 0.0


def test_sd_sf_ag_on_a_ramp():
    img = np.tile(np.arange(6, dtype=np.float64) * 10.0, (4, 1))  # +10 per column
    s = compute(img, [], metrics="sd,sf,ag", data_range=255)
    assert s["sd"] == pytest.approx(np.std(np.arange(6) * 10.0))
    assert s["sf"] == pytest.approx(10.0)           # sqrt(10^2 + 0)
    assert s["ag"] == pytest.approx(10.0 / math.sqrt(2))
    cdd = compute(img, [], metrics="ag", profile="cddfuse", data_range=255)["ag"]
    assert cdd == pytest.approx(10.0 / math.sqrt(2))  # central differences of a ramp agree


def test_ag_profiles_differ_as_documented():
    img = np.zeros((5, 5))
    img[2, 2] = 100.0
    std = compute(img, [], metrics="ag", data_range=255)["ag"]
    cdd = compute(img, [], metrics="ag", profile="cddfuse", data_range=255)["ag"]
    gy, gx = np.gradient(img)
    assert cdd == pytest.approx(np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2)))
    dx = img[:-1, 1:] - img[:-1, :-1]
    dy = img[1:, :-1] - img[:-1, :-1]
    assert std == pytest.approx(np.mean(np.sqrt((dx ** 2 + dy ** 2) / 2)))


def test_mutual_information_bits_and_nats():
    a = np.repeat(np.array([0, 60, 120, 180], np.uint8), 16).reshape(8, 8)  # 4 equiprobable levels
    b = np.full((8, 8), 50, np.uint8)                                        # constant: I = 0
    std = compute(a, [a, b], metrics="mi")["mi"]
    cdd = compute(a, [a, b], metrics="mi", profile="cddfuse")["mi"]
    assert std == pytest.approx(2.0) and std.unit == "bits"
    assert cdd == pytest.approx(2.0 * math.log(2.0)) and cdd.unit == "nats"


def test_mutual_information_matches_scikit_learn(pair):
    skm = pytest.importorskip("sklearn.metrics")
    a, b = pair
    f = np.maximum(a, b)
    expected = (skm.mutual_info_score(f.ravel(), a.ravel())
                + skm.mutual_info_score(f.ravel(), b.ravel()))
    assert compute(f, [a, b], metrics="mi", profile="cddfuse", data_range=255)["mi"] == pytest.approx(expected, rel=1e-10)


def test_cc_and_scd(pair):
    a, b = pair
    f = 0.6 * a + 0.4 * b
    r = lambda x, y: np.corrcoef(x.ravel(), y.ravel())[0, 1]  # noqa: E731
    s = compute(f, [a, b], metrics="cc,scd", data_range=255)
    assert s["cc"] == pytest.approx((r(a, f) + r(b, f)) / 2)
    assert s["scd"] == pytest.approx(r(f - b, a) + r(f - a, b))
    assert compute(0.5 * a + 3, [a, a], metrics="cc", data_range=255)["cc"] == pytest.approx(1.0)


def test_constant_images_give_documented_values_not_nan(pair):
    a, b = pair
    flat = np.full_like(a, 90.0)
    s = compute(flat, [a, b], data_range=255)
    assert all(not math.isnan(v) for v in s.values())
    assert s["cc"] == 0.0                       # r with a constant image is defined as 0
    assert s["vif"] == 0.0                      # nothing of either source survives
    r = np.corrcoef((b - a).ravel(), b.ravel())[0, 1]
    assert compute(b, [a, b], metrics="scd", data_range=255)["scd"] == pytest.approx(r)  # F - B constant: term 0
    assert compute(a, [flat, flat], metrics="vif", data_range=255)["vif"] == 2.0        # source without information


def test_psnr_profiles(pair):
    a, b = pair
    f = (a + b) / 2
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2
    assert compute(f, [a, b], metrics="psnr", data_range=255)["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse))
    cdd = compute(f, [a, b], metrics="psnr", profile="cddfuse", data_range=255)["psnr"]
    fr, ar, br = np.round(f), a, b
    mse_r = (np.mean((fr - ar) ** 2) + np.mean((fr - br) ** 2)) / 2
    assert cdd == pytest.approx(10 * np.log10(fr.max() ** 2 / mse_r))
    assert compute(a, [a, a], metrics="psnr", data_range=255)["psnr"] == math.inf


def test_identical_images_give_maximal_similarity(pair):
    a, _ = pair
    s = compute(a, [a, a], metrics="ssim,vif,qabf,nabf,cc", data_range=255)
    assert s["ssim"] == pytest.approx(2.0)
    assert s["vif"] == pytest.approx(2.0, rel=1e-6)
    assert s["cc"] == pytest.approx(1.0)
    assert s["nabf"] == 0.0
    q = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert s["qabf"] == pytest.approx(q)


def test_ssim_matches_scikit_image(pair):
    from skimage.metrics import structural_similarity as ssim

    a, b = pair
    f = np.maximum(a, b)
    std = sum(ssim(f, s, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                   data_range=255) for s in (a, b))
    assert compute(f, [a, b], metrics="ssim", data_range=255)["ssim"] == pytest.approx(std, rel=1e-6)
    f32, a32, b32 = (x.astype(np.float32) for x in (f, a, b))
    cdd = ssim(f32, a32, data_range=2) + ssim(f32, b32, data_range=2)
    assert compute(f, [a, b], metrics="ssim", profile="cddfuse", data_range=255)["ssim"] == pytest.approx(cdd, rel=1e-7)


def _vifp_direct(ref, dist):
    """Sheikh's VIFp written plainly with 2-D windows (the script's formulation)."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        half = (n - 1) / 2
        y, x = np.ogrid[-half:half + 1, -half:half + 1]
        win = np.exp(-(x * x + y * y) / (2 * (n / 5.0) ** 2))
        win /= win.sum()
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, win, mode="valid"), convolve2d(dist, win, mode="valid")
        s1 = np.maximum(convolve2d(ref * ref, win, mode="valid") - mu1 ** 2, 0)
        s2 = np.maximum(convolve2d(dist * dist, win, mode="valid") - mu2 ** 2, 0)
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10], sv[s1 < 1e-10] = 0, s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10], sv[s2 < 1e-10] = 0, 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g * g * s1 / (sv + 2)))
        den += np.sum(np.log10(1 + s1 / 2))
    return num / den


def test_vif_matches_direct_formulation(pair):
    a, b = pair
    f = np.maximum(a, b)
    expected = _vifp_direct(a, f) + _vifp_direct(b, f)
    assert compute(f, [a, b], metrics="vif", data_range=255)["vif"] == pytest.approx(expected, rel=1e-9)


def _nabf_loops(f, a, b):
    """Shreyamsha Kumar's modified N^{AB/F}, transcribed pixel by pixel."""
    vt = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8.0
    ht = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8.0

    def grads(x):
        ext = np.pad(x, 1, mode="reflect")
        gv, gh = convolve2d(ext, vt, mode="valid"), convolve2d(ext, ht, mode="valid")
        return np.sqrt(gv ** 2 + gh ** 2), gv, gh

    (ga, va, ha), (gb, vb, hb), (gf, vf, hf) = grads(a), grads(b), grads(f)
    num = den = 0.0
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            def ang(v, h):
                if v[i, j] == 0 and h[i, j] == 0:
                    return 0.0
                return math.atan(v[i, j] / h[i, j]) if h[i, j] != 0 else math.copysign(math.pi / 2, v[i, j])

            qs, ws = [], []
            for g, v, h in ((ga, va, ha), (gb, vb, hb)):
                if g[i, j] == 0 or gf[i, j] == 0:
                    rel = 0.0
                elif g[i, j] > gf[i, j]:
                    rel = gf[i, j] / g[i, j]
                else:
                    rel = g[i, j] / gf[i, j]
                orient = abs(abs(ang(v, h) - ang(vf, hf)) - math.pi / 2) * 2 / math.pi
                qg = 0.9999 / (1 + math.exp(-19 * (rel - 0.5)))
                qa = 0.9995 / (1 + math.exp(-22 * (orient - 0.5)))
                qs.append(math.sqrt(qg * qa))
                ws.append(g[i, j] ** 1.5 if g[i, j] >= 2 else 0.001)
            den += ws[0] + ws[1]
            if gf[i, j] > ga[i, j] and gf[i, j] > gb[i, j]:
                num += (1 - qs[0]) * ws[0] + (1 - qs[1]) * ws[1]
    return num / den


def test_nabf_matches_pixelwise_transcription(pair):
    a, b = (x[:20, :20] for x in pair)
    f = np.clip(np.round(1.3 * np.maximum(a, b) - 20), 0, 255)  # sharper than both: artefacts
    value = compute(f, [a, b], metrics="nabf", data_range=255)["nabf"]
    assert value > 0
    assert value == pytest.approx(_nabf_loops(f, a, b), rel=1e-9)


def _qabf_script(f, a, b):
    """Q^{AB/F} as CDDFuse's script computes it (zero-padded Sobel, its quirks)."""
    def edges(x):
        sx = convolve2d(x, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float), mode="same")
        sy = convolve2d(x, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float), mode="same")
        ang = np.full_like(x, math.pi / 2)
        nz = sx != 0
        ang[nz] = np.arctan(sy[nz] / sx[nz])
        return np.sqrt(sx ** 2 + sy ** 2), ang

    def q(ga, aa, gf, af):
        rel = np.zeros_like(ga)
        rel[ga > gf] = gf[ga > gf] / ga[ga > gf]
        rel[ga == gf] = gf[ga == gf]
        rel[ga < gf] = ga[ga < gf] / gf[ga < gf]
        orient = 1 - np.abs(aa - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))

    (ga, aa), (gb, ab), (gf, af) = edges(a), edges(b), edges(f)
    return np.sum(q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb) / np.sum(ga + gb)


def test_qabf_cddfuse_matches_script_formulation(pair):
    a, b = pair
    f = np.round((a + b) / 2)
    value = compute(f, [a, b], metrics="qabf", profile="cddfuse", data_range=255)["qabf"]
    assert value == pytest.approx(_qabf_script(f, a, b), rel=1e-6)  # float32, as the script


def test_colour_input_is_scored_on_luminance(pair):
    a, b = pair
    rgb = np.repeat(a[..., None], 3, axis=2)
    assert compute(rgb, [a, b], metrics="ssim", data_range=255)["ssim"] == pytest.approx(
        compute(a, [a, b], metrics="ssim", data_range=255)["ssim"], rel=1e-6)
    as_unit = compute(a / 255.0, [a / 255.0, b / 255.0], metrics="mi", data_range=1.0)["mi"]
    assert as_unit == pytest.approx(compute(a, [a, b], metrics="mi", data_range=255)["mi"])


# -- errors and plugins -------------------------------------------------------


def test_unknown_metric_and_profile_suggest_close_names(pair):
    a, b = pair
    with pytest.raises(UnknownNameError, match="did you mean 'ssim'"):
        compute(a, [a, b], metrics="ssin")
    with pytest.raises(UnknownNameError, match="did you mean 'cddfuse'"):
        compute(a, [a, b], profile="cdfuse")


def test_bad_inputs_raise_input_errors(pair):
    a, b = pair
    with pytest.raises(InputError, match="one size"):
        compute(a, [a[:-1], b[:-1]], metrics="mi", data_range=255)
    with pytest.raises(InputError, match="needs the source"):
        compute(a, [], metrics="mi", data_range=255)
    with pytest.raises(InputError, match="2 sources"):
        compute(a, [a, b, b], metrics="scd", data_range=255)
    with pytest.raises(InputError, match="at least 41x41"):
        compute(a[:40, :50], [a[:40, :50], b[:40, :50]], metrics="vif", data_range=255)
    with pytest.raises(InputError, match="smaller than its 11x11 window"):
        compute(a[:10, :10], [a[:10, :10], b[:10, :10]], metrics="ssim", data_range=255)
    with pytest.raises(InputError, match="at least 7x7"):
        compute(a[:6, :6], [a[:6, :6], b[:6, :6]], metrics="ssim", profile="cddfuse", data_range=255)


def test_plugin_metric_is_registered_and_nan_is_not_silent(pair):
    def mean_grey(ctx):
        return float(ctx.fused.mean())

    plugin = types.SimpleNamespace()
    plugin.register_metrics = hookimpl(lambda register: [
        register(Metric("meangrey", "mean grey level", "grey levels", True, False, "-", mean_grey)),
        register(Metric("broken", "always undefined", "", True, False, "-", lambda ctx: math.nan)),
    ])
    host = build_host(entry_points=False, extra=[(plugin, "test-metrics")])
    assert {"meangrey", "broken", "ssim"} <= {m.name for m in list_metrics(host)}
    a, b = pair
    assert compute(a, [a, b], metrics="meangrey", host=host, data_range=255)["meangrey"] == pytest.approx(a.mean())
    with pytest.raises(ArithmeticError, match="undefined"):
        compute(a, [a, b], metrics="broken", host=host, data_range=255)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_fused_images_of_one_scene_share_source_statistics(pair, profile):
    """Scoring several methods' outputs of one scene computes the sources' statistics once
    and gives exactly the values of scoring each alone, in any order."""
    from fusekit.metrics.compute import evaluate_metric, make_context, reuse_sources

    a, b = pair
    outputs = [np.maximum(a, b), (a + b) / 2, np.flipud(a)]  # the last shares little with the sources
    metrics = [m for m in list_metrics() if PROFILES[profile].defines(m.name) and not m.on_request]
    alone = [compute(f, [a, b], metrics=metrics, profile=profile, data_range=255) for f in outputs]
    base = make_context(outputs[0], [a, b], PROFILES[profile], data_range=255)
    together = [{m.name: evaluate_metric(m, base) for m in metrics}]
    known = dict(base._source_cache)
    for f in outputs[1:]:
        ctx = reuse_sources(base, f, data_range=255)
        together.append({m.name: evaluate_metric(m, ctx) for m in metrics})
    assert together == alone
    # nothing of the sources was recomputed, and no later image changed what was cached
    assert base._source_cache.keys() == known.keys()
    assert all(base._source_cache[k] is v for k, v in known.items())
    again = reuse_sources(base, outputs[0], data_range=255)
    assert {m.name: evaluate_metric(m, again) for m in metrics} == alone[0]
    with pytest.raises(InputError, match="one size"):
        reuse_sources(base, a[:-1], data_range=255)


def test_separable_filters_equal_2d_convolution():
    from fusekit.metrics.filters import filter_valid, gaussian_kernel, sobel

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 37, 45)).astype(np.float64)
    for size in (17, 9, 3):
        k = gaussian_kernel(size, size / 5)
        full = convolve2d(x[1], np.outer(k, k), mode="valid")
        np.testing.assert_allclose(filter_valid(x, k)[1], full, rtol=1e-12)
        np.testing.assert_allclose(filter_valid(x, k, step=2)[1], full[::2, ::2], rtol=1e-12)
    wide = rng.integers(0, 256, (300, 601)).astype(np.float64)   # several blocks and chunks each way
    k = gaussian_kernel(11, 1.5)
    full = convolve2d(wide, np.outer(k, k), mode="valid")
    np.testing.assert_allclose(filter_valid(wide, k), full, rtol=1e-12)
    np.testing.assert_allclose(filter_valid(wide.T, k, step=2), full.T[::2, ::2], rtol=1e-12)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    gx, gy = sobel(x[0], "constant")
    np.testing.assert_array_equal(gx, convolve2d(x[0], h3, mode="same"))
    np.testing.assert_array_equal(gy, convolve2d(x[0], h1, mode="same"))
    ext = np.pad(x[0], 1, mode="reflect")
    gx, gy = sobel(x[0], "mirror")
    np.testing.assert_array_equal(gx, convolve2d(ext, h3, mode="valid"))
    np.testing.assert_array_equal(gy, convolve2d(ext, h1, mode="valid"))


def test_floats_in_0_1_are_fusekits_own_scale():
    """``compute(fuse([a, b]), [a, b])`` on images as read_image gives them: floats in [0, 1]."""
    from fusekit import fuse
    from fusekit.io import read_image

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    a, b = read_image(examples / "ir.png"), read_image(examples / "vi.png")
    fused = fuse([a, b], method="average")
    got = compute(fused, [a, b], metrics="en,mi,ssim,psnr")
    same = compute(fused * 255.0, [a * 255.0, b * 255.0], metrics="en,mi,ssim,psnr", data_range=255)
    assert {k: float(v) for k, v in got.items()} == pytest.approx({k: float(v) for k, v in same.items()},
                                                                   rel=1e-6)  # float32 vs float64 scaling
    assert 6.0 < got["en"] < 8.0  # read as 0-255 it was 0.27 bits
    as_bytes = compute(np.round(fused * 255).astype(np.uint8), [], metrics="en")["en"]
    assert got["en"] == pytest.approx(as_bytes, abs=0.05)


def test_pixels_outside_the_declared_range_are_refused_not_rescaled(pair):
    a, _ = pair
    with pytest.raises(InputError, match=r"outside 0\.\.1; .*pass data_range=255"):
        compute(a, [], metrics="en")                          # 0-255 floats without data_range
    with pytest.raises(InputError, match=r"outside 0\.\.100; give the data_range"):
        compute(a, [], metrics="en", data_range=100)
    with pytest.raises(InputError, match="int16 integer image has values -1"):
        compute(np.full((8, 8), -1, np.int16), [], metrics="en")
    with pytest.raises(InputError, match="NaN"):
        compute(np.full((8, 8), np.nan), [], metrics="en")
    edge = np.float32(1) + np.float32(1e-7)                   # float32 rounding above 1 is fine
    assert compute(np.full((8, 8), edge, np.float32), [], metrics="en")["en"] == 0.0
    assert compute(np.full((8, 8), 300, np.int64), [], metrics="en", data_range=1000)["en"] == 0.0


def test_profiles_state_their_conventions_as_data():
    std, cdd = PROFILES["standard"], PROFILES["cddfuse"]
    assert (std.mi_log_base, std.ssim_variant, std.qabf_variant, std.psnr_peak, std.ag_differences) == \
        (2.0, "wang", "paper", "255", "forward")
    assert (cdd.mi_log_base, cdd.ssim_variant, cdd.qabf_variant, cdd.psnr_peak, cdd.ag_differences) == \
        (math.e, "skimage-0.19", "script", "max-fused", "central")
    with pytest.raises(InputError, match="ssim_variant must be one of"):
        type(std)(name="x", summary="", reference="", ssim_variant="gaussian")


# -- releasing what a metric cached for itself (memory held by a triplet's metrics) -----------

@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_releasing_caches_changes_no_value(pair, profile):
    """compute() releases each built-in metric's private cache entries as it finishes; every
    value is the same, bit for bit, as with every entry kept (one context, nothing released)."""
    from fusekit.metrics.compute import evaluate_metric, make_context, resolve_metrics

    a, b = pair
    fused = (a + b) / 2
    prof = PROFILES[profile]
    metrics = resolve_metrics(None, profile=prof)
    ctx = make_context(fused, [a, b], prof, data_range=255)
    kept = {m.name: float(evaluate_metric(m, ctx)) for m in metrics}
    released = compute(fused, [a, b], profile=profile, data_range=255)
    assert {k: float(v) for k, v in released.items()} == kept


def test_releasing_drops_private_entries_and_shared_ones_after_their_last_reader(pair):
    from fusekit.metrics.base import SHARED_FAMILIES, families_needed, key_family
    from fusekit.metrics.compute import evaluate_metric, make_context, resolve_metrics

    a, b = pair
    prof = PROFILES["standard"]
    ctx = make_context((a + b) / 2, [a, b], prof, data_range=255)
    metrics = resolve_metrics(["qabf", "vif", "nabf", "en"], profile=prof)
    keeps = families_needed([m.name for m in metrics])
    assert keeps == [frozenset({"edges", "levels"}), frozenset({"edges", "levels"}), frozenset({"levels"}),
                     frozenset()]
    families = []
    for metric, keep in zip(metrics, keeps):
        with ctx.releasing(sources=True, keep=keep):
            evaluate_metric(metric, ctx)
        families.append({key_family(k) for k in (*ctx._cache, *ctx._source_cache)})
    assert families[0] == {"edges"}                    # Q^AB/F's Sobel maps, for N^AB/F
    assert families[1] == {"edges"}                    # VIF's statistics went
    assert families[2] == set()                        # no later reader of the Sobel maps
    assert families[3] == set()
    assert SHARED_FAMILIES >= {"edges", "levels"}
    # without ``sources`` the source cache keeps everything (further fused images reuse it)
    ctx2 = make_context((a + b) / 2, [a, b], prof, data_range=255)
    with ctx2.releasing(sources=False, keep=frozenset()):
        evaluate_metric(metrics[1], ctx2)
    assert ctx2._source_cache and not ctx2._cache


def test_plugin_metrics_keep_their_cache():
    from fusekit.metrics.compute import releases_cache

    prof = PROFILES["standard"]
    builtin = next(m for m in list_metrics() if m.name == "vif")
    plugin = Metric("mine", "mine", "", True, False, "test", lambda ctx: 1.0)
    assert releases_cache(builtin, prof) and not releases_cache(plugin, prof)


def test_compute_is_the_function_whatever_was_imported_first():
    """``from fusekit.metrics import compute`` after the submodule was imported gives the function."""
    import subprocess
    import sys

    code = ("from fusekit.metrics.compute import resolve_metrics\n"
            "import numpy as np\n"
            "from fusekit.metrics import compute\n"
            "a = np.zeros((8, 8))\n"
            "print(round(float(compute(a + 0.5, [a, a + 1], metrics='sd')['sd']), 3))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.0"
