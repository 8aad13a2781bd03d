"""``fusekit fuse`` never writes over one of its inputs, in file or folder mode."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fusekit.guard import refuse_output_over_inputs, same_path
from fusekit.errors import InputError

from .corpus import digest, one_line_error, write


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    ir = write(tmp_path / "ir" / "x.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    vi = write(tmp_path / "vi" / "x.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    return ir, vi


def _outputs_naming_a_source(tmp_path, ir):
    yield ir                                                # the same path
    yield tmp_path / "vi" / ".." / "ir" / "x.png"           # through '..'
    link = tmp_path / "link.png"
    link.symlink_to(ir)
    yield link                                              # a symlink to it
    hard = tmp_path / "hard.png"
    os.link(ir, hard)
    yield hard                                              # a hard link to it
    (tmp_path / "dirlink").symlink_to(tmp_path / "ir")
    yield tmp_path / "dirlink" / "x.png"                    # through a linked folder


def test_single_set_refuses_an_output_that_is_a_source(run_cli, pair, tmp_path):
    ir, vi = pair
    for out in list(_outputs_naming_a_source(tmp_path, ir)):
        before = digest(tmp_path / "ir", tmp_path / "vi")
        result = run_cli(["fuse", "-m", "average", ir, vi, "-o", out])
        one_line_error(result, str(out), "overwrite", "-o")
        assert digest(tmp_path / "ir", tmp_path / "vi") == before
    # the second source too, and a fresh output still works
    one_line_error(run_cli(["fuse", "-m", "average", ir, vi, "-o", vi]), "overwrite")
    assert run_cli(["fuse", "-m", "average", ir, vi, "-o", tmp_path / "f.png"]).exit_code == 0


def test_folder_mode_refuses_a_source_folder_as_output(run_cli, pair, tmp_path):
    before = digest(tmp_path / "ir", tmp_path / "vi")
    (tmp_path / "irlink").symlink_to(tmp_path / "ir")
    for out in (tmp_path / "ir", tmp_path / "vi", tmp_path / "vi" / ".." / "ir", tmp_path / "irlink"):
        result = run_cli(["fuse", "-m", "average", tmp_path / "ir", tmp_path / "vi", "-o", out, "--ext", "png"])
        one_line_error(result, "overwrite", "source folder")
        assert digest(tmp_path / "ir", tmp_path / "vi") == before


def test_folder_mode_refuses_an_output_file_linked_to_a_source(run_cli, pair, tmp_path):
    ir, vi = pair
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").symlink_to(vi)  # writing out/x.png would follow... or replace the link: refuse
    before = digest(tmp_path / "ir", tmp_path / "vi")
    result = run_cli(["fuse", "-m", "average", tmp_path / "ir", tmp_path / "vi", "-o", out])
    one_line_error(result, "x.png", "overwrite")
    assert digest(tmp_path / "ir", tmp_path / "vi") == before


def test_refusal_comes_before_any_work(pair, tmp_path, run_cli):
    """The guard runs before the method loads its weights (a missing weights file is not reported)."""
    ir, vi = pair
    result = run_cli(["fuse", "-m", "refusion", "--task", "ivif", "--weights", tmp_path / "missing.safetensors",
                      ir, vi, "-o", ir])
    one_line_error(result, "overwrite")


def test_same_path_and_the_api_guard(tmp_path, pair):
    ir, vi = pair
    assert same_path(ir, tmp_path / "ir" / "." / "x.png")
    assert not same_path(ir, vi)
    assert not same_path(ir, tmp_path / "new.png")
    with pytest.raises(InputError, match="overwrite"):
        refuse_output_over_inputs(ir, [vi, ir])


def test_hidden_files_in_folder_mode_are_skipped(run_cli, pair, tmp_path):
    for folder in ("ir", "vi"):
        (tmp_path / folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (tmp_path / folder / "._x.png").write_bytes(b"\0\5\26\7")  # macOS resource fork
    result = run_cli(["fuse", "-m", "average", tmp_path / "ir", tmp_path / "vi", "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    assert "fused 1 of 1 sets" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
