"""Property-based tests (hypothesis) for the image reader and the metric functions.

Random shapes, dtypes, channel layouts and values, including degenerate
ones (constant, binary, one pixel): the reader round-trips what was
written or raises a one-line :class:`~fusekit.errors.InputError`; a metric
returns a finite number (PSNR: also the documented infinities) or raises a
one-line fusekit error, never another exception and never NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fusekit.errors import FusekitError, InputError  # noqa: E402
from fusekit.io import FusekitWarning, load_image, read_image  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: The documented metrics (README); plugins may add more.
METRICS = ("en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim", "psnr", "cc", "nabf")


def _pixels(seed: int, shape: tuple[int, ...], dtype: str, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    if kind == "constant":
        return np.full(shape, rng.integers(0, top + 1), dtype)
    if kind == "binary":
        return (rng.integers(0, 2, shape) * top).astype(dtype)
    if kind == "narrow":
        base = int(rng.integers(0, top - 3))
        return (base + rng.integers(0, 3, shape)).astype(dtype)
    return rng.integers(0, top + 1, shape, dtype=dtype)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 40), width=st.integers(1, 40),
       channels=st.sampled_from([0, 3, 4]), dtype=st.sampled_from(["uint8", "uint16"]),
       ext=st.sampled_from([".png", ".tif"]), kind=st.sampled_from(["random", "constant", "binary", "narrow"]))
def test_the_reader_round_trips_lossless_files(tmp_path_factory, seed, height, width, channels, dtype, ext, kind):
    import imageio.v3 as iio

    assume(not (ext == ".png" and dtype == "uint16" and channels))  # Pillow writes no 16-bit colour PNG
    shape = (height, width) if channels == 0 else (height, width, channels)
    raw = _pixels(seed, shape, dtype, kind)
    path = tmp_path_factory.mktemp("img") / f"x{ext}"
    iio.imwrite(path, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FusekitWarning)  # alpha dropped: expected for 4 channels
        loaded = load_image(path, near_grey="keep")
    data = loaded.data
    assert data.dtype == np.float32 and np.isfinite(data).all()
    assert 0.0 <= data.min() and data.max() <= 1.0
    assert loaded.bit_depth == (8 if dtype == "uint8" else 16)
    colour = raw if raw.ndim == 2 else raw[..., : 3 if channels >= 3 else 1]
    if colour.ndim == 3 and colour.shape[2] == 1:
        colour = colour[..., 0]
    if colour.ndim == 3 and np.array_equal(colour[..., 0], colour[..., 1]) and \
            np.array_equal(colour[..., 1], colour[..., 2]):
        colour = colour[..., 0]  # equal channels read as grey
    expected = colour.astype(np.float64) / np.iinfo(dtype).max
    assert data.shape == expected.shape
    np.testing.assert_allclose(data, expected, atol=1e-6)


@SETTINGS
@given(blob=st.binary(min_size=0, max_size=600), ext=st.sampled_from([".png", ".jpg", ".bmp", ".tif"]),
       keep_signature=st.booleans())
def test_the_reader_on_random_bytes_gives_an_image_or_one_line(tmp_path_factory, blob, ext, keep_signature):
    signatures = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".bmp": b"BM", ".tif": b"II*\x00"}
    path = tmp_path_factory.mktemp("fuzz") / f"x{ext}"
    path.write_bytes((signatures[ext] if keep_signature else b"") + blob)
    try:
        data = read_image(path)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and path.name in message
        return
    assert data.dtype == np.float32 and np.isfinite(data).all() and data.ndim in (2, 3)


def _image(seed: int, shape: tuple[int, int], kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "constant":
        return np.full(shape, rng.random())
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if kind == "black":
        return np.zeros(shape)
    return rng.random(shape)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("profile", ["standard", "cddfuse"])
def test_metrics_on_random_images_are_finite_or_a_one_line_error(metric, profile):
    from fusekit.metrics import compute

    kinds = st.sampled_from(["random", "constant", "binary", "black"])

    @SETTINGS
    @given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 64), width=st.integers(1, 64),
           n_sources=st.integers(1, 3), fused_kind=kinds, source_kind=kinds)
    def check(seed, height, width, n_sources, fused_kind, source_kind):
        fused = _image(seed, (height, width), fused_kind)
        sources = [_image(seed + 1 + i, (height, width), source_kind) for i in range(n_sources)]
        try:
            scores = compute(fused, sources, metrics=metric, profile=profile)
        except FusekitError as exc:
            assert "\n" not in str(exc)
            return
        value = float(scores[metric])
        assert not np.isnan(value), (metric, profile)
        # PSNR is documented as infinite when the fused image equals the sources (cddfuse: -inf for a black one)
        assert np.isfinite(value) or metric == "psnr", (metric, profile, value)

    check()
