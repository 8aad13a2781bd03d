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
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# ----------------------------------------------------------------------------- bad input (no Octave needed)

SCRIPT = REPO / "benchmarks" / "vifb_octave.py"


def fake_vifb(root: Path, images=("carLight", "fight"), size=(12, 10)) -> Path:
    """A VIFB-shaped folder: configs, the 13 metric files (empty), 2 JPEG pairs, the output folders."""
    from PIL import Image

    (root / "util").mkdir(parents=True)
    names = list(images) + [f"img{i}" for i in range(21 - len(images))]
    entry = "struct('name', '{}')"
    (root / "util" / "configImgsVI.m").write_text("\n".join(entry.format(n) for n in names))
    (root / "util" / "configMethods.m").write_text("\n".join(entry.format(m) for m in ("ADF", "CBF")))
    (root / "util" / "configMetrics.m").write_text("\n".join(entry.format(k) for k in vo.METRICS))
    (root / "metrics").mkdir()
    for k in vo.METRICS:
        (root / "metrics" / f"metrics{k}.m").write_text("% stub\n")
    for modality in ("IR", "VI"):
        (root / "input" / modality).mkdir(parents=True)
        for n in names:
            Image.new("L" if modality == "IR" else "RGB", size).save(root / "input" / modality / f"{n}.jpg")
    (root / "output" / "evaluation_metrics_single").mkdir(parents=True)
    (root / "output" / "fused_images").mkdir()
    return root


def run_script(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def one_line_error(proc, *needles) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_octave_not_installed_is_one_line(tmp_path):
    vifb = fake_vifb(tmp_path / "vifb")
    proc = run_script("run", "--vifb", vifb, "--octave", tmp_path / "no-octave", "--nice", "0",
                      "--results", tmp_path / "res", "--cache", tmp_path / "cache")
    one_line_error(proc, "no-octave", "GNU Octave not found", "apt-get install octave")
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("damage", ["missing-folder", "not-vifb", "no-metric-file", "no-input-pair",
                                    "no-published-values"])
def test_missing_or_wrong_vifb_folder_is_one_line(tmp_path, damage):
    vifb = tmp_path / "vifb"
    if damage != "missing-folder":
        fake_vifb(vifb)
    expect = str(vifb)
    if damage == "not-vifb":
        vifb = vifb / "metrics"  # a folder, but not the snapshot's root
        expect = str(vifb / "util")
    elif damage == "no-metric-file":
        (vifb / "metrics" / "metricsQcv.m").unlink()
        expect = "metricsQcv.m"
    elif damage == "no-input-pair":
        (vifb / "input" / "VI" / "fight.jpg").unlink()
        expect = "fight.jpg"
    elif damage == "no-published-values":
        (vifb / "output" / "evaluation_metrics_single").rmdir()
        expect = "evaluation_metrics_single"
    fake_octave = shutil.which("true")  # found, never run: the folder is checked first
    proc = run_script("run", "--vifb", vifb, "--octave", fake_octave, "--nice", "0",
                      "--results", tmp_path / "res", "--cache", tmp_path / "cache")
    one_line_error(proc, expect, "xingchenzhang/VIFB")
    assert not (tmp_path / "res").exists()


def test_unknown_variant_and_check_method_are_one_line(tmp_path):
    """Before: an unknown --variant ranked nothing, overwrote the kept CSVs with empty ones, then crashed."""
    vifb = fake_vifb(tmp_path / "vifb")
    common = ["run", "--vifb", vifb, "--octave", shutil.which("true"), "--nice", "0",
              "--results", tmp_path / "res", "--cache", tmp_path / "cache"]
    one_line_error(run_script(*common, "--check", "none", "--variant", "nonesuch"), "--variant nonesuch", "shipped")
    one_line_error(run_script(*common, "--check", "XYZ"), "--check XYZ", "ADF")
    # a method of the config whose published images the snapshot lacks
    one_line_error(run_script(*common, "--check", "CBF"), "carLight_CBF.jpg", "--check none")
    assert not (tmp_path / "res").exists()


def test_check_images_must_be_positive(tmp_path):
    proc = run_script("run", "--vifb", tmp_path, "--check-images", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--check-images" in proc.stderr


@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong-size", "not-an-image"])
def test_bad_fused_image_is_one_line_naming_it(tmp_path, damage):
    from PIL import Image

    vifb = fake_vifb(tmp_path / "vifb")
    images, _, _ = vo.vifb_config(vifb)
    folder = tmp_path / "fused"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in images:
        Image.fromarray((rng.random((10, 12, 3)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    vo.check_fused_images(folder, "png", images, vifb)  # all good: no error
    bad = folder / "fight.png"
    if damage == "missing":
        bad.unlink()
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif damage == "wrong-size":
        Image.new("RGB", (11, 10)).save(bad)
    else:
        bad.write_text("not a png")
    with pytest.raises(SystemExit) as err:
        vo.check_fused_images(folder, "png", images, vifb)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message
    assert ("rerun" in message) and (damage != "wrong-size" or "11 x 10" in message)


def test_cached_truncated_fused_image_stops_before_octave(tmp_path):
    """A fused folder that looks complete but holds a truncated PNG: stopped, named, before any JPEG is made."""
    from PIL import Image

    vifb = fake_vifb(tmp_path / "vifb")
    images, _, _ = vo.vifb_config(vifb)
    args = argparse.Namespace(cache=tmp_path / "cache", forms=["jpeg75", "png"])
    out = args.cache / "fused" / "ivif-fixed-abc"
    out.mkdir(parents=True)
    for name in images:
        Image.new("RGB", (12, 10), (90, 90, 90)).save(out / f"{name}.png")
    bad = out / "carLight.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(SystemExit, match="carLight.png"):
        vo.stage_fuse(args, vifb, images, [("ivif/fixed", ["--weights", "fixed"], "abc")])
    assert not (out.with_name(out.name + "-jpeg75")).exists()


def test_results_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "res" / "octave_per_image.csv"
    vo.write_csv(target, ["a", "b"], [[1, 2]])
    assert target.read_text() == "a,b\n1,2\n"

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vo.os, "replace", broken)
    with pytest.raises(OSError):
        vo.write_csv(target, ["a", "b"], [[3, 4]] * 1000)
    assert target.read_text() == "a,b\n1,2\n"  # the old file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["octave_per_image.csv"]  # no temporary left


def test_a_line_octave_did_not_finish_is_dropped_before_resuming(tmp_path):
    tsv = tmp_path / "ours.tsv"
    full = "ivif/fixed\tcarLight\tPsnr\t60.5\t0\t0.1\t3/1/3\t\n"
    tsv.write_text(full + "ivif/fixed\tcarLight\tSsim\t0.7")
    vo.drop_partial_line(tsv)
    assert tsv.read_text() == full
    assert [r["metric"] for r in vo.read_octave_tsv(tsv)] == ["Psnr"]


def test_table_without_kept_results_is_one_line(tmp_path):
    proc = run_script("table", "--results", tmp_path / "nothing", "--no-write")
    one_line_error(proc, "published_means.csv", "vifb_octave.py run")
