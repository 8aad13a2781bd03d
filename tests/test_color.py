"""Colour pipeline rules: grey+grey, grey+colour, colour+colour."""

from __future__ import annotations

import numpy as np

import fusekit
from fusekit import color


def test_ycbcr_roundtrip_and_bt601_luma():
    rng = np.random.default_rng(1)
    rgb = rng.random((10, 12, 3), dtype=np.float32)
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    np.testing.assert_allclose(color.luminance(rgb),
                               0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], atol=1e-6)


def test_grey_plus_grey_gives_grey():
    a = np.full((6, 6), 0.2, np.float32)
    b = np.full((6, 6), 0.6, np.float32)
    fused = fusekit.fuse([a, b], method="average")
    assert fused.shape == (6, 6)
    np.testing.assert_allclose(fused, 0.4, atol=1e-6)


def test_grey_plus_colour_keeps_colour_chroma_and_fuses_luma(demo_pair):
    ir, vi = demo_pair
    fused = fusekit.fuse([ir, vi], method="average")
    assert fused.shape == vi.shape
    ycc_v = color.rgb_to_ycbcr(vi)
    expected_y = (ir + color.luminance(vi)) / 2
    expected = np.concatenate([expected_y[..., None], ycc_v[..., 1:]], axis=2)
    shifted = expected - np.array([0, 0.5, 0.5], np.float32)
    unclipped = shifted @ np.linalg.inv(color._RGB_TO_YCBCR).T
    in_gamut = ((unclipped >= 0) & (unclipped <= 1)).all(axis=2)
    assert in_gamut.mean() > 0.9
    np.testing.assert_allclose(fused[in_gamut], unclipped[in_gamut], atol=2e-3)


def test_colour_plus_colour_prefers_the_more_saturated_chroma():
    red = np.zeros((4, 4, 3), np.float32)
    red[..., 0] = 0.8
    faint = np.full((4, 4, 3), 0.5, np.float32)
    faint[..., 2] = 0.55                       # almost neutral
    chroma = color.fuse_chroma([red, faint])
    c_red = color.rgb_to_ycbcr(red)[..., 1:]
    c_faint = color.rgb_to_ycbcr(faint)[..., 1:]
    w_red, w_faint = np.abs(c_red - 0.5), np.abs(c_faint - 0.5)
    np.testing.assert_allclose(chroma, (c_red * w_red + c_faint * w_faint) / (w_red + w_faint), atol=1e-6)
    # the result is much closer to red's chroma than to the faint one
    assert np.abs(chroma - c_red).max() < np.abs(chroma - c_faint).max()


def test_neutral_colour_sources_give_neutral_chroma():
    a = np.full((3, 3, 3), 0.3, np.float32)
    a[0, 0] = (0.3, 0.3, 0.31)
    chroma = color.fuse_chroma([a, a.copy()])
    assert np.isfinite(chroma).all()
