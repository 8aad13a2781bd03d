"""Helpers for the bad-input corpus: write images, hash folders, check one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def write(path: Path, array: np.ndarray, **kwargs) -> Path:
    """Write ``array`` as an image at ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, array, **kwargs)
    return path


def digest(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under ``paths`` (files or folders), keyed by path."""
    out: dict[str, str] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def one_line_error(result, *needles: str, code: int | None = None) -> str:
    """Assert a CLI result failed with exactly one ``error:`` line containing ``needles``."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def hidden_files(folder: Path) -> list[str]:
    """Names of hidden files (temporaries) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
