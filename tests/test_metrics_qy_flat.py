"""Q_Y on images with flat areas: exact zero variance in flat windows, the same on both filter paths."""

from __future__ import annotations

import numpy as np
import pytest

from fusekit.api import fuse
from fusekit.io import read_image
from fusekit.metrics import compiled, compute
from fusekit.metrics.structural import _flat_windows

from .conftest import require_data


def _qy(monkeypatch, numba: bool, fused, sources, profile):
    monkeypatch.setenv("FUSEKIT_NUMBA", "1" if numba else "0")
    compiled._reset()
    try:
        return float(compute(fused, sources, metrics="qy", profile=profile)["qy"])
    finally:
        compiled._reset()


@pytest.fixture(scope="module")
def mefb_507():
    """MEFB scene 507 (large saturated and black areas) and its ``max`` fusion, as an 8-bit PNG would hold it."""
    folder = require_data("meif", "mefb", "test")
    a, b = read_image(folder / "under" / "507.tif"), read_image(folder / "over" / "507.tif")
    fused = np.round(fuse([a, b], "max") * 255) / 255
    return fused.astype(np.float32), a, b


@pytest.mark.parametrize("profile", ["cddfuse", "standard"])
def test_flat_areas_give_the_same_value_on_both_paths_and_stay_in_range(mefb_507, monkeypatch, profile):
    fused, a, b = mefb_507
    plain = _qy(monkeypatch, False, fused, [a, b], profile)
    assert 0.0 <= plain <= 1.0           # before: 0.8657 (numpy), 384.4 (numba) under cddfuse
    if compiled.available():
        assert _qy(monkeypatch, True, fused, [a, b], profile) == pytest.approx(plain, rel=1e-9)


def test_flat_windows_are_those_whose_maximum_is_their_minimum():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (20, 23)).astype(float)
    x[2:12, 4:15] = 7.0
    k = 7
    want = np.array([[np.ptp(x[i:i + k, j:j + k]) == 0 for j in range(x.shape[1] - k + 1)]
                     for i in range(x.shape[0] - k + 1)])
    got = _flat_windows(x, k)
    assert got.shape == want.shape and (got == want).all() and got.sum() == 4 * 5


def test_flat_sources_and_fused_give_the_luminance_term():
    # every window flat: SSIM is (2 m_a m_b + C) / (m_a^2 + m_b^2 + C); l = 1/2 where both sources are flat
    a, b, f = np.full((16, 16), 100.0), np.full((16, 16), 100.0), np.full((16, 16), 80.0)
    lum = 2 * 100 * 80 / (100 ** 2 + 80 ** 2)
    assert compute(f, [a, b], metrics="qy", data_range=255)["qy"] == pytest.approx(lum, rel=1e-12)
    # a flat fused image over textured sources: SSIM about 0 wherever the sources vary
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (16, 16)).astype(float)
    assert abs(compute(f, [t, 255 - t], metrics="qy", data_range=255)["qy"]) < 1e-9
