"""``benchmarks/vifb_octave.py``: ranking logic, the kept results, and (with Octave and VIFB) the driver.

The kept CSVs under ``benchmarks/results/vifb/`` are enough for the ranking
tests. The Octave test needs GNU Octave with octave-image and a local VIFB
snapshot (``$VIFB_DIR``, else ``../vifb`` beside the repository); it skips
cleanly without them.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vifb_octave", REPO / "benchmarks" / "vifb_octave.py")
vo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vo)

HAVE_RESULTS = (vo.RESULTS / "published_means.csv").is_file() and (vo.RESULTS / "octave_per_image.csv").is_file()
needs_results = pytest.mark.skipif(not HAVE_RESULTS, reason="benchmarks/results/vifb not generated yet")


def test_ranks_direction_ties_and_nan():
    values = {"a": 3.0, "b": 1.0, "c": 3.0, "d": math.nan, "e": 2.0}
    assert vo.ranks(values, higher_better=True) == {"a": 1.5, "c": 1.5, "e": 3.0, "b": 4.0, "d": 5.0}
    assert vo.ranks(values, higher_better=False) == {"b": 1.0, "e": 2.0, "a": 3.5, "c": 3.5, "d": 5.0}


def test_rank_table_place_counts_strictly_better_methods():
    keys = list(vo.METRICS)
    # "good" is best on every metric, "bad" worst; "ours" sits between them everywhere.
    good = {k: (0.0 if not vo.METRICS[k][2] else 10.0) for k in keys}
    bad = {k: (10.0 if not vo.METRICS[k][2] else 0.0) for k in keys}
    ours = {k: 5.0 for k in keys}
    per_metric, mean_rank, place = vo.rank_table({"good": good, "bad": bad}, ours, "ours")
    assert mean_rank == {"good": 1.0, "ours": 2.0, "bad": 3.0}
    assert place == 2
    assert all(per_metric[k]["ours"] == 2.0 for k in keys)
    # Equal mean ranks share the place.
    _, mean_rank, place = vo.rank_table({"twin": dict(ours)}, dict(ours), "ours")
    assert mean_rank["ours"] == mean_rank["twin"] == 1.5 and place == 1


def test_the_thirteen_metrics_and_their_directions():
    assert len(vo.METRICS) == 13
    lower = sorted(v[0] for v in vo.METRICS.values() if not v[2])
    assert lower == ["CE", "Qcv", "RMSE"]  # VIFB paper: lower is better for these three only
    assert sorted(v[1] for v in vo.METRICS.values()) == sorted(
        ("ag", "ce", "ei", "en", "mi", "psnr", "qabf", "qcb", "qcv", "rmse", "sf", "ssim", "sd"))


@needs_results
def test_kept_results_are_complete_and_consistent():
    res = vo.load_results()
    assert len(res["published"]) == 25
    assert all(math.isfinite(v) for m in res["published"].values() for v in m.values())
    assert res["octave"], "no fusekit rows"
    for label, per_image in res["octave"].items():
        assert len(per_image) == 21, label
        assert all(set(v) == set(vo.METRICS) and all(math.isfinite(x) for x in v.values())
                   for v in per_image.values()), label
        ours = vo.label_means(per_image)
        _, mean_rank, place = vo.rank_table(res["published"], ours, label)
        assert 1.0 <= mean_rank[label] <= 26.0 and 1 <= place <= 26
        # The published methods' mean ranks over 26 entries average to the middle rank.
        assert sum(mean_rank.values()) / len(mean_rank) == pytest.approx(13.5)


@needs_results
def test_benchmarks_md_section_is_what_the_kept_results_render():
    text = (REPO / "BENCHMARKS.md").read_text()
    begin, end = f"<!-- begin {vo.MARK} -->", f"<!-- end {vo.MARK} -->"
    assert begin in text and end in text
    section = begin + text.split(begin, 1)[1].split(end, 1)[0] + end
    assert section.strip() == vo.render(vo.load_results()).strip()


@needs_results
def test_octave_check_against_published_matlab_values():
    """Where Octave rescored VIFB's own fused images, it matches VIFB's 5-digit MATLAB values."""
    check = vo.load_results()["check"]
    if not check:
        pytest.skip("no check rows kept")
    for row in check:
        assert float(row["rel_diff"]) < 1e-4, row


def _vifb_dir() -> Path | None:
    for candidate in (os.environ.get("VIFB_DIR"), REPO.parent / "vifb"):
        if candidate and (Path(candidate) / "metrics" / "metricsQcv.m").is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(shutil.which("octave") is None or _vifb_dir() is None,
                    reason="needs GNU Octave with octave-image and a VIFB snapshot ($VIFB_DIR)")
def test_octave_driver_reproduces_published_values(tmp_path):
    vifb = _vifb_dir()
    image, method = "carLight", "ADF"
    fused = vifb / "output" / "fused_images" / f"{image}_{method}.jpg"
    if not fused.is_file():
        pytest.skip("VIFB snapshot without output/fused_images")
    metrics = ["Psnr", "Variance", "Rmse", "Avg_gradient", "Ssim", "Qcb", "Qcv"]  # the fast ones, both stand-ins
    args = argparse.Namespace(cache=tmp_path, vifb=vifb, octave="octave")
    out = tmp_path / "t.tsv"
    vo.run_octave(args, vo.octave_jobs("vifb/ADF", [image], metrics, vifb, lambda i: fused), out)
    rows = vo.read_octave_tsv(out)
    assert [r["metric"] for r in rows] == metrics
    published = vo.published_per_image(vifb, [image], [method], metrics)
    for r in rows:
        assert not r["error"], r
        assert vo.rel(float(r["value"]), published[method, image, r["metric"]]) < 1e-4, r
    # A second call finds everything done and starts no Octave.
    assert vo.run_octave(args, vo.octave_jobs("vifb/ADF", [image], metrics, vifb, lambda i: fused), out) == 0.0
