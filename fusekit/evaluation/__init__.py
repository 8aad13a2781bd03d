"""Evaluate fused images of a dataset with the fusion metrics.

A *dataset* is a folder with one sub-folder per source modality, holding
files that share names (any image extension):

* infrared-visible (``ivif``): ``ir`` then ``vi`` (also ``infrared``, ``visible``);
* medical (``mif``): ``ct``, ``pet`` or ``spect``, then ``mri``;
* multi-focus (``mfif``): ``a`` then ``b`` (also ``near``, ``far``);
* multi-exposure (``meif``): ``under`` then ``over``.

This is the layout of ``shared/data/<task>/<dataset>/<split>/`` and the
source order ReFusion's test script uses (the functional image before MRI);
``sources=("x", "y")`` picks and orders other sub-folders.

Fused images come from folders (``fused=``: files with the same names, any
extension, e.g. another tool's output) or are produced by running methods
(``methods=``). Produced images are written as 8-bit PNG (16-bit if a
source is 16-bit) into a cache folder and reused by later runs, so an
interrupted run resumes where it stopped; writes are atomic. A cached image
is used only while its key matches: the content of every source, the choice
and order of the source sub-folders, the method and its options (with the
content of a weights file they name), and the fusekit version; a cached
image that was changed or is corrupt is fused again with a warning (see
:mod:`fusekit.evaluation.cache`). Scores are never cached. The key does not
cover a method's code: after editing a plugin, delete its cache folder or
use another ``cache_dir``.

Every image is scored on its luminance (Y of BT.601 YCbCr, 0-255; see the
profile). Work items (one scene each, with every method's fused image of it,
so the sources' statistics are computed once for all methods) run through
:func:`fusekit.execution.execute`: in-process for ``jobs=1``, in worker
processes for ``jobs > 1``, or on any executor passed in, such as
:func:`fusekit.execution.dask_executor`'s.

Problems with single images (missing or mismatched files, unreadable files,
a metric that cannot be computed) are collected as
:class:`Failure` records; the run goes on.

Examples
--------
>>> import fusekit                                                # doctest: +SKIP
>>> report = fusekit.evaluate("data/ivif/tno/test", methods=["average", "max"],
...                           metrics="en,mi,ssim", jobs=2)       # doctest: +SKIP
>>> print(report.format_table())                                  # doctest: +SKIP
>>> report.write("tno.csv")                                       # doctest: +SKIP
"""

from __future__ import annotations

from .dataset import LAYOUTS, Dataset, find_dataset
from .report import INPUT_NOTE, EvaluationReport, Failure, Stat
from .runner import evaluate
from .sources import FusedFolder, FusedMethod, default_cache_dir
from .worker import run_task

__all__ = [
    "evaluate", "find_dataset", "Dataset", "LAYOUTS", "EvaluationReport", "Failure", "Stat",
    "INPUT_NOTE", "FusedFolder", "FusedMethod", "default_cache_dir", "run_task",
]
