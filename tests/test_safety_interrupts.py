"""Interrupts and worker limits: stop within 2 s, leave no temporaries, never fork more workers than cores."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.io import FusekitWarning, read_image, remove_stale_temps
from fusekit.plugins import build_host

from .corpus import hidden_files, one_line_error, write

#: A CLI with a slow test method, run as its own process so signals can be sent to it.
SLOW_CLI = textwrap.dedent('''
    import signal, sys, time, types
    # Ctrl-C as in a terminal: a shell that started pytest in the background leaves SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from fusekit import Fuser, hookimpl
    from fusekit.cli import make_cli
    from fusekit.plugins import build_host

    class Slow(Fuser):
        name = "slow"
        def fuse(self, sources):
            time.sleep(0.25)
            return (sources[0] + sources[1]) / 2

    @hookimpl
    def register_fusers(register):
        register(Slow)

    host = build_host(entry_points=False, extra=[(types.SimpleNamespace(register_fusers=register_fusers), "slow")])
    make_cli(host)(args=sys.argv[1:], prog_name="fusekit")
''')


def _folders(root, n, size=(48, 48)):
    rng = np.random.default_rng(0)
    for i in range(n):
        write(root / "x" / f"{i:03d}.png", rng.integers(0, 256, size, dtype=np.uint8))
        write(root / "y" / f"{i:03d}.png", rng.integers(0, 256, size, dtype=np.uint8))
    return root / "x", root / "y"


def _start(tmp_path, args):
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _wait_for_outputs(out, count, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.is_dir() and len([p for p in out.iterdir() if not p.name.startswith(".")]) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"CLI ended early: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail("no outputs appeared")


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_folder_run_fast_and_cleanly(tmp_path, jobs, sig):
    x, y = _folders(tmp_path, 60)
    out = tmp_path / "out"
    proc = _start(tmp_path, ["fuse", "-m", "slow", x, y, "-o", out, "-j", jobs])
    try:
        _wait_for_outputs(out, 2, proc)
        start = time.monotonic()
        # Ctrl-C in a terminal reaches the whole process group, workers included; kill(1) only the main
        os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert took < 2.0, f"took {took:.2f} s to stop"
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted after fusing" in errors[0] and "of 60 sets" in errors[0]
    written = sorted(out.iterdir())
    time.sleep(1.0)
    assert sorted(out.iterdir()) == written, "workers kept fusing after the interrupt"
    assert not hidden_files(out)
    assert 2 <= len(written) < 60
    for path in written:  # every file that exists is complete
        assert read_image(path).shape == (48, 48)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_an_eval_fast_and_keeps_its_cache_complete(tmp_path, jobs):
    _folders(tmp_path / "d", 40)
    (tmp_path / "d" / "x").rename(tmp_path / "d" / "ir")
    (tmp_path / "d" / "y").rename(tmp_path / "d" / "vi")
    cache = tmp_path / "c"
    proc = _start(tmp_path, ["eval", tmp_path / "d", "-m", "slow", "--metrics", "en", "--cache", cache,
                             "--no-progress", "-j", jobs])
    try:
        deadline = time.monotonic() + 60
        while not list(cache.rglob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert took < 2.0, f"took {took:.2f} s to stop"
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted" in errors[0]
    written = sorted(p for p in cache.rglob("*") if p.is_file())
    time.sleep(1.0)
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == written, "workers kept fusing"
    assert not [p for p in written if p.name.startswith(".")]
    assert 1 <= len([p for p in written if p.suffix == ".png"]) < 40


class InterruptsOnB(Fuser):
    """Raises KeyboardInterrupt on the set named b (first source all 77)."""

    name = "interrupts-on-b"

    def fuse(self, sources):
        if np.allclose(sources[0], 77 / 255):
            raise KeyboardInterrupt
        return (sources[0] + sources[1]) / 2


@pytest.fixture(scope="module")
def host():
    @hookimpl
    def register_fusers(register):
        register(InterruptsOnB)

    return build_host(entry_points=False,
                      extra=[(types.SimpleNamespace(register_fusers=register_fusers), "irq")])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_keyboard_interrupt_from_a_plugin_stops_the_batch_cleanly(run_cli, host, tmp_path, jobs):
    for name, value in (("a", 10), ("b", 77), ("c", 200), ("d", 30), ("e", 40), ("f", 50)):
        write(tmp_path / "x" / f"{name}.png", np.full((8, 8), value, np.uint8))
        write(tmp_path / "y" / f"{name}.png", np.full((8, 8), 50, np.uint8))
    out = tmp_path / "out"
    result = run_cli(["fuse", "-m", "interrupts-on-b", tmp_path / "x", tmp_path / "y", "-o", out, "-j", jobs],
                     host=host)
    assert result.exit_code == 130
    one_line_error(result, "interrupted after fusing", "of 6 sets")
    assert "b.png" not in {p.name for p in out.iterdir()} and not hidden_files(out)
    if jobs == "1":
        assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_stale_temporaries_of_a_killed_run_are_removed(run_cli, tmp_path):
    x, y = _folders(tmp_path, 2, size=(8, 8))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".000.fusekit-{dead.pid}-abcd1234.png"
    stale.write_bytes(b"\x89PNG half")
    ours = out / f".001.fusekit-{os.getpid()}-abcd1234.png"  # a live process's write in progress
    ours.write_bytes(b"\x89PNG half")
    keep = out / ".keep"
    keep.write_text("")
    result = run_cli(["fuse", "-m", "average", x, y, "-o", out])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and ours.exists() and keep.exists()
    assert remove_stale_temps(out) == []


def test_eval_removes_stale_temporaries_from_its_cache(tmp_path):
    _folders(tmp_path / "d", 1, size=(8, 8))
    (tmp_path / "d" / "x").rename(tmp_path / "d" / "ir")
    (tmp_path / "d" / "y").rename(tmp_path / "d" / "vi")
    fusekit.evaluate(tmp_path / "d", methods=["average"], metrics="en", cache_dir=tmp_path / "c")
    (folder,) = {p.parent for p in (tmp_path / "c").rglob("000.png")}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".000.fusekit-{dead.pid}-zz99zz99.png"
    stale.write_bytes(b"half")
    fusekit.evaluate(tmp_path / "d", methods=["average"], metrics="en", cache_dir=tmp_path / "c")
    assert not stale.exists()


class _RecordingPool(cf.ProcessPoolExecutor):
    sizes: list[int] = []

    def __init__(self, max_workers=None, **kwargs):
        _RecordingPool.sizes.append(max_workers)
        super().__init__(max_workers=max_workers, **kwargs)


@pytest.mark.parametrize("command", ["eval", "fuse"])
def test_jobs_are_capped_at_the_cores_with_a_warning(run_cli, tmp_path, monkeypatch, command):
    import fusekit.workers

    _folders(tmp_path / "d", 4, size=(8, 8))
    (tmp_path / "d" / "x").rename(tmp_path / "d" / "ir")
    (tmp_path / "d" / "y").rename(tmp_path / "d" / "vi")
    monkeypatch.setattr(fusekit.workers, "usable_cores", lambda: 2)
    monkeypatch.setattr(cf, "ProcessPoolExecutor", _RecordingPool)
    _RecordingPool.sizes = []
    if command == "eval":
        args = ["eval", tmp_path / "d", "-m", "average", "--metrics", "en", "--cache", tmp_path / "c",
                "--no-progress", "-j", "1000"]
    else:
        args = ["fuse", "-m", "average", tmp_path / "d" / "ir", tmp_path / "d" / "vi", "-o", tmp_path / "o",
                "-j", "1000"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    assert "warning: -j 1000 is more than the 2 core(s) here; using 2" in result.stderr
    assert _RecordingPool.sizes == [2]


def test_jobs_cap_warning_in_the_api(tmp_path, monkeypatch):
    import fusekit.workers

    _folders(tmp_path / "d", 2, size=(8, 8))
    (tmp_path / "d" / "x").rename(tmp_path / "d" / "ir")
    (tmp_path / "d" / "y").rename(tmp_path / "d" / "vi")
    monkeypatch.setattr(fusekit.workers, "usable_cores", lambda: 1)
    with pytest.warns(FusekitWarning, match="-j 64 is more than the 1 core"):
        report = fusekit.evaluate(tmp_path / "d", methods=["average"], metrics="en", cache_dir=tmp_path / "c",
                                  jobs=64)
    assert len(report.rows) == 2
