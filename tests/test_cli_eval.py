"""``fusekit eval`` through click's CliRunner."""

from __future__ import annotations

import csv
import json
import types
from pathlib import Path

import numpy as np
import pytest

from fusekit.hookspecs import hookimpl
from fusekit.io import read_image, write_image
from fusekit.metrics import Metric
from fusekit.plugins import build_host

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"  # real images in the repository


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """Two crops of the real MRI/PET demo pair (PET in colour) as scenes 14 and 37 in mri/ and pet/."""
    root = tmp_path / "mri_pet"
    for name, (top, left) in (("14", (80, 60)), ("37", (120, 110))):
        for mod in ("mri", "pet"):
            image = read_image(EXAMPLES / f"{mod}.png")
            write_image(root / mod / f"{name}.png", image[top:top + 80, left:left + 100])
    return root


def test_eval_methods_table_csv_and_cache(run_cli, dataset: Path, tmp_path: Path):
    cache, out = tmp_path / "cache", tmp_path / "scores.csv"
    args = ["eval", dataset, "-m", "average", "-m", "max", "--metrics", "en,mi,ssim,nabf",
            "--cache", cache, "-o", out, "--no-progress"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert "profile standard" in result.output and "sources pet, mri" in result.output
    assert "MI ↑ (bits)" in result.output and "Nabf ↓" in result.output and "±" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["image"], r["method"]) for r in rows] == [("14", "average"), ("37", "average"),
                                                         ("14", "max"), ("37", "max")]
    assert set(rows[0]) == {"image", "method", "en", "mi", "ssim", "nabf"}
    assert len(list(cache.rglob("*.png"))) == 4
    again = run_cli(args)
    assert again.exit_code == 0 and "fused 4 image" not in again.output
    assert list(csv.DictReader(out.open())) == rows


def test_eval_fused_folder_json_to_stdout_and_failures(run_cli, dataset: Path, tmp_path: Path):
    fused = tmp_path / "other_tool"
    a = read_image(dataset / "pet" / "14.png")
    write_image(fused / "14.jpg", a)                  # any extension
    result = run_cli(["eval", dataset, "--fused", fused, "--metrics", "en,psnr",
                      "--profile", "cddfuse", "--format", "json", "--no-progress"])
    assert result.exit_code == 1                       # 37 has no fused image
    data = json.loads(result.stdout)
    assert data["profile"]["name"] == "cddfuse" and data["rows"][0]["method"] == "other_tool"
    assert "no fused image named '37'" in result.stderr


