"""Write one marked section of ``BENCHMARKS.md``: :func:`fusekit.experiments.write_section`, for older scripts."""

from __future__ import annotations

from pathlib import Path

from fusekit.experiments import sections

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(mark: str, text: str, path: Path = BENCHMARKS_MD) -> Path:
    """:func:`fusekit.experiments.write_section` into ``BENCHMARKS.md`` by default."""
    return sections.write_section(mark, text, path)
