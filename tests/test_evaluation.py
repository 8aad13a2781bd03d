"""fusekit.evaluate: dataset discovery, fused folders, cached methods, executors, reports."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import fusekit
from fusekit.errors import InputError, UnknownNameError
from fusekit.evaluation import EvaluationReport, find_dataset
from fusekit.io import read_image, write_image
from fusekit.metrics import compute

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"  # real images in the repository
NAMES = ("01", "07", "13")
#: where each scene is cropped from the demo pair (top, left): three "scenes" and a lonely infrared one
CORNERS = {"01": (100, 100), "07": (200, 300), "13": (300, 450), "lonely": (50, 500)}
METRICS = "en,mi,ssim,cc,qabf"


def _crop(path: Path, name: str) -> np.ndarray:
    from fusekit.color import luminance

    top, left = CORNERS[name]
    image = read_image(path)
    image = luminance(image) if image.ndim == 3 else image  # grey, like the TNO pairs these stand for
    return image[top:top + 48, left:left + 64]  # 48 x 64 crop of a real image


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """ir/ vi/ crops of the infrared/visible demo pair as three scenes, plus an infrared image without a partner."""
    root = tmp_path / "tno"
    for name in NAMES:
        for mod in ("ir", "vi"):
            write_image(root / mod / f"{name}.png", _crop(EXAMPLES / f"{mod}.png", name))
    write_image(root / "ir" / "lonely.png", _crop(EXAMPLES / "ir.png", "lonely"))
    return root


def _average_folder(dataset: Path, out: Path, names=NAMES, ext=".png") -> Path:
    for name in names:
        a, b = (read_image(dataset / m / f"{name}.png") for m in ("ir", "vi"))
        write_image(out / f"{name}{ext}", (a + b) / 2)
    return out


def test_layout_detection_and_source_order(tmp_path: Path):
    for mods, expected, task in ((("vi", "ir"), ("ir", "vi"), "ivif"),
                                 (("mri", "pet"), ("pet", "mri"), "mif"),
                                 (("b", "a"), ("a", "b"), "mfif"),
                                 (("over", "under"), ("under", "over"), "meif")):
        root = tmp_path / "-".join(mods)
        for m in mods:
            (root / m).mkdir(parents=True)
            (root / m / "x.png").write_bytes(b"")
        ds = find_dataset(root)
        assert ds.modalities == expected and ds.task == task
        assert list(ds.items) == ["x"]
    custom = find_dataset(tmp_path / "mri-pet", sources="mri,pet")
    assert custom.modalities == ("mri", "pet")


def test_dataset_errors(tmp_path: Path):
    (tmp_path / "left").mkdir()
    (tmp_path / "right").mkdir()
    with pytest.raises(InputError, match="--sources"):
        find_dataset(tmp_path)
    (tmp_path / "left" / "a.png").write_bytes(b"")
    (tmp_path / "right" / "b.png").write_bytes(b"")
    with pytest.raises(InputError, match="no image name is shared"):
        find_dataset(tmp_path, sources="left,right")
    with pytest.raises(InputError, match="no sub-folder 'up'"):
        find_dataset(tmp_path, sources="left,up")


def test_fused_folder_rows_summary_and_failures(dataset: Path, tmp_path: Path):
    fused = _average_folder(dataset, tmp_path / "mine", names=NAMES[:2], ext=".jpg")
    bad = read_image(dataset / "ir" / "13.png")[:-4]
    write_image(fused / "13.png", bad)                       # wrong size
    report = fusekit.evaluate(dataset, fused=fused, metrics=METRICS)
    assert isinstance(report, EvaluationReport)
    assert report.methods == ["mine"] and report.sources == ("ir", "vi")
    assert [r["image"] for r in report.rows] == ["01", "07"]
    failures = {f.image: f for f in report.failures}
    assert set(failures) == {"lonely", "13"}
    assert "vi/" in failures["lonely"].message
    assert "one size" in failures["13"].message and failures["13"].method == "mine"
    stats = report.summary()["mine"]
    values = [r["mi"] for r in report.rows]
    assert stats["mi"].mean == pytest.approx(np.mean(values)) and stats["mi"].n == 2
    assert stats["mi"].std == pytest.approx(np.std(values))
    # values equal compute() on the same files (fused read back from JPEG)
    a, b = (read_image(dataset / m / "01.png") for m in ("ir", "vi"))
    direct = compute(read_image(fused / "01.jpg"), [a, b], metrics=METRICS,
                                     data_range=1.0)
    assert report.rows[0]["ssim"] == pytest.approx(float(direct["ssim"]))


def test_missing_fused_image_is_reported_per_image(dataset: Path, tmp_path: Path):
    fused = _average_folder(dataset, tmp_path / "partial", names=NAMES[:1])
    report = fusekit.evaluate(dataset, fused=fused, metrics="en")
    missing = [f for f in report.failures if f.method == "partial"]
    assert {f.image for f in missing} == {"07", "13"}
    assert all("no fused image" in f.message for f in missing)
    assert len(report.rows) == 1


def test_methods_are_cached_and_runs_resume(dataset: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = fusekit.evaluate(dataset, methods=["average", "max"], metrics=METRICS, cache_dir=cache)
    assert first.produced == 6 and first.methods == ["average", "max"]
    assert len(list(cache.rglob("*.png"))) == 6
    again = fusekit.evaluate(dataset, methods=["average", "max"], metrics=METRICS, cache_dir=cache)
    assert again.produced == 0 and again.rows == first.rows
    victim = next(p for p in cache.rglob("07.png") if p.parent.name == "average")
    victim.unlink()                                           # as if interrupted before it was written
    resumed = fusekit.evaluate(dataset, methods=["average"], metrics=METRICS, cache_dir=cache)
    assert resumed.produced == 1
    assert resumed.rows == [r for r in first.rows if r["method"] == "average"]


def test_methods_scored_together_equal_each_alone(dataset: Path, tmp_path: Path):
    avg = _average_folder(dataset, tmp_path / "avg")
    other = _average_folder(dataset, tmp_path / "other", ext=".jpg")
    write_image(other / "13.png", read_image(dataset / "ir" / "13.png")[:-4])   # one bad image
    (other / "13.jpg").unlink()
    together = fusekit.evaluate(dataset, fused=[avg, other])
    alone = {label: fusekit.evaluate(dataset, fused=folder) for label, folder in (("avg", avg), ("other", other))}
    assert together.rows == alone["avg"].rows + alone["other"].rows
    bad = [f for f in together.failures if f.image == "13"]
    assert [(f.method, "one size" in f.message) for f in bad] == [("other", True)]
    assert any(r["image"] == "13" and r["method"] == "avg" for r in together.rows)


def test_parallel_and_custom_executor_give_the_same_report(dataset: Path, tmp_path: Path):
    fused = _average_folder(dataset, tmp_path / "avg")
    serial = fusekit.evaluate(dataset, fused=fused, metrics=METRICS)
    pooled = fusekit.evaluate(dataset, fused=fused, metrics=METRICS, jobs=2)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:   # any concurrent.futures executor (e.g. Dask's)
        threaded = fusekit.evaluate(dataset, fused=fused, metrics=METRICS, executor=pool)
    assert pooled.rows == serial.rows == threaded.rows
    assert [str(f) for f in pooled.failures] == [str(f) for f in serial.failures]


def test_constant_fused_image_has_no_nan(dataset: Path, tmp_path: Path):
    out = tmp_path / "flat"
    for name in NAMES:
        write_image(out / f"{name}.png", np.full((48, 64), 0.5, np.float32))
    report = fusekit.evaluate(dataset, fused=out, metrics="cc,scd,vif,ssim,psnr")
    assert len(report.rows) == 3
    assert all(r["cc"] == 0.0 and r["vif"] == 0.0 for r in report.rows)
    assert not any(math.isnan(v) for r in report.rows for k, v in r.items() if k not in ("image", "method"))


def test_report_formats(dataset: Path, tmp_path: Path):
    fused = _average_folder(dataset, tmp_path / "avg")
    report = fusekit.evaluate(dataset, fused=fused, metrics="en,mi,nabf", profile="cddfuse")
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["image"] for r in rows] == list(NAMES)
    assert set(rows[0]) == {"image", "method", "en", "mi", "nabf"}
    assert float(rows[0]["mi"]) == report.rows[0]["mi"]
    data = json.loads(report.to_json())
    assert data["profile"]["name"] == "cddfuse"
    assert {m["name"]: m["unit"] for m in data["metrics"]}["mi"] == "nats"
    assert data["summary"]["avg"]["en"]["n"] == 3
    assert data["failures"][0]["image"] == "lonely"
    md = report.to_markdown()
    assert "| avg |" in md and "MI ↑ (nats)" in md and "## Failures" in md
    table = report.format_table()
    assert "profile cddfuse" in table and "Nabf ↓" in table and "±" in table
    assert "luminance" in table
    path = report.write(tmp_path / "out" / "r.json")
    assert json.loads(path.read_text())["rows"][0]["image"] == "01"


def test_unknown_names_fail_early(dataset: Path, tmp_path: Path):
    fused = _average_folder(dataset, tmp_path / "avg", names=NAMES[:1])
    with pytest.raises(UnknownNameError, match="did you mean 'ssim'"):
        fusekit.evaluate(dataset, fused=fused, metrics="ssin")
    with pytest.raises(UnknownNameError, match="did you mean 'cddfuse'"):
        fusekit.evaluate(dataset, fused=fused, profile="cdfuse")
    with pytest.raises(UnknownNameError, match="did you mean 'average'"):
        fusekit.evaluate(dataset, methods=["averag"], cache_dir=tmp_path)
    with pytest.raises(InputError, match="nothing to evaluate"):
        fusekit.evaluate(dataset)


class _NeedsWeights(fusekit.Fuser):
    """A method whose weights are missing: it fails in prepare()."""

    name = "needs-weights"

    def prepare(self):
        raise fusekit.WeightsError("no weights for needs-weights; pass --weights FILE")

    def fuse(self, sources):
        return sources[0]


def test_method_that_cannot_run_fails_once_and_others_go_on(dataset: Path, tmp_path: Path):
    import types

    from fusekit.hookspecs import hookimpl
    from fusekit.plugins import build_host

    plugin = types.SimpleNamespace(register_fusers=hookimpl(lambda register: register(_NeedsWeights)))
    host = build_host(extra=[(plugin, "test-broken")])
    for jobs in (1, 2):
        report = fusekit.evaluate(dataset, methods=["needs-weights", "average"], metrics="en",
                                  cache_dir=tmp_path / f"c{jobs}", jobs=jobs, host=host)
        broken = [f for f in report.failures if f.method == "needs-weights"]
        assert len(broken) == 1 and "no weights" in broken[0].message
        assert [r["method"] for r in report.rows] == ["average"] * len(NAMES)


def test_best_method_per_metric_follows_the_direction(dataset: Path, tmp_path: Path):
    avg = _average_folder(dataset, tmp_path / "avg")
    ir = tmp_path / "ir_copy"
    for name in NAMES:                                    # "fused" = the infrared source itself
        write_image(ir / f"{name}.png", read_image(dataset / "ir" / f"{name}.png"))
    report = fusekit.evaluate(dataset, fused=[avg, ir], metrics="en,mi,nabf")
    summary = report.summary()
    best = report.best()
    for metric, pick in (("en", max), ("mi", max), ("nabf", min)):
        means = {m: summary[m][metric].mean for m in ("avg", "ir_copy")}
        assert best[metric] == {pick(means, key=means.get)}
    md_rows = [line for line in report.to_markdown().splitlines() if line.startswith("| avg |")
               or line.startswith("| ir_copy |")]
    assert sum(line.count("**") for line in md_rows) == 2 * 3  # one bold cell per metric
    assert report.format_table().count(" *") == 3 + 1             # three marked cells and the legend
    tex = report.to_latex()
    assert tex.count("\\textbf{") == 3 and "Nabf $\\downarrow$" in tex and "\\toprule" in tex
    assert "ir\\_copy &" in tex                                     # LaTeX specials escaped
    body = [line for line in tex.splitlines() if line.endswith("\\\\")][1:]
    assert [line.split(" & ")[0] for line in body] == ["avg", "ir\\_copy"]
    assert report.write(tmp_path / "t.tex").read_text() == tex
    alone = fusekit.evaluate(dataset, fused=avg, metrics="en")
    assert alone.best() == {"en": set()} and "**" not in alone.to_markdown()
    assert "textbf" not in alone.to_latex()
