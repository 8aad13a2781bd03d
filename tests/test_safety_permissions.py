"""Written files honour the umask like any other tool (mkstemp alone would make them 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from fusekit.io import current_umask, write_image

from .corpus import write


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
        return mask

    before = os.umask(0o022)
    os.umask(before)
    yield set_mask
    os.umask(before)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_write_image_honours_the_umask(tmp_path, umask, mask, ext):
    umask(mask)
    assert current_umask() == mask
    out = write_image(tmp_path / f"f{ext}", np.zeros((4, 4), np.float32))
    assert _mode(out) == 0o666 & ~mask


def test_fuse_output_and_eval_cache_honour_the_umask(run_cli, tmp_path, umask):
    umask(0o022)
    for name in ("ir", "vi"):
        write(tmp_path / "d" / name / "x.png", np.full((8, 8), 100, np.uint8))
    result = run_cli(["fuse", "-m", "average", tmp_path / "d" / "ir" / "x.png", tmp_path / "d" / "vi" / "x.png",
                      "-o", tmp_path / "f.png"])
    assert result.exit_code == 0 and _mode(tmp_path / "f.png") == 0o644
    result = run_cli(["eval", tmp_path / "d", "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                      "-o", tmp_path / "s.csv", "--no-progress"])
    assert result.exit_code == 0, result.output
    written = [p for p in (tmp_path / "c").rglob("*") if p.is_file()] + [tmp_path / "s.csv"]
    assert written and all(_mode(p) == 0o644 for p in written), {str(p): oct(_mode(p)) for p in written}
