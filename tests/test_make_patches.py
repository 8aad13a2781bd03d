"""``benchmarks/make_patches.py`` finds the benchmark data where the tests do."""

from __future__ import annotations

import importlib.util

import pytest

from fusekit.errors import InputError

from .conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("make_patches", REPO / "benchmarks" / "make_patches.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_patches_reads_fusekit_data_unless_data_is_given(tmp_path, monkeypatch):
    script = _script()
    monkeypatch.setenv("FUSEKIT_DATA", str(tmp_path / "elsewhere"))
    assert script.default_data() == tmp_path / "elsewhere"
    with pytest.raises(InputError, match=str(tmp_path / "elsewhere" / "mif")):
        script.main(["--tasks", "mif", "--out", str(tmp_path / "out")])
    with pytest.raises(InputError, match=str(tmp_path / "given" / "mif")):
        script.main(["--tasks", "mif", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "given")])
    monkeypatch.delenv("FUSEKIT_DATA")
    assert script.default_data() == REPO.parent / "shared" / "data"
