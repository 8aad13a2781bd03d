"""``fusekit.experiments``: cached runs, scores equal to ``fusekit eval``, Markdown sections, sheets."""

from __future__ import annotations

import csv
import os
import shutil
import threading
import types

import numpy as np
import pytest

from fusekit import hookimpl
from fusekit import experiments as ex
from fusekit.datasets import images_by_stem
from fusekit.errors import InputError
from fusekit.experiments import suite
from fusekit.io import read_image
from fusekit.plugins import build_host

from .conftest import ScaledFirst, require_data


@pytest.fixture(scope="module")
def host():
    plugin = types.SimpleNamespace(register_fusers=hookimpl(lambda register: register(ScaledFirst)))
    return build_host(entry_points=False, extra=[(plugin, "experiments-test")])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ex.Split:
    """Two real TNO pairs, the first two by name, as a split of their own."""
    test = require_data("ivif", "tno", "test")
    root = tmp_path_factory.mktemp("tiny")
    for source in ("ir", "vi"):
        (root / source).mkdir()
        for name, paths in sorted(images_by_stem(test / source).items())[:2]:
            shutil.copyfile(paths[0], root / source / paths[0].name)
    return ex.Split("ivif", "tiny", root, ("ir", "vi"))


def test_fuse_reuses_images_until_options_weights_or_sources_change(tiny, host, tmp_path):
    weights = tmp_path / "w.txt"
    weights.write_text("0.5")
    runs = {"scaled": ex.Run("scaled-first", {"weights": str(weights)})}
    out = ex.run_folder(tmp_path / "fused", tiny, "scaled")
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host) == {"scaled": 2}
    assert sorted(p.name for p in out.iterdir()) == ["01.json", "01.png", "02.json", "02.png"]
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host) == {"scaled": 0}
    os.utime(weights, (1, 1))                                         # same bytes, another mtime: a hit
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host) == {"scaled": 0}
    weights.write_text("0.25")                                        # retrained weights: fused again
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host) == {"scaled": 2}
    ir = read_image(tiny.root / "ir" / "01.png")
    assert np.abs(read_image(out / "01.png") - ir * 0.25).max() <= 1 / 255
    other = tmp_path / "w2.txt"
    other.write_text("0.25")                                          # another option value: fused again
    runs = {"scaled": ex.Run("scaled-first", {"weights": str(other)})}
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host) == {"scaled": 2}
    (out / "02.json").unlink()                                        # an image no record vouches for
    assert ex.fuse(tiny, runs, tmp_path / "fused", host=host, names=["02"]) == {"scaled": 1}
    with pytest.raises(InputError, match="no source set named 03"):
        ex.fuse(tiny, runs, tmp_path / "fused", host=host, names=["03"])


def test_fuse_keys_on_source_content(tiny, host, tmp_path):
    copy = ex.Split(tiny.task, tiny.dataset, tmp_path / "copy", tiny.sources)
    shutil.copytree(tiny.root, copy.root)
    weights = tmp_path / "w.txt"
    weights.write_text("1")
    runs = {"s": ex.Run("scaled-first", {"weights": str(weights)})}
    assert ex.fuse(copy, runs, tmp_path / "fused", host=host) == {"s": 2}
    shutil.copyfile(copy.root / "ir" / "02.png", copy.root / "ir" / "01.png")  # a source edited in place
    assert ex.fuse(copy, runs, tmp_path / "fused", host=host) == {"s": 1}


@pytest.mark.parametrize("profile", ["cddfuse", "standard"])
def test_scores_and_table_equal_fusekit_eval(tiny, tmp_path, run_cli, profile):
    runs = {"average": ex.Run("average"), "max": ex.Run("max")}
    table = tmp_path / f"{profile}.csv"
    scores = ex.compare([tiny], runs, tmp_path / "fused", profile=profile, metrics=suite.METRICS,
                        table=lambda split, p: table)[tiny]
    assert scores.images() == ["01", "02"] and scores.dropped == 0
    out = tmp_path / "eval.csv"
    result = run_cli(["eval", tiny.root, "-m", "average", "-m", "max", "--profile", profile, "--metrics",
                      ",".join(suite.METRICS), "--cache", tmp_path / "cache", "-o", out, "--no-progress"])
    assert result.exit_code == 0, result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    means = scores.means()
    for label in runs:
        expected = [np.mean([float(r[m]) for r in rows if r["method"] == label]) for m in suite.METRICS]
        np.testing.assert_allclose(means[label], expected, rtol=1e-12)
    assert ex.read_scores([table]).means() == means                   # the CSV holds the same numbers
    lines = ex.markdown_table(["run", *suite.HEAD], [[k, *map(ex.fmt, v)] for k, v in means.items()])
    assert lines[2] == "| average | " + " | ".join(ex.fmt(v) for v in means["average"]) + " |"


