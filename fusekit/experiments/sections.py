"""Named sections of a Markdown file, ``<!-- begin NAME -->`` ... ``<!-- end NAME -->``, replaced in place."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..io import write_bytes_atomic


def replace_section(document: str, name: str, text: str) -> str:
    """``document`` with section ``name`` replaced by ``text``, or with ``text`` appended if it has none.

    Parameters
    ----------
    document : str
        The Markdown text; everything outside the section is kept byte for byte.
    name : str
        Section name in the markers.
    text : str
        The new section, with its markers or without (then they are added).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        The document has the begin marker without an end marker after it.
    """
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = text.strip("\n")
    if not text.startswith(begin):
        text = f"{begin}\n{text}\n{end}"
    if begin not in document:
        return (document.rstrip("\n") + "\n\n" if document.strip() else "") + text + "\n"
    head, rest = document.split(begin, 1)
    if end not in rest:
        raise ValueError(f"section {name!r} has no {end!r} after its begin marker; fix the file by hand")
    return head + text + rest.split(end, 1)[1]


def write_section(name: str, text: str, path: str | os.PathLike) -> Path:
    """Replace (or append) section ``name`` of the Markdown file ``path`` with ``text``.

    The file is rewritten atomically (:func:`fusekit.io.write_bytes_atomic`)
    and the read-modify-write holds a lock on its folder, so benchmarks that
    write other sections of the same file at the same time keep each other's.

    Parameters
    ----------
    name : str
        Section name in the markers.
    text : str
        The section, with or without its markers (see :func:`replace_section`).
    path : path-like
        The Markdown file; created if missing.

    Returns
    -------
    Path
    """
    path = Path(path)
    with _folder_lock(path.parent if str(path.parent) else Path(".")):
        old = path.read_bytes().decode("utf-8") if path.exists() else ""  # newlines kept as they are
        return write_bytes_atomic(path, replace_section(old, name, text).encode("utf-8"), what="Markdown file")


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on ``folder`` (nothing where the platform has none)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU model and its vector extensions, for a benchmark section (``"AMD EPYC, AVX2, FMA"``).

    Read from ``cpuinfo`` (Linux's ``/proc/cpuinfo``); ``"CPU not known"`` where it cannot be read. The
    same machine kind can land on hosts with or without AVX-512, which changes absolute times by up to
    2x, so a section names it.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return "CPU not known"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 "CPU not known")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    named = [label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("fma", "FMA")) if flag in flags]
    return ", ".join([model, *named]) if named else model
