"""Write failures (full disk, quota, Ctrl-C mid-write): one line, never a truncated or partial file."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from fusekit.errors import InputError
from fusekit.io import write_image

from .corpus import hidden_files, write


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tif"])
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, ext):
    rng = np.random.default_rng(0)
    a = write(tmp_path / "a.png", rng.integers(0, 256, (128, 128), dtype=np.uint8))
    b = write(tmp_path / "b.png", rng.integers(0, 256, (128, 128), dtype=np.uint8))
    out = tmp_path / "out" / f"f.{ext}"
    proc = subprocess.run([sys.executable, "-m", "fusekit", "fuse", "-m", "average", str(a), str(b), "-o", str(out)],
                          capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and f"f.{ext}" in lines[0], proc.stderr
    assert "free space" in lines[0]
    assert not out.exists() and not hidden_files(out.parent)


def test_a_mocked_enospc_midway_leaves_nothing(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def failing_write(fd, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:100])  # a short write first, then the disk is full

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(InputError, match="No space left on device"):
        write_image(tmp_path / "f.png", np.random.default_rng(0).random((64, 64), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_write_removes_the_temporary(tmp_path, monkeypatch):
    def interrupted_write(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "f.png", np.zeros((8, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from fusekit.io import atomic_file

    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="serialiser broke"):
        with atomic_file(target, what="weights") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("serialiser broke")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    with atomic_file(target, what="weights") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".w.fusekit-")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
