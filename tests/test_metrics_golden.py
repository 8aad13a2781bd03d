"""The ``cddfuse`` profile against values produced by CDDFuse's own ``Evaluator.py``.

Provenance of the golden values: ``shared/golden/README.md`` (script commit,
library versions, how images were read).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from fusekit.io import read_image
from fusekit.metrics import compute
from fusekit.metrics.profiles import CDDFUSE

from .conftest import DATA, DATA_HINT, require_data

#: The golden values live beside the benchmark data (``$FUSEKIT_DATA/../golden``, ``../shared/golden``).
GOLDEN_DIR = DATA.parent / "golden"
GOLDEN = GOLDEN_DIR / "cddfuse_profile.csv"
METRICS = ("en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim", "psnr", "cc")

if not GOLDEN.exists():  # pragma: no cover - depends on the checkout
    pytest.skip(f"golden values {GOLDEN} not found (they sit in golden/ beside the benchmark data); "
                f"{DATA_HINT}", allow_module_level=True)

ROWS = list(csv.DictReader(GOLDEN.open()))


def _load(row: dict[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = CDDFUSE.prepare(read_image(require_data(row["source_a"])), 1.0)
    b = CDDFUSE.prepare(read_image(require_data(row["source_b"])), 1.0)
    f = CDDFUSE.prepare(read_image(GOLDEN_DIR / row["fused"]), 1.0)
    return f, a, b


@pytest.mark.parametrize("row", ROWS, ids=[Path(r["fused"]).stem for r in ROWS])
def test_cddfuse_profile_reproduces_the_script(row, metric_kernels):
    f, a, b = _load(row)
    values = compute(f, [a, b], metrics=METRICS, profile="cddfuse", data_range=255)
    for name in METRICS:
        expected = float(row[name])
        if math.isnan(expected):
            # the script's 0/0: fusekit counts a correlation with a constant image as 0
            assert name == "scd" and np.ptp(f - b) == 0
            r = np.corrcoef((f - a).ravel(), b.ravel())[0, 1]
            assert values[name] == pytest.approx(r, rel=1e-9)
            continue
        assert values[name] == pytest.approx(expected, rel=1e-5), name
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2
    assert mse == pytest.approx(float(row["mse"]), rel=1e-5)


def test_grey_conversion_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    for rel in ("ivif/roadscene/test/vi/FLIR_00211.jpg", "meif/mefb/test/under/507.tif",
                "mif/harvard_mri_pet/test/pet/14.png"):
        path = require_data(rel)
        expected = np.round(cv2.cvtColor(cv2.imread(str(path)).astype(np.float32), cv2.COLOR_BGR2GRAY))
        np.testing.assert_array_equal(CDDFUSE.prepare(read_image(path), 1.0), expected)


def test_standard_profile_differs_only_where_documented():
    row = next(r for r in ROWS if r["case"] == "tno07")
    f, a, b = _load(row)
    std = compute(f, [a, b], metrics=METRICS, profile="standard", data_range=255)
    cdd = compute(f, [a, b], metrics=METRICS, profile="cddfuse", data_range=255)
    for name in ("en", "sd", "sf", "scd", "vif", "cc"):  # same definitions: same numbers
        assert std[name] == pytest.approx(cdd[name], rel=1e-12), name
        assert std[name] == pytest.approx(float(row[name]), rel=1e-5), name
    assert std["mi"] == pytest.approx(cdd["mi"] / math.log(2.0), rel=1e-12)  # bits vs nats
    assert std["mi"] == pytest.approx(float(row["mi"]) / math.log(2.0), rel=1e-5)
    for name in ("ag", "ssim", "psnr", "qabf"):
        assert std[name] != pytest.approx(cdd[name], rel=1e-6), name


def test_near_grey_rgb_keeps_opencv_grey_conversion(tmp_path):
    """JPEG-noisy grey stored as RGB: read with near_grey="keep", converted like OpenCV."""
    cv2 = pytest.importorskip("cv2")
    from fusekit.io import write_image

    rng = np.random.default_rng(1)
    grey = rng.integers(2, 250, (32, 32))
    rgb = np.stack([grey, grey + rng.integers(0, 3, grey.shape), grey - 1], axis=2).astype(np.uint8)
    path = write_image(tmp_path / "near_grey.png", rgb / 255.0)
    expected = np.round(cv2.cvtColor(cv2.imread(str(path)).astype(np.float32), cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(CDDFUSE.prepare(read_image(path, near_grey="keep"), 1.0), expected)
