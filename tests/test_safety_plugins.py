"""Every fuser's output is validated once in the core; a plugin cannot end a batch with sys.exit."""

from __future__ import annotations

import types

import numpy as np
import pytest

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.errors import InputError, PluginError
from fusekit.plugins import build_host

from .corpus import digest, hidden_files, one_line_error, write

RESULTS = {
    "shape": lambda s: s[0][:-1],
    "nan": lambda s: np.where(s[0] > 0.5, np.nan, s[0]).astype(np.float32),
    "inf": lambda s: np.full(s[0].shape, np.inf, np.float32),
    "bool": lambda s: s[0] > 0.5,
    "uint8": lambda s: (s[0] * 255).astype(np.uint8),
    "255": lambda s: (s[0] * 255).astype(np.float32),
    "negative": lambda s: s[0] - 0.5,
    "none": lambda s: None,
    "text": lambda s: "fused",
}
NEEDLES = {"shape": "shape", "nan": "NaN", "inf": "inf", "bool": "bool", "uint8": "uint8",
           "255": "divide by 255", "negative": "expected [0, 1]", "none": "NoneType", "text": "str"}


def _bad_fuser(kind: str, colour: bool) -> type:
    class Bad(Fuser):
        name = f"bad-{kind}" + ("-rgb" if colour else "")
        needs_color = colour

        def fuse(self, sources):
            return RESULTS[kind](sources)

    return Bad


class ExitsOnB(Fuser):
    """Calls sys.exit on the set named b (its first source is all 77), else averages."""

    name = "exits-on-b"

    def fuse(self, sources):
        if np.allclose(sources[0], 77 / 255):
            raise SystemExit(3)
        return (sources[0] + sources[1]) / 2


@pytest.fixture(scope="module")
def host():
    classes = [_bad_fuser(k, c) for k in RESULTS for c in (False, True)] + [ExitsOnB]

    @hookimpl
    def register_fusers(register):
        for cls in classes:
            register(cls)

    return build_host(entry_points=False,
                      extra=[(types.SimpleNamespace(register_fusers=register_fusers), "bad-plugins")])


@pytest.mark.parametrize("colour", [False, True], ids=["luma", "colour"])
@pytest.mark.parametrize("kind", list(RESULTS))
def test_a_broken_fuser_output_is_an_error_naming_the_plugin(host, kind, colour):
    rng = np.random.default_rng(0)
    a, b = rng.random((12, 10), np.float32), rng.random((12, 10, 3), np.float32)
    method = f"bad-{kind}" + ("-rgb" if colour else "")
    with pytest.raises(PluginError) as info:
        fusekit.fuse([a, b], method=method, host=host)
    message = str(info.value)
    assert f"method '{method}'" in message and "plugin 'bad-plugins'" in message
    assert NEEDLES[kind] in message and "\n" not in message


def test_the_cli_reports_a_broken_plugin_in_one_line_and_writes_nothing(run_cli, host, tmp_path):
    a = write(tmp_path / "a.png", np.full((8, 8), 200, np.uint8))
    b = write(tmp_path / "b.png", np.full((8, 8), 10, np.uint8))
    before = digest(a, b)
    result = run_cli(["fuse", "-m", "bad-nan", a, b, "-o", tmp_path / "out.png"], host=host)
    one_line_error(result, "bad-nan", "bad-plugins", "NaN", code=1)
    assert not (tmp_path / "out.png").exists() and not hidden_files(tmp_path)
    assert digest(a, b) == before


def test_good_fusers_pass_the_check(host):
    rng = np.random.default_rng(1)
    a, b = rng.random((16, 16), np.float32), rng.random((16, 16, 3), np.float32)
    for method in ("average", "max", "pca", "laplacian-pyramid", "dwt", "guided-filter", "exposure", "focus"):
        fused = fusekit.fuse([a, b], method=method)
        assert fused.shape == (16, 16, 3) and fused.dtype == np.float32
        assert 0 <= fused.min() and fused.max() <= 1


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (0, 4, 3)])
@pytest.mark.parametrize("method", ["average", "pca", "laplacian-pyramid", "dwt", "guided-filter", "focus"])
def test_empty_arrays_in_the_api_are_an_input_error(method, shape):
    empty = np.zeros(shape, np.float32)
    with pytest.raises(InputError, match="empty image"):
        fusekit.fuse([empty, empty], method=method)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sys_exit_in_a_plugin_fails_one_set_not_the_batch(run_cli, host, tmp_path, jobs):
    for name, value in (("a", 10), ("b", 77), ("c", 200)):
        write(tmp_path / "x" / f"{name}.png", np.full((8, 8), value, np.uint8))
        write(tmp_path / "y" / f"{name}.png", np.full((8, 8), 50, np.uint8))
    out = tmp_path / "out"
    result = run_cli(["fuse", "-m", "exits-on-b", tmp_path / "x", tmp_path / "y", "-o", out, "-j", jobs],
                     host=host)
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert "fused 2 of 3 sets" in result.stderr
    assert "error: b: method 'exits-on-b' (plugin 'bad-plugins') called sys.exit(3)" in result.stderr


def test_sys_exit_in_a_plugin_fails_one_image_of_an_eval(host, tmp_path):
    for name, value in (("a", 10), ("b", 77)):
        write(tmp_path / "d" / "ir" / f"{name}.png", np.full((8, 8), value, np.uint8))
        write(tmp_path / "d" / "vi" / f"{name}.png", np.full((8, 8), 50, np.uint8))
    report = fusekit.evaluate(tmp_path / "d", methods=["exits-on-b"], metrics="en", cache_dir=tmp_path / "c",
                              host=host)
    assert [r["image"] for r in report.rows] == ["a"]
    assert [f.image for f in report.failures] == ["b"] and "sys.exit(3)" in report.failures[0].message
