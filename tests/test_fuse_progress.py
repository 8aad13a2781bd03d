"""Progress of ``fusekit fuse``: an elapsed-time line for one long fuse, a bar for folders, on stderr only."""

from __future__ import annotations

import time
import types

import imageio.v3 as iio
import numpy as np
import pytest

import fusekit.cli.fuse as fuse_cli
from fusekit import Fuser, hookimpl
from fusekit.api import fuse_images
from fusekit.interfaces import report_progress, reporting_progress
from fusekit.plugins import build_host


class Slow(Fuser):
    """A test method that takes a moment and reports four steps, like a tiled engine."""

    name = "slow"

    def fuse(self, sources):
        for step in range(1, 5):
            time.sleep(0.03)
            report_progress(step, 4)
        return np.mean(sources, axis=0).astype(np.float32)


@pytest.fixture(scope="module")
def host():
    @hookimpl
    def register_fusers(register):
        register(Slow)

    return build_host(entry_points=False, extra=[(types.SimpleNamespace(register_fusers=register_fusers), "test")])


@pytest.fixture
def immediate(monkeypatch):
    """Show the elapsed-time line at once and redraw it often (the real delay is a second)."""
    monkeypatch.setattr(fuse_cli, "SHOW_AFTER_S", 0.0)
    monkeypatch.setattr(fuse_cli, "REDRAW_S", 0.005)


def run(args, host):
    from click.testing import CliRunner

    from fusekit.cli import make_cli

    return CliRunner().invoke(make_cli(host), [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        path = tmp_path / "in" / name / "x.png"
        path.parent.mkdir(parents=True)
        iio.imwrite(path, rng.integers(0, 256, (24, 32), dtype=np.uint8))
        paths.append(path)
    return paths


def test_forced_progress_is_on_stderr_only_and_leaves_the_output_alone(host, pair, tmp_path, immediate):
    shown = run(["fuse", "-m", "slow", *pair, "-o", tmp_path / "shown.png", "--progress"], host)
    assert shown.exit_code == 0, shown.stderr
    assert "fuse slow:" in shown.stderr and "step 4/4 (100%)" in shown.stderr
    assert shown.stderr.rstrip().endswith(f"wrote {tmp_path / 'shown.png'}")
    assert shown.stdout == ""
    quiet = run(["fuse", "-m", "slow", *pair, "-o", tmp_path / "quiet.png", "--no-progress"], host)
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert quiet.stderr == f"wrote {tmp_path / 'quiet.png'}\n"
    assert (tmp_path / "shown.png").read_bytes() == (tmp_path / "quiet.png").read_bytes()


def test_no_progress_when_stderr_is_not_a_terminal(host, pair, tmp_path, immediate):
    result = run(["fuse", "-m", "slow", *pair, "-o", tmp_path / "f.png"], host)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"wrote {tmp_path / 'f.png'}\n"


def test_a_quick_fuse_stays_silent_even_when_forced(host, pair, tmp_path):
    result = run(["fuse", "-m", "slow", *pair, "-o", tmp_path / "f.png", "--progress"], host)
    assert result.exit_code == 0 and result.stderr == f"wrote {tmp_path / 'f.png'}\n"  # 0.12 s < SHOW_AFTER_S


def test_folder_mode_bar_follows_the_same_flag(host, pair, tmp_path):
    folders = [p.parent for p in pair]
    shown = run(["fuse", "-m", "slow", *folders, "-o", tmp_path / "out1", "--progress"], host)
    assert shown.exit_code == 0 and shown.stdout == "" and "fuse slow" in shown.stderr and "set" in shown.stderr
    quiet = run(["fuse", "-m", "slow", *folders, "-o", tmp_path / "out2", "--no-progress"], host)
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert quiet.stderr == f"fused 1 of 1 sets into {tmp_path / 'out2'}\n"


def test_the_elapsed_line_counts_steps_and_finishes_the_line(monkeypatch):
    import io

    monkeypatch.setattr(fuse_cli, "SHOW_AFTER_S", 0.0)
    stream = io.StringIO()
    with fuse_cli.Elapsed("fuse x", show=True, stream=stream) as elapsed:
        elapsed.report(3, 12)
        time.sleep(0.05)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and "step 3/12 (25%)" in text
    stream = io.StringIO()
    with fuse_cli.Elapsed("fuse x", show=False, stream=stream):
        time.sleep(0.02)
    assert stream.getvalue() == ""


def test_api_progress_callback_and_nesting():
    seen = []
    a = np.zeros((4, 4), np.float32)
    fused = fuse_images(Slow(), [a, a], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and fused.shape == (4, 4)
    outer = []
    with reporting_progress(lambda done, total: outer.append(done)):
        fuse_images(Slow(), [a, a], progress=lambda done, total: None)
        report_progress(9)
    assert outer == [9]  # the inner callback had the reports; the outer one is back afterwards
    report_progress(1, 1)  # nobody listens: nothing happens


def test_a_broken_progress_callback_never_fails_the_fuse():
    def broken(done, total):
        raise RuntimeError("display gone")

    a = np.ones((4, 4), np.float32)
    assert fuse_images(Slow(), [a, a], progress=broken).max() == 1.0