def test_compare_reuses_an_existing_table_without_fusing(tiny, tmp_path):
    table = tmp_path / "scores.csv"
    table.write_text("image,method,en\n01,a,1.0\n02,a,3.0\n01,b,2.0\n02,b,nan\n")
    scores = ex.compare([tiny], {"a": ex.Run("average")}, tmp_path / "fused", metrics=["en"],
                        table=lambda split, p: table, reuse=True)[tiny]
    assert not (tmp_path / "fused").exists()
    assert scores.dropped == 1 and scores.images() == ["01"]          # means over images every run has
    assert scores.means() == {"a": [1.0], "b": [2.0]}


def test_write_section_replaces_its_section_and_keeps_the_rest_byte_for_byte(tmp_path):
    path = tmp_path / "B.md"
    before = "# T\r\n\nintro ü\n\n<!-- begin a -->\nold a\n<!-- end a -->\n\ttail <!-- begin b -->\nb\n<!-- end b -->"
    path.write_bytes(before.encode())
    ex.write_section("a", "<!-- begin a -->\nnew\n\nlines\n<!-- end a -->\n", path)
    assert path.read_bytes() == before.replace("old a", "new\n\nlines").encode()
    ex.write_section("b", "no markers", path)                         # the markers are added
    assert path.read_bytes().endswith(b"\ttail <!-- begin b -->\nno markers\n<!-- end b -->")
    ex.write_section("c", "<!-- begin c -->\nc\n<!-- end c -->", path)  # a new section is appended
    assert path.read_text().endswith("<!-- end b -->\n\n<!-- begin c -->\nc\n<!-- end c -->\n")
    assert ex.replace_section("", "x", "y") == "<!-- begin x -->\ny\n<!-- end x -->\n"
    path.write_text("<!-- begin a -->\nno end\n")
    with pytest.raises(ValueError, match="no '<!-- end a -->'"):
        ex.write_section("a", "text", path)
    assert path.read_text() == "<!-- begin a -->\nno end\n"


def test_write_section_is_atomic_and_keeps_concurrent_writers(tmp_path, monkeypatch):
    path = tmp_path / "B.md"
    path.write_text("# T\n")
    threads = [threading.Thread(target=ex.write_section, args=(f"s{k}", f"text {k}", path)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = path.read_text()
    assert all(f"<!-- begin s{k} -->\ntext {k}\n<!-- end s{k} -->" in text for k in range(8))

    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fusekit.io.os.replace", fail)
    with pytest.raises(InputError, match="No space left"):
        ex.write_section("s0", "never", path)
    assert path.read_text() == text and sorted(p.name for p in tmp_path.iterdir()) == ["B.md"]


def test_runs_sheet_labels_sources_and_runs(tiny, tmp_path):
    ex.fuse(tiny, {"avg": ex.Run("average")}, tmp_path / "fused")
    out = ex.runs_sheet(tmp_path / "sheet.png", [(tiny, "01"), (tiny, "02")], tmp_path / "fused", ["avg"], height=60)
    from PIL import Image

    with Image.open(out) as sheet:                                    # titles above, row labels left
        assert sheet.mode == "P" and sheet.height > 2 * 60 and sheet.width > 3 * 60
    assert (out.stat().st_mode & 0o777) == 0o644
    assert ex.sheet_titles([tiny], ["avg"]) == ["ir", "vi", "avg"]


def test_suite_splits_follow_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEKIT_DATA", str(tmp_path))
    assert suite.data_root() == tmp_path
    tno = suite.split("tno")
    assert tno == ex.Split("ivif", "tno", tmp_path / "ivif" / "tno" / "test", ("ir", "vi"))
    assert [s.dataset for s in suite.splits("ivif", check=True)] == ["msrs", "tno", "roadscene", "vifb", "llvip"]
    assert suite.classics("lytro")[-1] == "focus"


def test_cpu_description_names_the_model_and_its_vector_extensions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f\n")
    assert ex.cpu_description(info) == "AMD EPYC, AVX-512, AVX2, FMA"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu sse2\n")
    assert ex.cpu_description(info) == "Some CPU"
    assert ex.cpu_description(tmp_path / "missing") == "CPU not known"
