"""Usage errors are found before any work, on one line, with exit status 2."""

from __future__ import annotations

import numpy as np
import pytest

import fusekit
from fusekit.errors import ParameterError

from .corpus import hidden_files, one_line_error, write


@pytest.fixture
def dataset(tmp_path):
    for name in ("a", "b"):
        for mod, value in (("ir", 30), ("vi", 200)):
            write(tmp_path / "d" / mod / f"{name}.png", np.full((8, 8), value, np.uint8))
    return tmp_path / "d"


def _eval(run_cli, dataset, tmp_path, *extra):
    return run_cli(["eval", dataset, "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                    "--no-progress", *extra])


@pytest.mark.parametrize("name", ["scores.xyz", "scores", "scores.png", "scores.CSV.bak"])
def test_eval_refuses_an_output_whose_format_it_cannot_tell(run_cli, dataset, tmp_path, name):
    out = tmp_path / name
    result = _eval(run_cli, dataset, tmp_path, "-o", out)
    one_line_error(result, name, "--format", code=2)
    assert not out.exists()
    assert not (tmp_path / "c").exists()  # refused before any fusing


@pytest.mark.parametrize("name,fmt,head", [("s.CSV", None, "image,method"), ("s.md", None, "<!--"),
                                           ("s.json", None, "{"), ("s.xyz", "csv", "image,method")])
def test_eval_infers_the_format_from_the_suffix_or_takes_format(run_cli, dataset, tmp_path, name, fmt, head):
    out = tmp_path / name
    result = _eval(run_cli, dataset, tmp_path, "-o", out, *(["--format", fmt] if fmt else []))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(head)


def test_report_write_refuses_an_unknown_suffix(dataset, tmp_path):
    report = fusekit.evaluate(dataset, methods=["average"], metrics="en", cache_dir=tmp_path / "c")
    with pytest.raises(ParameterError, match="report format"):
        report.write(tmp_path / "x.xyz")
    assert not (tmp_path / "x.xyz").exists()


def test_eval_checks_that_the_output_can_be_written_before_scoring(run_cli, dataset, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    result = _eval(run_cli, dataset, tmp_path, "-o", blocker / "scores.csv")
    one_line_error(result, "scores.csv", "cannot write", code=2)
    assert not (tmp_path / "c").exists()
    result = _eval(run_cli, dataset, tmp_path, "-o", tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_fuse_checks_ext_once_and_before_any_work(run_cli, dataset, tmp_path):
    out = tmp_path / "out"
    result = run_cli(["fuse", "-m", "average", dataset / "ir", dataset / "vi", "-o", out, "--ext", "xyz"])
    one_line_error(result, "--ext xyz", "png", code=2)
    assert not out.exists()


def test_fuse_checks_the_output_file_before_any_work(run_cli, dataset, tmp_path):
    a, b = dataset / "ir" / "a.png", dataset / "vi" / "a.png"
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", tmp_path / "f.xyz"]), "f.xyz", "png", code=2)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", blocker / "f.png"]), "cannot write", code=2)
    one_line_error(run_cli(["fuse", "-m", "average", dataset / "ir", dataset / "vi", "-o", blocker / "sub"]),
                   "output folder", code=2)
    assert not hidden_files(tmp_path)


@pytest.mark.parametrize("args,needle", [(["-j", "0"], "--jobs"), (["-j", "x"], "--jobs"),
                                         (["--bit-depth", "12"], "--bit-depth")])
def test_click_usage_errors_are_one_line(run_cli, dataset, tmp_path, args, needle):
    result = run_cli(["fuse", "-m", "average", dataset / "ir", dataset / "vi", "-o", tmp_path / "o", *args])
    line = one_line_error(result, needle, code=2)
    assert "fusekit fuse --help" in line
    assert "Usage:" not in result.output


def test_fuse_misused_output_and_dask_are_usage_errors_like_eval(run_cli, dataset, tmp_path):
    """-o naming a folder for one image, a file for folders, or --dask without folders: exit 2, as for
    eval's -o naming a folder and an unknown output format (docs/safety.md: usage errors exit 2)."""
    a, b = dataset / "ir" / "a.png", dataset / "vi" / "a.png"
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", tmp_path]), "is a folder", code=2)
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", tmp_path / "f.png", "--dask", "local"]),
                   "--dask", code=2)
    blocker = tmp_path / "blocker.png"
    blocker.write_text("x")
    one_line_error(run_cli(["fuse", "-m", "average", dataset / "ir", dataset / "vi", "-o", blocker]),
                   "not a folder", code=2)
    assert blocker.read_text() == "x" and not hidden_files(tmp_path)
