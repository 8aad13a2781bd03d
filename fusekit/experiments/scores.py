"""Scores of runs on a split: computed with :func:`fusekit.evaluate`, kept as per-image CSV tables."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..errors import InputError
from .runs import Run, Split, fuse, run_folder

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginHost


@dataclass
class Scores:
    """Per-image metric values of several runs (labels) on one split.

    Attributes
    ----------
    metrics : tuple of str
        Metric names, the order of every value tuple.
    values : dict
        Label -> image name -> one value per metric; only images whose every
        metric is finite.
    dropped : int
        Rows left out: a metric missing, failed or not finite.
    """

    metrics: tuple[str, ...]
    values: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)
    dropped: int = 0

    def add(self, label: str, image: str, row: Mapping[str, Any]) -> None:
        """Add one image's ``row`` (metric name -> value or text) of ``label``; count it dropped if unusable."""
        try:
            values = tuple(float(row[m]) for m in self.metrics)
        except (KeyError, ValueError, TypeError):
            values = ()
        if values and all(math.isfinite(v) for v in values):
            self.values.setdefault(label, {})[image] = values
        else:
            self.dropped += 1

    def images(self) -> list[str]:
        """The images every label has values for, sorted: the ones :meth:`means` averages."""
        if not self.values:
            return []
        return sorted(set.intersection(*(set(by) for by in self.values.values())))

    def means(self) -> dict[str, list[float]]:
        """Label -> mean of each metric over :meth:`images` (the same images for every label).

        Raises
        ------
        InputError
            No image has usable values for every label.
        """
        images = self.images()
        if not images:
            raise InputError(f"no image has finite {', '.join(self.metrics)} for every one of "
                             f"{', '.join(self.values) or 'no run'}")
        return {label: [math.fsum(by[i][k] for i in images) / len(images) for k in range(len(self.metrics))]
                for label, by in self.values.items()}


def read_scores(tables: Iterable[str | os.PathLike], metrics: Sequence[str] | None = None) -> Scores:
    """Scores from per-image CSV tables (``image,method,<metric>...``, as ``fusekit eval -o x.csv`` writes).

    Parameters
    ----------
    tables : iterable of path-like
        Read in order; a later row of the same image and method wins.
    metrics : sequence of str, optional
        Columns to read (default: every column of the first table after ``method``).

    Returns
    -------
    Scores
    """
    scores = None
    for path in tables:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if scores is None:
                scores = Scores(tuple(metrics or (reader.fieldnames or [])[2:]))
            for row in reader:
                scores.add(row["method"], row["image"], row)
    if scores is None:
        raise InputError("no score table to read")
    return scores


def score(split: Split, fused: Mapping[str, str | os.PathLike] | None = None, *,
          methods: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
          metrics: Sequence[str] | None = None, profile: str = "standard",
          cache_dir: str | os.PathLike | None = None, jobs: int = 1, table: str | os.PathLike | None = None,
          host: "PluginHost | None" = None) -> Scores:
    """Score fused images of a split with :func:`fusekit.evaluate` (the numbers of ``fusekit eval``).

    Parameters
    ----------
    split : Split
    fused : mapping of str to path-like, optional
        Label -> folder of fused images named like the scenes (e.g. from
        :func:`fuse` and :func:`run_folder`).
    methods : sequence or mapping, optional
        Methods ``fusekit eval -m`` runs itself (cached in ``cache_dir``).
    metrics : sequence of str, optional
        Metric names; default every registered metric.
    profile : str
        Metric profile, as for ``fusekit eval --profile`` (default ``"standard"``, as there;
        ``"cddfuse"`` for the numbers papers copy).
    cache_dir : path-like, optional
        ``methods``' cache (see :func:`fusekit.evaluate`).
    jobs : int
        Worker processes.
    table : path-like, optional
        Also write the per-image CSV here (atomically), for :func:`read_scores`.
    host : PluginHost, optional

    Returns
    -------
    Scores
        Failed images and metrics are dropped (see :attr:`Scores.dropped`).
    """
    from ..evaluation import evaluate

    report = evaluate(split.root, fused=dict(fused) if fused else None, methods=methods, sources=split.sources,
                      metrics=metrics, profile=profile, cache_dir=cache_dir, task=split.task, jobs=jobs, host=host)
    if table is not None:
        report.write(table, "csv")
    scores = Scores(tuple(m.name for m in report.metrics))
    for row in report.rows:
        scores.add(row["method"], row["image"], row)
    return scores


def compare(splits: Iterable[Split], runs: Mapping[str, Run], fused_dir: str | os.PathLike, *,
            profile: str = "standard", metrics: Sequence[str] | None = None,
            table: Callable[[Split, str], Path] | None = None, reuse: bool = False, jobs: int = 1,
            log: Callable[[str], None] | None = None) -> dict[Split, Scores]:
    """Fuse each split with every run (:func:`fuse`, cached) and score the runs side by side (:func:`score`).

    Parameters
    ----------
    splits : iterable of Split
    runs : mapping of str to Run
        Label -> run; the labels of the scores.
    fused_dir : path-like
        Root of the fused images (see :func:`run_folder`).
    profile : str
        Metric profile (see :func:`score`).
    metrics : sequence of str, optional
        Metric names; default every registered metric.
    table : callable, optional
        ``table(split, profile)`` -> path of the per-image CSV to write.
    reuse : bool
        Read an existing ``table`` instead of fusing and scoring (it is then
        trusted as it is: name it after what it holds).
    jobs : int
        Scoring processes (fusing runs here, scene by scene).
    log : callable, optional
        Called with one line per run that fused images, and per table written.

    Returns
    -------
    dict of Split to Scores
    """
    out = {}
    for split in splits:
        path = table(split, profile) if table else None
        if reuse and path is not None and path.is_file():
            out[split] = read_scores([path], metrics)
            continue
        for label, n in fuse(split, runs, fused_dir).items():
            if n and log:
                log(f"{split.dataset}: {label}: fused {n}")
        out[split] = score(split, {label: run_folder(fused_dir, split, label) for label in runs},
                           metrics=metrics, profile=profile, jobs=jobs, table=path)
        if path is not None and log:
            log(f"{split.dataset}: scored ({profile}) -> {path}")
    return out
