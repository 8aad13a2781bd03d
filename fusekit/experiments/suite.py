"""The benchmark suite of ``BENCHMARKS.md``: test splits, classic baselines, sheet scenes, the yardstick.

The data are laid out as ``<data>/<task>/<dataset>/test/<source>/`` (see
``docs/benchmark_data_sources.tsv``); :func:`data_root` finds them as the
tests do.

References
----------
Bai et al., "ReFusion: Learning image fusion from reconstruction with learnable
loss via meta-learning", IJCV 2024 (the yardstick's checkpoints).
Zhao et al., "CDDFuse", CVPR 2023 (the ``cddfuse`` profile's conventions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .runs import Run, Split
from .scores import compare
from .tables import fmt, markdown_table, within

#: The metrics of every suite table (all higher-is-better), and their column headers.
METRICS = ("en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim")
HEAD = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")

_CLASSIC = ("average", "max", "laplacian-pyramid", "guided-filter")
#: (task, dataset, source sub-folders in slot order, classic baselines) of each test split with a yardstick.
SPLITS = (
    ("ivif", "msrs", ("ir", "vi"), _CLASSIC),
    ("ivif", "tno", ("ir", "vi"), _CLASSIC),
    ("ivif", "roadscene", ("ir", "vi"), _CLASSIC),
    ("mif", "harvard_mri_ct", ("ct", "mri"), _CLASSIC),
    ("mif", "harvard_mri_pet", ("pet", "mri"), _CLASSIC),
    ("mif", "harvard_mri_spect", ("spect", "mri"), _CLASSIC),
    ("mfif", "lytro", ("a", "b"), ("average", "laplacian-pyramid", "guided-filter", "focus")),
    ("meif", "mefb", ("under", "over"), ("average", "laplacian-pyramid", "guided-filter", "exposure")),
)
#: Test splits without a yardstick: a check on choices read off the others.
CHECK_SPLITS = (("ivif", "vifb", ("ir", "vi"), ()), ("ivif", "llvip", ("ir", "vi"), ()))

#: The ReFusion authors' published checkpoints, ``cddfuse`` profile, mean over each full test split
#: (measured on this machine, issue 6), in :data:`METRICS` order.
YARDSTICK = {
    "msrs": (6.68, 45.8, 12.50, 4.21, 2.36, 1.745, 0.876, 0.631, 0.960),
    "tno": (7.10, 43.8, 12.89, 4.86, 2.04, 1.732, 0.754, 0.552, 1.016),
    "roadscene": (7.30, 47.7, 15.58, 5.77, 2.18, 1.735, 0.712, 0.583, 0.953),
    "harvard_mri_ct": (5.51, 76.1, 33.65, 8.66, 2.20, 1.425, 0.485, 0.653, 0.530),
    "harvard_mri_pet": (4.89, 70.8, 27.15, 7.91, 1.81, 1.665, 0.610, 0.704, 0.464),
    "harvard_mri_spect": (4.60, 61.9, 20.26, 5.37, 1.94, 1.661, 0.713, 0.735, 0.429),
    "lytro": (7.55, 59.5, 18.62, 6.30, 4.63, 1.009, 1.177, 0.701, 1.464),
    "mefb": (6.97, 60.1, 15.39, 4.38, 4.04, 0.806, 1.258, 0.656, 0.833),
}

#: task -> the (dataset, scene) rows of its contact sheets; a scene given as an int k (or None: 0)
#: is the k-th in name order.
SCENES = {
    "ivif": [("msrs", "00055D"), ("roadscene", None)],
    "mif": [("harvard_mri_ct", None), ("harvard_mri_pet", None)],
    "mfif": [("lytro", None), ("lytro", 1)],
    "meif": [("mefb", None), ("mefb", 1)],
}


def data_root() -> Path:
    """The benchmark data: ``$FUSEKIT_DATA``, else ``shared/data`` beside the checkout (as the tests look)."""
    return Path(os.environ.get("FUSEKIT_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data"
                ).expanduser()


def splits(task: str | None = None, *, check: bool = False, data: str | os.PathLike | None = None) -> list[Split]:
    """The suite's test splits of ``task`` (default all), in table order; ``check``: then the check splits."""
    rows = SPLITS + (CHECK_SPLITS if check else ())
    root = Path(data) if data is not None else data_root()
    return [Split(t, d, root / t / d / "test", s) for t, d, s, _ in rows if task is None or t == task]


def split(dataset: str, *, data: str | os.PathLike | None = None) -> Split:
    """The suite's test split named ``dataset`` (``"tno"``)."""
    return next(s for s in splits(check=True, data=data) if s.dataset == dataset)


