"""Experiments: run methods over dataset splits with caching, score them, write tables, sheets and sections.

What the scripts in ``benchmarks/`` do, as a small API a user can call too:

>>> from fusekit import experiments as ex                                   # doctest: +SKIP
>>> tno = ex.Split("ivif", "tno", Path("data/ivif/tno/test"), ("ir", "vi"))  # doctest: +SKIP
>>> runs = {"mine": ex.Run("refusion", {"weights": "mine.safetensors"}),
...         "max": ex.Run("max")}                                          # doctest: +SKIP
>>> scores = ex.compare([tno], runs, "out/fused", profile="cddfuse")[tno]   # doctest: +SKIP
>>> means = scores.means()               # label -> one mean per metric     # doctest: +SKIP
>>> print("\\n".join(ex.markdown_table(["run", *scores.metrics],
...       [[k, *map(ex.fmt, v)] for k, v in means.items()])))             # doctest: +SKIP
>>> ex.write_section("mine", text, "RESULTS.md")                          # doctest: +SKIP

* :mod:`~fusekit.experiments.runs`: :class:`Split`, :class:`Run`,
  :func:`fuse` (a content-keyed cache of fused images, shared with
  ``fusekit eval``), :func:`run_folder`, :func:`run_side_by_side`;
* :mod:`~fusekit.experiments.scores`: :func:`score` (:func:`fusekit.evaluate`,
  the numbers of ``fusekit eval``), :func:`compare` (fuse and score several
  splits), :class:`Scores` (per-image values, means over the images every run
  scored), :func:`read_scores` (per-image CSV tables);
* :mod:`~fusekit.experiments.tables`: :func:`fmt`, :func:`within`,
  :func:`task_mean`, :func:`mean_spread`, :func:`markdown_table`;
* :mod:`~fusekit.experiments.sheets`: labelled contact sheets
  (:func:`runs_sheet`, :func:`write_sheet`, :func:`scene_rows`, :func:`sheet_titles`);
* :mod:`~fusekit.experiments.sections`: :func:`write_section` replaces one
  ``<!-- begin NAME -->`` ... ``<!-- end NAME -->`` section of a Markdown file
  atomically and keeps the rest byte for byte;
* :mod:`~fusekit.experiments.suite`: the suite of ``BENCHMARKS.md`` (test
  splits, baselines, sheet scenes, the yardstick and its tables).

Images are floats in [0, 1] (``H x W`` or ``H x W x 3``); scores follow the
metric profile (``cddfuse`` or ``standard``, see ``fusekit eval --profile NAME --list-metrics``).
"""

from __future__ import annotations

from .runs import Run, Split, fuse, run_folder, run_side_by_side
from .scores import Scores, compare, read_scores, score
from .sections import cpu_description, replace_section, write_section
from .sheets import runs_sheet, scene_rows, sheet_titles, to_palette, write_sheet
from .tables import fmt, markdown_table, mean_spread, task_mean, within

__all__ = [
    "Split", "Run", "fuse", "run_folder", "run_side_by_side", "Scores", "score", "compare", "read_scores",
    "cpu_description", "replace_section", "write_section", "runs_sheet", "scene_rows", "sheet_titles",
    "to_palette", "write_sheet",
    "fmt", "markdown_table", "mean_spread", "task_mean", "within",
]
