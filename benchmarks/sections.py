"""Replace one marked section of ``BENCHMARKS.md``, keeping the others (shared by the benchmarks)."""

from __future__ import annotations

from pathlib import Path

from fusekit.io import write_bytes_atomic

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(mark: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Put ``text`` between ``<!-- begin MARK -->`` and ``<!-- end MARK -->`` of ``path``.

    Parameters
    ----------
    mark : str
        Section name in the markers.
    text : str
        The whole section, markers included (as the benchmarks render it).
    path : Path
        The Markdown file; created with a title if missing. The section is
        appended when its markers are not there yet. Written atomically.
    """
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    begin, end = f"<!-- begin {mark} -->", f"<!-- end {mark} -->"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    write_bytes_atomic(path, new.encode("utf-8"), what="benchmark table")
