"""Rough edges a new user hit (a walk-through of the README and of bad inputs, 2026-12-07):
each command must fail early with one line that says what to do, or not fail at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


from fusekit.io import read_image, write_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_eval_unknown_weights_variant_fails_before_any_work(run_cli, mif_dataset: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    result = run_cli(["eval", mif_dataset, "-m", "refusion", "--weights", "nosuch", "--metrics", "en",
                      "--cache", cache, "--no-progress"])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "no weights variant 'nosuch' for task mif" in line and "shipped variants: fixed" in line
    assert "0 images" not in result.output and not cache.exists()  # no table, nothing fused


def test_eval_unknown_option_lists_the_methods_options(run_cli, mif_dataset: Path):
    result = run_cli(["eval", mif_dataset, "-m", "laplacian-pyramid", "-p", "nosuch=1", "--metrics", "en"])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "takes option nosuch" in line and "laplacian-pyramid: levels=4" in line and "fusekit info" in line


def test_eval_names_the_fused_folder_of_a_wrongly_sized_image(run_cli, mif_dataset: Path, tmp_path: Path):
    fused = tmp_path / "mine"
    write_image(fused / "1.png", read_image(mif_dataset / "mri" / "1.png")[:32, :32])
    write_image(fused / "2.png", read_image(mif_dataset / "mri" / "2.png"))
    result = run_cli(["eval", mif_dataset, "--fused", fused, "--metrics", "en", "--no-progress"])
    assert result.exit_code == 1
    assert f"{fused / '1.png'}: source 1 is 64x64 pixels but the fused image is 32x32" in result.stderr


def test_eval_warns_once_about_a_dropped_alpha_channel(run_cli, mif_dataset: Path, tmp_path: Path):
    import numpy as np

    ct = read_image(mif_dataset / "ct" / "1.png")
    rgba = np.dstack([ct] * 3 + [np.ones_like(ct)]) if ct.ndim == 2 else np.dstack([ct, np.ones(ct.shape[:2])])
    (mif_dataset / "ct" / "1.png").unlink()
    write_image(mif_dataset / "ct" / "1.png", rgba.astype(np.float32))
    result = run_cli(["eval", mif_dataset, "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("alpha channel dropped") == 1


def test_folder_sources_refuse_an_image_file_name_as_output(run_cli, mif_dataset: Path, tmp_path: Path):
    out = tmp_path / "fused.png"
    result = run_cli(["fuse", "-m", "average", mif_dataset / "ct", mif_dataset / "mri", "-o", out])
    assert result.exit_code == 2
    assert "looks like an image file" in _one_error_line(result) and f"{tmp_path / 'fused'}/" in result.stderr
    assert not out.exists()


def test_folders_without_a_shared_name_are_one_error_and_make_no_folder(run_cli, mif_dataset: Path,
                                                                         tmp_path: Path):
    other = tmp_path / "other"
    write_image(other / "9.png", read_image(mif_dataset / "mri" / "1.png"))
    out = tmp_path / "out"
    result = run_cli(["fuse", "-m", "average", mif_dataset / "ct", other, "-o", out])
    assert result.exit_code == 1
    assert "no file name is in every folder" in _one_error_line(result)
    assert not out.exists()


def test_a_flag_and_p_that_disagree_are_refused(run_cli, tmp_path: Path):
    ct, mri = EXAMPLES / "mif" / "ct" / "11.png", EXAMPLES / "mif" / "mri" / "11.png"
    out = tmp_path / "f.png"
    result = run_cli(["fuse", "-m", "refusion", "-p", "task=mif", "--task", "ivif", ct, mri, "-o", out])
    assert result.exit_code == 1
    assert "-p task=mif and --task ivif disagree" in _one_error_line(result)
    assert not out.exists()


def test_explain_takes_the_task_from_the_folders_or_asks_for_it(run_cli, tmp_path: Path):
    bare = tmp_path / "bare"
    for name in ("a.png", "b.png"):
        write_image(bare / name, read_image(EXAMPLES / "mif" / "mri" / "11.png"))
    result = run_cli(["explain", bare / "a.png", bare / "b.png", "-o", tmp_path / "m.png"])
    assert result.exit_code == 1 and "give --task" in _one_error_line(result)
    result = run_cli(["explain", bare / "a.png", "-o", tmp_path / "m.png"])  # one source: this command's help
    assert result.exit_code == 2 and "(see 'fusekit explain --help')" in _one_error_line(result)


def test_a_closed_pipe_ends_quietly():
    """``fusekit eval --list-metrics | head -1``: no 'BrokenPipeError' message."""
    proc = subprocess.Popen([sys.executable, "-m", "fusekit", "eval", "--list-metrics", "--profile", "vifb"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before fusekit writes a line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "error" not in err.lower() and "Traceback" not in err