def classics(dataset: str) -> tuple[str, ...]:
    """The classic baselines compared on ``dataset``."""
    return next(c for _, d, _, c in SPLITS + CHECK_SPLITS if d == dataset)


def sheet_scenes(task: str, *, data: str | os.PathLike | None = None,
                 keep: Callable[[Split, str], bool] | None = None) -> list[tuple[Split, str]]:
    """The ``(split, scene)`` rows of ``task``'s contact sheets (:data:`SCENES`).

    ``keep(split, name)``: only those scenes count when a row's scene is given by position.
    """
    out = []
    for dataset, pick in SCENES[task]:
        where = split(dataset, data=data)
        if not isinstance(pick, str):
            pick = sorted(n for n in where.sets() if keep is None or keep(where, n))[pick or 0]
        out.append((where, pick))
    return out


def compare_runs(task: str, runs: Mapping[str, Run], work: str | os.PathLike, *, tag: str, jobs: int = 1,
                 profile: str = "cddfuse", log: Callable[[str], None] | None = print
                 ) -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """Fuse and score runs on ``task``'s yardstick and check splits, for :func:`yardstick_tables`.

    Fused images go to ``<work>/<task>/<dataset>/<label>`` (cached, see
    :func:`~fusekit.experiments.fuse`), per-image scores to
    ``<work>/csv/<dataset>-<n>-<profile>-<tag>.csv`` (scored again on each call);
    ``log`` gets a line per run that fused images and per table written.

    Returns
    -------
    means : dict
        Dataset -> label -> the :data:`METRICS` means over the images every run scored.
    counts : dict
        Dataset -> number of those images.
    """
    work = Path(work)
    scores = compare(splits(task, check=True), runs, work, profile=profile, metrics=METRICS, jobs=jobs, log=log,
                     table=lambda s, p: work / "csv" / f"{s.dataset}-{len(s.sets())}-{p}-{tag}.csv")
    return ({s.dataset: sc.means() for s, sc in scores.items()},
            {s.dataset: len(sc.images()) for s, sc in scores.items()})


def yardstick_tables(task: str, labels: Sequence[str], means: Mapping[str, Mapping[str, Sequence[float]]],
                     counts: Mapping[str, int], check_note: str) -> list[str]:
    """Markdown lines: runs against the yardstick per split and per task, then on the check splits.

    Parameters
    ----------
    task : str
    labels : sequence of str
        The runs, in row order; the first is the reference of the check tables.
    means : mapping
        Dataset -> label -> the :data:`METRICS` means.
    counts : mapping of str to int
        Dataset -> number of images.
    check_note : str
        Ends the sentence "a check on splits ..." above each check table.

    Returns
    -------
    list of str
        Per yardstick split the means and how many are within 5% of the
        yardstick; the task mean (unweighted over those splits) with the
        metrics short of it; per check split each run's change from the first.
    """
    head = ["weights", *HEAD]
    lines: list[str] = []
    scored = [d for d in means if d in YARDSTICK]
    for dataset in scored:
        by = means[dataset]
        lines += [f"**{task}/{dataset}** ({counts[dataset]} images)", ""]
        lines += markdown_table(head + ["within 5%"], [
            ["*yardstick (authors' ckpt)*", *map(fmt, YARDSTICK[dataset]), ""],
            *([label, *map(fmt, by[label]), f"{sum(map(within, by[label], YARDSTICK[dataset]))}/9"]
              for label in labels)]) + [""]
    yard = [sum(YARDSTICK[d][k] for d in scored) / len(scored) for k in range(len(HEAD))]
    rows = [["*yardstick (authors' ckpt)*", *map(fmt, yard), "", ""]]
    for label in labels:
        mean = [sum(means[d][label][k] for d in scored) / len(scored) for k in range(len(HEAD))]
        short = [h for h, a, b in zip(HEAD, mean, yard) if not within(a, b)]
        rows.append([label, *map(fmt, mean), f"{9 - len(short)}/9", ", ".join(short) or "-"])
    span = f"unweighted mean of the {len(scored)} splits" if len(scored) > 1 else "its one split"
    lines += [f"**{task}, task mean** ({span})", ""] + markdown_table(head + ["within 5%", "short on"], rows)
    base = labels[0]
    for dataset in (d for d in means if d not in YARDSTICK):
        by = means[dataset]
        lines += ["", f"**{task}/{dataset}** ({counts[dataset]} images; no yardstick: a check on splits "
                  f"{check_note}; in brackets the change from {base})", ""]
        lines += markdown_table(head, ([label, *(fmt(v) + ("" if label == base else f" ({100 * (v / b - 1):+.1f}%)")
                                                  for v, b in zip(by[label], by[base]))] for label in labels))
    return lines