def test_eval_sources_option_and_markdown(run_cli, dataset: Path, tmp_path: Path):
    out = tmp_path / "r.md"
    result = run_cli(["eval", dataset, "--sources", "mri,pet", "-m", "average", "--metrics", "sd,cc",
                      "--cache", tmp_path / "c", "-o", out, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "sources mri, pet" in result.output
    assert "## Per image" in out.read_text()


def test_eval_unknown_names_suggest(run_cli, dataset: Path, tmp_path: Path):
    result = run_cli(["eval", dataset, "-m", "average", "--metrics", "en,ssin", "--cache", tmp_path])
    assert result.exit_code == 1 and "did you mean 'ssim'" in result.stderr
    result = run_cli(["eval", dataset, "-m", "average", "--profile", "cdfuse", "--cache", tmp_path])
    assert result.exit_code == 1 and "did you mean 'cddfuse'" in result.stderr
    result = run_cli(["eval", dataset, "--cache", tmp_path])
    assert result.exit_code == 2 and "--fused" in result.stderr


def test_eval_uses_plugin_metrics_of_the_host(run_cli, dataset: Path, tmp_path: Path):
    plugin = types.SimpleNamespace(register_metrics=hookimpl(lambda register: register(
        Metric("brightest", "maximum grey level", "grey levels", True, False, "-",
               lambda ctx: float(np.max(ctx.fused))))))
    host = build_host(entry_points=False, extra=[(plugin, "test-plugin")])
    result = run_cli(["eval", dataset, "-m", "average", "--metrics", "brightest,en",
                      "--cache", tmp_path, "-j", "2", "--no-progress"], host=host)
    assert result.exit_code == 0, result.output
    assert "BRIGHTEST ↑ (grey levels)" in result.output


def test_eval_list_metrics(run_cli):
    result = run_cli(["eval", "--list-metrics"])
    assert result.exit_code == 0
    assert "standard: bits, cddfuse: nats" in result.output
    assert "nabf" in result.output and "↓" in result.output and "profile cddfuse" in result.output


def test_eval_weights_and_params_reach_the_methods(run_cli, dataset: Path, tmp_path: Path):
    """`--weights` scores your own trained weights; each option goes to the methods taking it."""
    import shutil

    from fusekit_refusion.weights import entry_for

    mine = tmp_path / "mine.safetensors"
    shutil.copy(entry_for("mif").path, mine)
    out = tmp_path / "s.csv"
    result = run_cli(["eval", dataset, "-m", "refusion", "-m", "laplacian-pyramid", "--weights", mine,
                      "-p", "levels=2", "--metrics", "en", "--cache", tmp_path / "c", "-o", out,
                      "--no-progress"])
    assert result.exit_code == 0, result.output
    methods = {r["method"] for r in csv.DictReader(out.open())}
    assert any("refusion" in m and "mine.safetensors" in m for m in methods), methods
    assert any("laplacian-pyramid" in m and "levels=2" in m for m in methods), methods
    bad = run_cli(["eval", dataset, "-m", "average", "-p", "levels=2", "--metrics", "en",
                   "--cache", tmp_path / "c"])
    assert bad.exit_code == 1 and "takes option levels" in bad.output


def test_eval_on_a_local_dask_cluster_gives_the_same_rows(run_cli, dataset: Path, tmp_path: Path):
    pytest.importorskip("dask.distributed")
    base = ["eval", dataset, "-m", "average", "-m", "max", "--metrics", "en,mi,qabf", "--no-progress", "-f", "csv"]
    here = run_cli(base + ["--cache", tmp_path / "here"])
    on_dask = run_cli(base + ["--cache", tmp_path / "dask", "--dask", "local", "-j", "2"])  # workers fuse too
    assert here.exit_code == 0 and on_dask.exit_code == 0, on_dask.output
    assert on_dask.output == here.output
    assert "fused 4 images into the cache" in on_dask.output and on_dask.output.count("\n") == 6  # header, 4 rows, note
    assert len(list((tmp_path / "dask").rglob("*.png"))) == 4


def test_eval_unreachable_dask_scheduler_is_a_one_line_error(run_cli, dataset: Path, tmp_path: Path, monkeypatch):
    pytest.importorskip("dask.distributed")
    from fusekit import execution

    monkeypatch.setattr(execution, "CONNECT_TIMEOUT_S", 1)
    result = run_cli(["eval", dataset, "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                      "--dask", "tcp://127.0.0.1:9"])
    assert result.exit_code != 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c").exists()


def test_eval_dask_without_dask_installed_says_how_to_install(run_cli, dataset: Path, tmp_path: Path,
                                                              monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)   # as if it were not installed
    result = run_cli(["eval", dataset, "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                      "--dask", "local"])
    assert result.exit_code != 0
    assert "pip install 'fusekit[dask]'" in result.output and "Traceback" not in result.output


def test_eval_counts_are_singular_or_plural(run_cli, dataset: Path, tmp_path: Path):
    """One image is "1 image" in the table, the LaTeX comment, the cache note and the HTML report."""
    one = tmp_path / "one"
    for mod in ("mri", "pet"):
        write_image(one / mod / "14.png", read_image(dataset / mod / "14.png"))
    html, tex = tmp_path / "r.html", tmp_path / "t.tex"
    result = run_cli(["eval", one, "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                      "--report", html, "-o", tex, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "; 1 image;" in result.stdout and "1 images" not in result.output
    assert "fused 1 image into the cache" in result.stderr
    assert "mean over 1 image\n" in tex.read_text()
    page = html.read_text()
    assert "1 image, 1 method, 1 metric; profile standard; 0 failures" in page
    assert "(s)" not in page and "1 images" not in page
    many = run_cli(["eval", dataset, "-m", "average", "-m", "max", "--metrics", "en,sd", "--cache",
                    tmp_path / "c2", "--no-progress"])
    assert "; 2 images;" in many.stdout and "fused 4 images into the cache" in many.stderr


def test_eval_notes_a_method_scored_on_another_tasks_data(run_cli, dataset: Path, tmp_path: Path):
    """Like fuse's note on --task: focus (meant for mfif) on MRI/PET data says so, once, on stderr."""
    args = ["eval", dataset, "--metrics", "en", "--cache", tmp_path / "c", "--no-progress"]
    result = run_cli([*args, "-m", "focus", "-m", "average"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: focus: {dataset} is mif data, but it is meant for mfif"]
    assert "note:" not in result.stdout
    given = run_cli([*args, "-m", "focus", "--task", "ivif"])
    assert "note: focus: --task ivif, but it is meant for mfif" in given.stderr
    fitting = run_cli([*args, "-m", "average", "-m", "max"])
    assert "note:" not in fitting.stderr
