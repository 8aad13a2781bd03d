"""Behaviour of the classic baselines on real benchmark images (../shared/data).

* Lytro multi-focus pairs: ``focus`` beats ``average`` on spatial frequency
  (SF) and average gradient (AG), and in every region where one source is
  clearly sharper the result is closer to that source.
* MEFB exposure pairs: ``exposure`` beats ``average`` on contrast (SD of the
  luminance) and leaves no clipped region that one source shows well.
* ``exposure`` agrees with OpenCV's ``createMergeMertens`` (test extra).

The metrics are small local helpers (the definitions of the fusion
literature), so these tests do not depend on :mod:`fusekit.metrics`. The
pairs are a few fixed ones; the statistics over all 100 MEFB pairs,
including the pairs where the clipping check fails, are in BENCHMARKS.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import fusekit
from fusekit.color import luminance
from fusekit.io import read_image

LYTRO = ["lytro_01.jpg", "lytro_05.jpg", "lytro_14.jpg"]
MEFB = ["507.tif", "AmikeusBeaverDam.tif", "House.png", "Balloons.png"]
MEFB_OPENCV = ["507.tif", "AirBellowsGap.tif", "House.png"]


def spatial_frequency(image: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2) with RF, CF the RMS of horizontal / vertical first differences."""
    image = image.astype(np.float64)
    rf2 = np.mean(np.diff(image, axis=1) ** 2)
    cf2 = np.mean(np.diff(image, axis=0) ** 2)
    return float(np.sqrt(rf2 + cf2))


def average_gradient(image: np.ndarray) -> float:
    """AG = mean of sqrt((dx^2 + dy^2) / 2) over the (H-1) x (W-1) interior."""
    image = image.astype(np.float64)
    dx = np.diff(image, axis=1)[:-1, :]
    dy = np.diff(image, axis=0)[:, :-1]
    return float(np.mean(np.sqrt((dx ** 2 + dy ** 2) / 2)))


def _pair(root, task_dir, first, second, name):
    return read_image(root / task_dir / first / name), read_image(root / task_dir / second / name)


@pytest.fixture(scope="module")
def lytro(data_dir):
    pairs = {}
    for name in LYTRO:
        a, b = _pair(data_dir, "mfif/lytro/test", "a", "b", name)
        pairs[name] = (luminance(a), luminance(b))
    return pairs


@pytest.mark.parametrize("name", LYTRO)
def test_focus_beats_average_on_sharpness(lytro, name):
    a, b = lytro[name]
    focus = fusekit.fuse([a, b], method="focus")
    average = fusekit.fuse([a, b], method="average")
    assert spatial_frequency(focus) > 1.3 * spatial_frequency(average)
    assert average_gradient(focus) > 1.3 * average_gradient(average)
    # as sharp as the sharper source overall (it combines the sharp parts of both)
    assert spatial_frequency(focus) > 0.95 * max(spatial_frequency(a), spatial_frequency(b))


@pytest.mark.parametrize("name", LYTRO)
def test_focus_follows_the_sharper_source_per_region(lytro, name):
    """In 32 x 32 blocks where one source is clearly sharper (SF ratio > 1.5),
    the result is closer to that source, and close in absolute terms."""
    a, b = lytro[name]
    fused = fusekit.fuse([a, b], method="focus")
    size = 32
    decisive = closer = 0
    errors = []
    for y in range(0, a.shape[0] - size + 1, size):
        for x in range(0, a.shape[1] - size + 1, size):
            block = (slice(y, y + size), slice(x, x + size))
            sa, sb = spatial_frequency(a[block]), spatial_frequency(b[block])
            if max(sa, sb) < 1.5 * min(sa, sb):
                continue
            sharp, blurred = (a, b) if sa > sb else (b, a)
            to_sharp = np.mean((fused[block] - sharp[block]) ** 2)
            to_blurred = np.mean((fused[block] - blurred[block]) ** 2)
            decisive += 1
            closer += to_sharp < to_blurred
            errors.append(np.sqrt(to_sharp))
    assert decisive >= 50
    assert closer / decisive >= 0.95
    assert np.median(errors) < 0.01   # median RMS error to the sharper source below 1 %


@pytest.mark.parametrize("name", MEFB)
def test_exposure_beats_average_on_contrast_without_clipping(data_dir, name):
    under, over = _pair(data_dir, "meif/mefb/test", "under", "over", name)
    fused = fusekit.fuse([under, over], method="exposure")
    average = fusekit.fuse([under, over], method="average")
    y, y_avg, y_under, y_over = (luminance(im) for im in (fused, average, under, over))
    assert y.std() > 1.05 * y_avg.std()
    # clipped in the result although one source shows the place well
    clipped = (y <= 1 / 255) | (y >= 254 / 255)
    shown = ((y_under > 0.2) & (y_under < 0.8)) | ((y_over > 0.2) & (y_over < 0.8))
    lost = ndimage.binary_opening(clipped & shown, iterations=2)
    labels, count = ndimage.label(lost)
    largest = np.bincount(labels.ravel())[1:].max() if count else 0
    assert largest < 0.005 * y.size, f"clipped region of {largest} pixels"


def test_exposure_agrees_with_opencv_mertens(data_dir):
    """Same paper, same defaults (OpenCV's exposure_weight default is 0; we pass 1)."""
    cv2 = pytest.importorskip("cv2")
    merge = cv2.createMergeMertens(1.0, 1.0, 1.0)
    for name in MEFB_OPENCV:
        under, over = _pair(data_dir, "meif/mefb/test", "under", "over", name)
        ours = fusekit.fuse([under, over], method="exposure")
        as_uint8 = [np.ascontiguousarray(np.round(im * 255).astype(np.uint8)) for im in (under, over)]
        theirs = np.clip(merge.process(as_uint8), 0, 1)   # fed RGB, so its RGB2GRAY is right
        psnr = 10 * np.log10(1.0 / np.mean((ours - theirs) ** 2))
        assert psnr > 50, f"{name}: PSNR {psnr:.1f} dB against OpenCV"
