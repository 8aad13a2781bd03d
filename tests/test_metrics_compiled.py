"""numba's metric kernels give the values of the numpy/scipy code (SSIM bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

from fusekit.io import read_image
from fusekit.metrics import compiled, compute
from fusekit.metrics.base import MetricContext
from fusekit.metrics.profiles import CDDFUSE
from fusekit.metrics.structural import ssim


def _with_kernels(monkeypatch, on: bool, fn):
    monkeypatch.setenv("FUSEKIT_NUMBA", "1" if on else "0")
    compiled._reset()
    try:
        return fn()
    finally:
        compiled._reset()


def _scenes(data_dir):
    rng = np.random.default_rng(5)
    out = []
    for task, dataset, a, b in (("ivif", "msrs", "ir", "vi"), ("mif", "harvard_mri_pet", "mri", "pet")):
        folder = data_dir / task / dataset / "test"
        name = sorted(p.name for p in (folder / a).iterdir())[0]
        src_a, src_b = read_image(folder / a / name), read_image(folder / b / name)
        grey_b = src_b if src_b.ndim == 2 else src_b.mean(axis=2)
        out.append((np.maximum(src_a, grey_b), src_a, src_b))
    noise = rng.integers(0, 256, (43, 57)).astype(np.uint8)
    out.append((noise // 2, noise, 255 - noise))
    flat = np.full((48, 48), 17, np.uint8)
    out.append((flat, flat, flat))
    return out


def test_switch_off_with_the_environment(monkeypatch):
    assert _with_kernels(monkeypatch, False, compiled.enabled) is False
    assert _with_kernels(monkeypatch, False, compiled.warm_up) is False


def test_off_by_default_so_a_first_run_never_waits_for_the_compiler(monkeypatch):
    import sys

    monkeypatch.delenv("FUSEKIT_NUMBA", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    compiled._reset()
    try:
        assert compiled.kernels() is None and not compiled.enabled()
        assert compiled.warm_up(metrics=["ssim", "vif"], profile="cddfuse") is False
        assert "off (the default" in compiled.status() and "FUSEKIT_NUMBA=1" in compiled.status()
        a = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (50, 1))
        compute(a, [a, a.T.copy()], metrics=["ssim", "vif", "qabf", "nabf"], profile="cddfuse")
        assert "numba" not in sys.modules                       # nothing imported it
    finally:
        compiled._reset()


@pytest.mark.parametrize("profile", ["cddfuse", "standard"])
def test_kernels_give_the_numpy_values(data_dir, monkeypatch, profile):
    pytest.importorskip("numba")
    scenes = _scenes(data_dir)

    def run():
        return [{k: float(v) for k, v in compute(f, [a, b], profile=profile, data_range=255).items()} for f, a, b in scenes]

    fast, plain = _with_kernels(monkeypatch, True, run), _with_kernels(monkeypatch, False, run)
    for got, want in zip(fast, plain):
        if profile == "cddfuse":
            assert got["ssim"] == want["ssim"]       # scikit-image's float32 SSIM: bit for bit
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-10, abs=1e-12), name


def test_box_mean_is_scipys_uniform_filter_on_integer_images():
    pytest.importorskip("numba")
    from scipy import ndimage

    from fusekit.metrics import _numba_kernels as kernels

    rng = np.random.default_rng(0)
    for shape in [(7, 7), (7, 30), (12, 9), (480, 640)]:
        x = rng.integers(0, 256, shape).astype(np.float32)
        y = rng.integers(0, 256, shape).astype(np.float32)
        assert np.array_equal(kernels.box_mean(x, x, 7, 0), ndimage.uniform_filter(x, 7))
        assert np.array_equal(kernels.box_mean(x, x, 7, 1), ndimage.uniform_filter(x * x, 7))
        assert np.array_equal(kernels.box_mean(x, y, 7, 2), ndimage.uniform_filter(x * y, 7))


def test_non_integer_images_take_the_scipy_path(monkeypatch):
    # exact window sums need integer images; the cddfuse profile always rounds, but a
    # hand-made context may not: the kernels must then step aside, not change the value
    rng = np.random.default_rng(2)
    images = [rng.random((40, 40)) * 255 for _ in range(3)]
    ctx = lambda: MetricContext(images[0], images[1:], CDDFUSE)  # noqa: E731
    fast = _with_kernels(monkeypatch, True, lambda: ssim(ctx()))
    plain = _with_kernels(monkeypatch, False, lambda: ssim(ctx()))
    assert fast == plain


def test_missing_numba_falls_back_and_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)            # import numba -> ImportError
    import fusekit.metrics

    monkeypatch.delitem(sys.modules, "fusekit.metrics._numba_kernels", raising=False)
    monkeypatch.delattr(fusekit.metrics, "_numba_kernels", raising=False)
    monkeypatch.delenv("FUSEKIT_NUMBA", raising=False)
    compiled._reset()
    assert compiled.available() is False
    assert "pip install 'fusekit[fast]'" in compiled.status()   # default: off, and how to get them
    monkeypatch.setenv("FUSEKIT_NUMBA", "1")                   # asked for, but numba is missing
    compiled._reset()
    try:
        assert compiled.kernels() is None
        assert "numba is not installed; pip install 'fusekit[fast]'" in compiled.status()
        a = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (50, 1))
        assert float(compute(a, [a, a.T.copy()], metrics=["ssim", "vif", "qabf"], profile="cddfuse")["ssim"]) > 0
    finally:
        compiled._reset()


def test_eval_list_metrics_reports_the_kernels(run_cli, monkeypatch):
    monkeypatch.setenv("FUSEKIT_NUMBA", "0")
    compiled._reset()
    result = run_cli(["eval", "--list-metrics"])
    compiled._reset()
    assert result.exit_code == 0
    assert "compiled metric kernels: off (FUSEKIT_NUMBA=0)" in result.output


def test_vif_log_sums_cannot_overflow():
    pytest.importorskip("numba")
    from fusekit.metrics import _numba_kernels as kernels

    rng = np.random.default_rng(4)
    for variance in (rng.random((64, 64)) * 16000, np.full((64, 64), 1e30), np.zeros((64, 64))):
        expected = float(np.log1p(variance / 2.0).sum())
        assert kernels.vif_denominator(variance, 2.0) == pytest.approx(expected, rel=1e-12)


def test_warm_up_says_why_a_first_run_pauses(monkeypatch):
    import time

    pytest.importorskip("numba")
    monkeypatch.setenv("FUSEKIT_NUMBA", "1")
    compiled._reset()
    messages: list[str] = []
    monkeypatch.setattr(compiled, "_load_all", lambda k, *a: time.sleep(0.5))     # a slow (first) load
    assert compiled.warm_up(notify=messages.append, after_s=0.05)
    assert len(messages) == 1 and "first run only" in messages[0]
    messages.clear()
    monkeypatch.setattr(compiled, "_load_all", lambda k, *a: None)                # a quick (cached) load
    assert compiled.warm_up(notify=messages.append, after_s=5.0)
    time.sleep(0.1)
    assert messages == []
    compiled._reset()


def test_eval_checks_the_dataset_before_compiling(run_cli, monkeypatch, tmp_path):
    calls: list[str] = []
    monkeypatch.setattr(compiled, "warm_up", lambda **kw: calls.append("warm_up"))
    (tmp_path / "ir").mkdir()                                   # one source folder: not a dataset
    result = run_cli(["eval", tmp_path, "-m", "average"])
    assert result.exit_code != 0 and f"error: {tmp_path}" in result.output   # names the folder
    assert calls == []                                           # failed at once, no compile first


def test_warm_up_loads_only_the_kernels_of_the_metrics_asked_for(monkeypatch):
    assert compiled.needed(["en", "sd", "mi", "qcb"], "cddfuse") == []
    assert compiled.needed(None, "cddfuse") == ["nabf", "qabf", "ssim", "vif"]
    assert compiled.needed(None, "vifb") == ["qabf", "ssim"]             # vifb defines no VIF or Nabf
    loaded: list = []
    monkeypatch.setenv("FUSEKIT_NUMBA", "1")
    compiled._reset()
    monkeypatch.setattr(compiled, "_load_all", lambda k, metrics, profile: loaded.append(list(metrics)))
    monkeypatch.setattr(compiled, "kernels", lambda: object())           # as if numba were there
    try:
        assert compiled.warm_up(metrics=["en", "sd"], profile="cddfuse") is False
        assert loaded == []                                              # nothing to load, numba untouched
        assert compiled.warm_up(metrics=["en", "SSIM"], profile="standard") is True
        assert loaded == [["ssim"]]
    finally:
        compiled._reset()
