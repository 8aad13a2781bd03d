"""Numbers to Markdown: task means, mean and spread over seeds, the tables of ``BENCHMARKS.md``."""

from __future__ import annotations

from typing import Iterable, Sequence


def fmt(value: float) -> str:
    """A metric value as the tables show it: 3 decimals below 10, else 2."""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def within(ours: float, ref: float, tol: float = 0.05) -> bool:
    """Whether ``ours`` is better than ``ref`` or at most ``tol`` (relative) worse; higher is better."""
    return ours >= ref * (1 - tol)


def task_mean(per_split: Sequence[Sequence[float]]) -> list[float]:
    """Unweighted mean over splits, metric by metric.

    Parameters
    ----------
    per_split : sequence of sequence of float
        One row of per-metric means per split (e.g. ``Scores.means()[label]``).

    Returns
    -------
    list of float
        One mean per metric: every split counts the same, whatever its size.
    """
    return [sum(row[k] for row in per_split) / len(per_split) for k in range(len(per_split[0]))]


def mean_spread(values: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Mean and half the range (max - min) / 2 of each metric over repeats, e.g. seeds."""
    n = len(values)
    mean = [sum(v[k] for v in values) / n for k in range(len(values[0]))]
    spread = [(max(v[k] for v in values) - min(v[k] for v in values)) / 2 for k in range(len(values[0]))]
    return mean, spread


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table: the header, the rule, one line per row (an empty cell as ``| |``)."""
    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]
