"""``fusekit eval`` never returns a stale or corrupt cached fused image.

The cache key covers the content of every source, the choice and order of
the source sub-folders, the method with its options (and the content of a
file an option names), and the fusekit version; a cached image that does
not match its record is fused again with a warning.
"""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.io import FusekitWarning
from fusekit.plugins import build_host

from .conftest import ScaledFirst
from .corpus import write

METRICS = "en,sd,mi"


class FirstSource(Fuser):
    """Returns its first source, so the source order shows in every score."""

    name = "first-source"

    def fuse(self, sources):
        return np.asarray(sources[0], np.float32).copy()


@pytest.fixture(scope="module")
def host():
    @hookimpl
    def register_fusers(register):
        register(FirstSource)
        register(ScaledFirst)

    return build_host(entry_points=False,
                      extra=[(types.SimpleNamespace(register_fusers=register_fusers), "cache-test")])


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "data"
    for name in ("a", "b"):
        write(root / "ir" / f"{name}.png", rng.integers(0, 256, (24, 24), dtype=np.uint8))
        write(root / "vi" / f"{name}.png", (rng.integers(0, 64, (24, 24)) * 4).astype(np.uint8))
    return root


def _run(dataset, host, cache, **kwargs):
    kwargs.setdefault("methods", ["first-source"])
    return fusekit.evaluate(dataset, metrics=METRICS, cache_dir=cache, host=host, **kwargs)


def _fresh(dataset, host, tmp_path, **kwargs):
    """The same evaluation with an empty cache: the truth a cached run must equal."""
    return _run(dataset, host, tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}", **kwargs)


def _cached_png(cache: Path, name: str) -> Path:
    (found,) = [p for p in cache.rglob(f"{name}.png")]
    return found


def test_another_source_order_is_not_served_from_the_cache(dataset, host, tmp_path):
    cache = tmp_path / "cache"
    forward = _run(dataset, host, cache, sources="ir,vi")
    backward = _run(dataset, host, cache, sources="vi,ir")
    assert backward.produced == 2
    assert backward.rows == _fresh(dataset, host, tmp_path, sources="vi,ir").rows
    assert backward.rows != forward.rows
    again = _run(dataset, host, cache, sources="ir,vi")  # both orders stay cached side by side
    assert again.produced == 0 and again.rows == forward.rows


def test_a_source_edited_in_place_is_fused_again(dataset, host, tmp_path):
    cache = tmp_path / "cache"
    _run(dataset, host, cache)
    write(dataset / "ir" / "a.png", np.full((24, 24), 200, np.uint8))
    edited = _run(dataset, host, cache)
    assert edited.produced == 1
    assert edited.rows == _fresh(dataset, host, tmp_path).rows


def test_a_changed_weights_file_is_fused_again(dataset, host, tmp_path):
    cache, weights = tmp_path / "cache", tmp_path / "w.txt"
    weights.write_text("0.5")
    methods = {"scaled-first": {"weights": str(weights)}}
    _run(dataset, host, cache, methods=methods)
    weights.write_text("0.25")
    changed = _run(dataset, host, cache, methods=methods)
    assert changed.produced == 2
    assert changed.rows == _fresh(dataset, host, tmp_path, methods=methods).rows


def test_another_fusekit_version_is_fused_again(dataset, host, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _run(dataset, host, cache)
    monkeypatch.setattr(fusekit, "__version__", fusekit.__version__ + "+other")
    assert _run(dataset, host, cache).produced == 2


@pytest.mark.parametrize("damage", ["edited", "truncated", "record-garbled", "record-wrong-type"])
def test_a_corrupt_cache_entry_is_recomputed_with_a_warning(dataset, host, tmp_path, damage):
    cache = tmp_path / "cache"
    first = _run(dataset, host, cache)
    png = _cached_png(cache, "a")
    record = png.with_suffix(".json")
    if damage == "edited":
        write(png, np.zeros((24, 24), np.uint8))
    elif damage == "truncated":
        png.write_bytes(png.read_bytes()[:60])
    elif damage == "record-garbled":
        record.write_text("{not json")
    else:
        record.write_text(json.dumps(["key", "sha256"]))
    with pytest.warns(FusekitWarning, match="a.png"):
        again = _run(dataset, host, cache)
    assert again.produced == 1 and not again.failures
    assert again.rows == first.rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusekitWarning)  # repaired: no warning the next time
        assert _run(dataset, host, cache).produced == 0


def test_scores_follow_the_profile_and_metric_set(dataset, host, tmp_path):
    """Only fused images are cached: a rerun with another profile or metric set scores afresh."""
    cache = tmp_path / "cache"
    _run(dataset, host, cache)
    other = fusekit.evaluate(dataset, methods=["first-source"], metrics="en,ssim", profile="cddfuse",
                             cache_dir=cache, host=host)
    truth = fusekit.evaluate(dataset, methods=["first-source"], metrics="en,ssim", profile="cddfuse",
                             cache_dir=tmp_path / "fresh", host=host)
    assert other.produced == 0 and other.rows == truth.rows


def test_the_cli_shows_the_corrupt_entry_warning_on_one_line(run_cli, dataset, host, tmp_path):
    cache = tmp_path / "cache"
    args = ["eval", dataset, "-m", "first-source", "--metrics", "en", "--cache", cache, "--no-progress"]
    assert run_cli(args, host=host).exit_code == 0
    _cached_png(cache, "b").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_cli(args, host=host)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "b.png" in line]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "again" in lines[0]


def test_an_edited_third_party_method_is_not_served_from_the_cache(tmp_path, monkeypatch):
    """The fusekit version does not change when a plugin is upgraded; the file defining it does."""
    import importlib

    from fusekit.evaluation.cache import method_key

    plugin = tmp_path / "my_fusion_plugin.py"
    source = ("from fusekit import Fuser\n\nclass Mine(Fuser):\n    name = 'mine'\n"
              "    def fuse(self, sources):\n        return sources[{}]\n")
    plugin.write_text(source.format(0))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_fusion_plugin")
    before = method_key(module.Mine, [])
    plugin.write_text(source.format(1))   # the plugin's code changes, its name and options do not
    assert method_key(module.Mine, []) != before
    from fusekit_classic.simple import Average  # fusekit's own methods: keyed by the fusekit version

    assert "code" not in method_key(Average, [])
