"""numpy's exact window filters give scipy.ndimage's values bit for bit (no scipy.ndimage import)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fusekit.metrics.exact_filters import EXACT_LIMIT, box_mean, correlate_zero, correlate_zero_pair, integer_valued
from fusekit.metrics.perceptual import _CB_G1, _CB_G2

SHAPES = [(1, 1), (2, 9), (3, 5), (7, 7), (7, 30), (12, 9), (65, 64), (130, 1500), (480, 640)]


@pytest.mark.parametrize("shape", SHAPES)
def test_box_mean_is_scipys_uniform_filter_on_integer_images(shape):
    from scipy import ndimage

    rng = np.random.default_rng(sum(shape))
    x = rng.integers(0, 256, shape).astype(np.float32)
    y = rng.integers(0, 256, shape).astype(np.float32)
    edge = rng.integers(-int(EXACT_LIMIT), int(EXACT_LIMIT) + 1, shape).astype(np.float32)
    for p in (x, x * x, x * y, edge, edge * edge, edge * x):
        assert np.array_equal(box_mean(p, 7), ndimage.uniform_filter(p, 7))
    for k in (3, 5, 11):
        assert np.array_equal(box_mean(x * y, k), ndimage.uniform_filter(x * y, k))


@pytest.mark.parametrize("shape", SHAPES)
def test_correlate_zero_is_scipys_correlate1d(shape):
    from scipy import ndimage

    rng = np.random.default_rng(sum(shape) + 1)
    image = rng.standard_normal(shape) * 100
    for taps in (_CB_G1, _CB_G2, np.array([0.25, 0.5, 0.25]), np.array([1.0])):
        expected = ndimage.correlate1d(ndimage.correlate1d(image, taps, 0, mode="constant"),
                                       taps, 1, mode="constant")
        assert np.array_equal(correlate_zero(image, taps), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_correlate_zero_pair_is_two_correlate_zero_bit_for_bit(shape):
    # Q_CB's two windows share the first pass's pair sums; each output keeps scipy's operations
    from scipy import ndimage

    rng = np.random.default_rng(sum(shape) + 2)
    image = rng.standard_normal(shape) * 100
    narrow, wide = correlate_zero_pair(image, _CB_G1, _CB_G2)
    for taps, got in ((_CB_G1, narrow), (_CB_G2, wide)):
        expected = ndimage.correlate1d(ndimage.correlate1d(image, taps, 0, mode="constant"),
                                       taps, 1, mode="constant")
        assert np.array_equal(got, expected)
        assert np.array_equal(got, correlate_zero(image, taps))
    alone, none = correlate_zero_pair(image, _CB_G2, None)
    assert none is None and np.array_equal(alone, wide)


def test_correlate_zero_pair_refuses_kernels_of_two_lengths():
    with pytest.raises(ValueError, match="one length"):
        correlate_zero_pair(np.zeros((4, 4)), np.array([1.0]), np.array([0.25, 0.5, 0.25]))
    with pytest.raises(ValueError, match="symmetric"):
        correlate_zero_pair(np.zeros((4, 4)), np.array([1.0]), np.array([1.0, 2.0, 3.0]))


def test_correlate_zero_refuses_asymmetric_kernels():
    with pytest.raises(ValueError, match="symmetric"):
        correlate_zero(np.zeros((4, 4)), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="symmetric"):
        correlate_zero(np.zeros((4, 4)), np.array([1.0, 1.0]))


def test_integer_valued():
    assert integer_valued(np.array([0.0, 255.0, -3.0], np.float32))
    assert integer_valued(np.zeros((0, 3)))
    assert not integer_valued(np.array([1.5]))
    assert not integer_valued(np.array([np.nan]))
    assert not integer_valued(np.array([np.inf]))
    assert not integer_valued(np.array([EXACT_LIMIT + 1]))


def test_default_metric_sets_do_not_import_scipy_ndimage():
    # importing scipy.ndimage costs about 0.2 s of CPU, more than the metrics of an image
    code = ("import sys, numpy as np\n"
            "from fusekit.metrics import compute\n"
            "rng = np.random.default_rng(0)\n"
            "a, b = (rng.integers(0, 256, (64, 80)).astype(np.uint8) for _ in range(2))\n"
            "for p in ('standard', 'cddfuse'):\n"
            "    compute(a // 2 + b // 2, [a, b], profile=p)\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy.ndimage')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "FUSEKIT_NUMBA": "0"})
    assert out.stdout.strip() == "[]"
