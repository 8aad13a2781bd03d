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
interrupted run resumes where it stopped; writes are atomic. The cache is
keyed by the dataset folder, the method and its options, not by the method's
code or weights: after changing those, delete the method's cache folder or
use another ``cache_dir``.

Every image is scored on its luminance (Y of BT.601 YCbCr, 0-255; see the
profile). Work items (one fused image each) run on a
:class:`concurrent.futures.Executor`: in-process for ``jobs=1``, a
:class:`~concurrent.futures.ProcessPoolExecutor` for ``jobs > 1``, or any
executor passed in, such as ``dask.distributed.Client(...).get_executor()``.

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

import concurrent.futures as cf
import csv
import hashlib
import io as _io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import FusekitError, InputError, ParameterError
from .metrics.base import Metric
from .metrics.profiles import Profile, get_profile

if TYPE_CHECKING:  # pragma: no cover
    from .plugins import PluginHost

#: Recognised source layouts: (task, ((aliases of source 1), (aliases of source 2))).
LAYOUTS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("ivif", (("ir", "infrared"), ("vi", "vis", "visible"))),
    ("mif", (("ct", "pet", "spect", "ct_pet_spect"), ("mri",))),
    ("mfif", (("a", "near"), ("b", "far"))),
    ("meif", (("under",), ("over",))),
)

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: What every report says about its inputs.
INPUT_NOTE = "luminance (Y of BT.601 YCbCr), 0-255 scale"


# ---------------------------------------------------------------------------
# dataset discovery


@dataclass(frozen=True)
class Dataset:
    """Source image sets of a dataset folder.

    Attributes
    ----------
    root : Path
    modalities : tuple of str
        Sub-folder names in source order, e.g. ``("ir", "vi")``.
    task : str or None
        ``"ivif"``, ``"mif"``, ``"mfif"`` or ``"meif"`` for a recognised
        layout, else ``None``.
    items : dict of str to tuple of Path
        Image name (file name without extension) -> one file per modality.
    problems : dict of str to str
        Names that cannot be scored and why (missing in a modality, several
        files with one name).
    """

    root: Path
    modalities: tuple[str, ...]
    task: str | None
    items: dict[str, tuple[Path, ...]]
    problems: dict[str, str] = field(default_factory=dict)


def _images_by_stem(folder: Path) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in _IMAGE_EXTENSIONS:
            by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _detect_layout(root: Path) -> tuple[tuple[str, ...], str | None]:
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    matches = []
    for task, slots in LAYOUTS:
        picked = []
        for aliases in slots:
            found = [d for d in subdirs if d.lower() in aliases]
            if len(found) != 1:
                break
            picked.append(found[0])
        else:
            matches.append((tuple(picked), task))
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(subdirs) if subdirs else "(no sub-folders)"
    if not matches:
        raise InputError(
            f"{root}: no recognised source sub-folders (found: {shown}); expected ir/vi, "
            "ct|pet|spect/mri, a/b or under/over, or name them with --sources X,Y"
        )
    raise InputError(f"{root}: several source layouts match ({shown}); pick one with --sources X,Y")


def find_dataset(root: str | os.PathLike, sources: Sequence[str] | str | None = None) -> Dataset:
    """Find the source sets of a dataset folder.

    Parameters
    ----------
    root : path-like
        Folder with one sub-folder per source modality.
    sources : sequence of str or str, optional
        Sub-folder names in source order (``["ir", "vi"]`` or ``"ir,vi"``);
        default: detected from :data:`LAYOUTS`.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        The folder is missing, no layout is recognised, a named sub-folder is
        missing, or no name is shared by all sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give a dataset folder with one sub-folder per source")
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    if sources:
        modalities = tuple(sources)
        if len(modalities) < 2:
            raise InputError(f"--sources needs two or more sub-folders, got {','.join(modalities)}")
        missing = [m for m in modalities if not (root / m).is_dir()]
        if missing:
            present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "(none)"
            raise InputError(f"{root}: no sub-folder {missing[0]!r} (found: {present}); fix --sources")
        task = next((t for t, slots in LAYOUTS
                     if len(slots) == len(modalities)
                     and all(m.lower() in a for m, a in zip(modalities, slots))), None)
    else:
        modalities, task = _detect_layout(root)
    listings = [_images_by_stem(root / m) for m in modalities]
    items: dict[str, tuple[Path, ...]] = {}
    problems: dict[str, str] = {}
    for name in sorted(set().union(*listings)):
        missing = [m for m, listing in zip(modalities, listings) if name not in listing]
        multiple = [p.name for listing in listings for p in listing.get(name, [])
                    if len(listing[name]) > 1]
        if missing:
            problems[name] = f"no source image named {name!r} in {', '.join(m + '/' for m in missing)}"
        elif multiple:
            problems[name] = f"several source files named {name!r} ({', '.join(multiple)}); keep one"
        else:
            items[name] = tuple(listing[name][0] for listing in listings)
    if not items:
        folders = ", ".join(m + "/" for m in modalities)
        raise InputError(f"{root}: no image name is shared by {folders}; "
                         "the sources of one set must have the same file name")
    return Dataset(root, modalities, task, items, problems)


# ---------------------------------------------------------------------------
# where fused images come from


@dataclass(frozen=True)
class FusedFolder:
    """Fused images read from a folder (files named like the sources)."""

    label: str
    folder: Path


@dataclass(frozen=True)
class FusedMethod:
    """Fused images produced by a registered method and cached in ``folder``."""

    label: str
    fuser: type
    options: tuple[tuple[str, Any], ...]
    folder: Path


def default_cache_dir() -> Path:
    """Where produced fused images are cached when no folder is given.

    ``$FUSEKIT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fusekit``, else
    ``~/.cache/fusekit``. Never inside the dataset, which may be read-only.
    """
    env = os.environ.get("FUSEKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fusekit"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


def _dataset_key(root: Path) -> str:
    resolved = root.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    return _slug("-".join(resolved.parts[-3:])) + "-" + digest


def _method_specs(methods: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None,
                  dataset: Dataset, cache_root: Path, host: "PluginHost",
                  task: str | None) -> list[FusedMethod]:
    if methods is None:
        return []
    if isinstance(methods, str):
        methods = [methods]
    pairs = (list(methods.items()) if isinstance(methods, Mapping)
             else [(m, {}) for m in methods])
    specs = []
    for name, options in pairs:
        cls = host.fusers.get(name)
        opts = dict(options)
        task_for = task or dataset.task
        if task_for and "task" not in opts and "task" in cls.option_names():
            opts["task"] = task_for
        cls.create(**opts)  # validate options now, once, instead of per image
        items = tuple(sorted(opts.items()))
        # the label shows the options the caller chose; the cache folder names them all
        shown = tuple(sorted(dict(options).items()))
        label = name + ("[" + ",".join(f"{k}={v}" for k, v in shown) + "]" if shown else "")
        key = name + "".join(f"-{k}={v}" for k, v in items)
        specs.append(FusedMethod(label, cls, items, cache_root / "fused" / _dataset_key(dataset.root)
                                 / _slug(key)))
    return specs


def _folder_specs(fused: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any] | None
                  ) -> list[FusedFolder]:
    if fused is None:
        return []
    if isinstance(fused, (str, os.PathLike)):
        fused = [fused]
    pairs = (list(fused.items()) if isinstance(fused, Mapping)
             else [(Path(f).resolve().name or str(f), f) for f in fused])
    specs, seen = [], set()
    for label, folder in pairs:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: fused-image folder not found; check the --fused path")
        base, k = str(label), 2
        while label in seen:
            label, k = f"{base}-{k}", k + 1
        seen.add(label)
        specs.append(FusedFolder(str(label), folder))
    return specs


# ---------------------------------------------------------------------------
# the work item, run in a worker


@dataclass(frozen=True)
class _State:
    """What every work item shares: the metrics and the profile."""

    metrics: tuple[Metric, ...]
    profile: Profile


@dataclass(frozen=True)
class _Task:
    image: str
    method: str
    sources: tuple[str, ...]
    fused: str | None
    produce: FusedMethod | None
    state: _State | None = None  # None: use the worker's state (set by _init_worker)


#: State of this worker process (or of the main process for in-process runs).
_WORKER_STATE: _State | None = None


def _init_worker(state: _State | None) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state


@dataclass
class _Outcome:
    image: str
    method: str
    values: dict[str, float]
    errors: list[tuple[str | None, str]]
    produced: bool = False


_FUSERS: dict[tuple[Any, ...], Any] = {}


def _fuser(spec: FusedMethod) -> Any:
    key = (spec.fuser, repr(spec.options))  # options may hold unhashable values
    if key not in _FUSERS:
        fuser = spec.fuser.create(**dict(spec.options))
        fuser.prepare()
        _FUSERS[key] = fuser
    return _FUSERS[key]


def _message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, FusekitError) else f"{type(exc).__name__}: {text}"


def _produce(task: _Task) -> str:
    from . import io
    from .api import fuse_images

    spec = task.produce
    if spec is None:
        raise InputError(f"{task.image}: no fused image and no method to produce one")
    loaded = [io.load_image(p) for p in task.sources]
    fused = fuse_images(_fuser(spec), [im.data for im in loaded], list(task.sources))
    depth = max(im.bit_depth for im in loaded)
    out = spec.folder / f"{task.image}.png"
    io.write_image(out, fused, bit_depth=depth)
    return str(out)


def run_task(task: _Task) -> _Outcome:
    """Produce (if needed) and score one fused image; never raises."""
    from .io import read_image
    from .metrics.compute import evaluate_metric, make_context

    outcome = _Outcome(task.image, task.method, {}, [])
    state = task.state or _WORKER_STATE
    if state is None:
        outcome.errors.append((None, "internal: work item without metrics"))
        return outcome
    try:
        fused_path = task.fused
        if fused_path is None:
            fused_path = _produce(task)
            outcome.produced = True
        # RGB kept as stored: each profile converts colour to grey its own way
        sources = [read_image(p, near_grey="keep") for p in task.sources]
        fused = read_image(fused_path, near_grey="keep")
        try:
            ctx = make_context(fused, sources, state.profile, data_range=1.0)
        except InputError as exc:
            raise InputError(f"{Path(fused_path).name}: {exc}") from None
    except Exception as exc:  # any failure of this image is reported, the run goes on
        outcome.errors.append((None, _message(exc)))
        return outcome
    for metric in state.metrics:
        try:
            outcome.values[metric.name] = float(evaluate_metric(metric, ctx))
        except Exception as exc:
            outcome.errors.append((metric.name, _message(exc)))
    return outcome


# ---------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Failure:
    """Something that could not be scored.

    Attributes
    ----------
    image : str
        Image name (file name without extension).
    method : str or None
        Method or fused-folder label; ``None`` if the source set itself is
        unusable.
    message : str
    metric : str or None
        The metric that failed, if only one did.
    """

    image: str
    method: str | None
    message: str
    metric: str | None = None

    def __str__(self) -> str:
        where = self.image + (f" [{self.method}]" if self.method else "")
        return f"{where}{' ' + self.metric if self.metric else ''}: {self.message}"


@dataclass(frozen=True)
class Stat:
    """Mean and population standard deviation of one metric over images."""

    mean: float
    std: float
    n: int


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    mag = abs(value)
    return f"{value:.2f}" if mag >= 100 else f"{value:.3f}" if mag >= 1 else f"{value:.4f}"


def _fmt_stat(st: "Stat | None") -> str:
    """``mean ± std`` with the decimals that suit the mean."""
    if st is None:
        return "-"
    if not (math.isfinite(st.mean) and math.isfinite(st.std)):
        return f"{_fmt(st.mean)} ± {_fmt(st.std)}"
    mag = abs(st.mean)
    digits = 2 if mag >= 100 else 3 if mag >= 1 else 4
    return f"{st.mean:.{digits}f} ± {st.std:.{digits}f}"


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class EvaluationReport:
    """Per-image metric values, per-method statistics and failures.

    Attributes
    ----------
    profile : Profile
    metrics : list of Metric
        In column order.
    methods : list of str
        Method / fused-folder labels in order.
    rows : list of dict
        One per scored image and method: ``{"image", "method", <metric>:
        float or None}``; ``None`` where that metric failed.
    failures : list of Failure
    dataset : Path or None
    sources : tuple of str
        Modality sub-folders in source order.
    produced : int
        Fused images produced (not taken from the cache) in this run.
    """

    profile: Profile
    metrics: list[Metric]
    methods: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    dataset: Path | None = None
    sources: tuple[str, ...] = ()
    produced: int = 0

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failures

    def values(self, method: str, metric: str) -> np.ndarray:
        """The metric's per-image values for ``method`` (failed ones left out)."""
        vals = [r[metric] for r in self.rows if r["method"] == method and r.get(metric) is not None]
        return np.asarray(vals, dtype=np.float64)

    def summary(self) -> dict[str, dict[str, Stat | None]]:
        """``{method: {metric: Stat or None}}``: mean and population std over images."""
        out: dict[str, dict[str, Stat | None]] = {}
        for method in self.methods:
            out[method] = {}
            for m in self.metrics:
                v = self.values(method, m.name)
                if v.size == 0:
                    out[method][m.name] = None
                    continue
                with np.errstate(invalid="ignore"):
                    std = float(np.std(v)) if np.isfinite(v).all() else float("nan")
                out[method][m.name] = Stat(float(np.mean(v)), std, int(v.size))
        return out

    def _header(self) -> str:
        where = f"{self.dataset} " if self.dataset else ""
        srcs = f"sources {', '.join(self.sources)}; " if self.sources else ""
        n = len({r["image"] for r in self.rows})
        return (f"{where}({srcs}{n} images; {INPUT_NOTE})\n"
                f"profile {self.profile.name}: {self.profile.summary}")

    def _label(self, m: Metric) -> str:
        unit = m.unit_for(self.profile.name)
        return f"{m.display} {m.arrow}" + (f" ({unit})" if unit else "")

    def format_table(self) -> str:
        """Terminal table: one row per metric (arrow, unit), one column per method (mean ± std)."""
        summary = self.summary()
        header = ["metric", *self.methods]
        lines = [header]
        for m in self.metrics:
            cells = [self._label(m)]
            for method in self.methods:
                cells.append(_fmt_stat(summary[method][m.name]))
            lines.append(cells)
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        text = [self._header(), ""]
        for k, row in enumerate(lines):
            text.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                  for i, c in enumerate(row)).rstrip())
            if k == 0:
                text.append("  ".join("-" * w for w in widths))
        text.append("")
        text.append("mean ± std over images; \u2191 higher is better, \u2193 lower is better")
        return "\n".join(text)

    def to_csv(self) -> str:
        """Per-image rows: ``image,method,<metric>...`` (empty where a metric failed)."""
        buf = _io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "method", *(m.name for m in self.metrics)])
        for r in self.rows:
            writer.writerow([r["image"], r["method"],
                             *("" if r.get(m.name) is None else repr(float(r[m.name]))
                               for m in self.metrics)])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain data (infinite values as ``"inf"``, missing as ``None``)."""
        summary = self.summary()
        return {
            "dataset": str(self.dataset) if self.dataset else None,
            "sources": list(self.sources),
            "input": INPUT_NOTE,
            "profile": {"name": self.profile.name, "summary": self.profile.summary,
                        "reference": self.profile.reference},
            "metrics": [{"name": m.name, "full_name": m.full_name,
                         "unit": m.unit_for(self.profile.name),
                         "higher_is_better": m.higher_is_better, "reference": m.reference}
                        for m in self.metrics],
            "summary": {method: {name: (None if st is None else
                                        {"mean": _json_number(st.mean), "std": _json_number(st.std),
                                         "n": st.n})
                                 for name, st in per.items()}
                        for method, per in summary.items()},
            "rows": [{k: (_json_number(v) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in self.rows],
            "failures": [{"image": f.image, "method": f.method, "metric": f.metric,
                          "message": f.message} for f in self.failures],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        """Summary table (mean ± std per method), per-image table, and failures."""
        summary = self.summary()
        head = ["method", *(self._label(m) for m in self.metrics)]
        out = [f"<!-- {self._header().replace(chr(10), '; ')} -->", "", "## Summary", "",
               "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in self.methods:
            cells = []
            for m in self.metrics:
                cells.append(_fmt_stat(summary[method][m.name]))
            out.append("| " + " | ".join([method, *cells]) + " |")
        out += ["", f"Profile `{self.profile.name}`: {self.profile.summary}. Inputs: {INPUT_NOTE}.",
                "", "## Per image", "",
                "| image | method | " + " | ".join(m.name for m in self.metrics) + " |",
                "|" + "---|" * (len(self.metrics) + 2)]
        for r in self.rows:
            out.append("| " + " | ".join([r["image"], r["method"],
                                          *(_fmt(r.get(m.name)) for m in self.metrics)]) + " |")
        if self.failures:
            out += ["", "## Failures", ""] + [f"- {f}" for f in self.failures]
        return "\n".join(out) + "\n"

    def render(self, fmt: str) -> str:
        """The report as ``"table"``, ``"csv"``, ``"json"`` or ``"markdown"`` text."""
        renderers = {"table": self.format_table, "csv": self.to_csv, "json": self.to_json,
                     "markdown": self.to_markdown, "md": self.to_markdown}
        if fmt not in renderers:
            raise ParameterError(f"unknown report format {fmt!r}; use csv, json, markdown or table")
        text = renderers[fmt]()
        return text if text.endswith("\n") else text + "\n"

    def write(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write the report; the format defaults to the file extension (csv, json, md)."""
        path = Path(path)
        if fmt is None:
            fmt = {".csv": "csv", ".json": "json", ".md": "markdown",
                   ".markdown": "markdown", ".txt": "table"}.get(path.suffix.lower(), "csv")
        text = self.render(fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path


# ---------------------------------------------------------------------------
# evaluate


def _find_fused(folder: Path, cache: dict[Path, dict[str, list[Path]]], name: str) -> tuple[Path | None, str]:
    listing = cache.setdefault(folder, _images_by_stem(folder))
    found = listing.get(name, [])
    if not found:
        return None, f"no fused image named {name!r} in {folder}"
    if len(found) > 1:
        return None, f"several fused files named {name!r} in {folder}; keep one"
    return found[0], ""


def evaluate(dataset: str | os.PathLike, *,
             fused: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any] | None = None,
             methods: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
             sources: Sequence[str] | str | None = None,
             metrics: str | Iterable[str | Metric] | None = None,
             profile: str | Profile = "standard",
             cache_dir: str | os.PathLike | None = None,
             task: str | None = None,
             jobs: int = 1,
             executor: cf.Executor | None = None,
             progress: bool | None = False,
             host: "PluginHost | None" = None) -> EvaluationReport:
    """Score the fused images of a dataset.

    Parameters
    ----------
    dataset : path-like
        Folder with one sub-folder per source modality (see the module
        docstring for the recognised layouts).
    fused : path-like, sequence of path-like, or mapping of label to path
        Folder(s) of fused images named like the sources (any extension).
        The label of a folder is its name.
    methods : str, sequence of str, or mapping of name to options
        Registered fusion methods to run; their outputs are cached in
        ``cache_dir`` and reused. Methods with a ``task`` option get the
        dataset's task unless given.
    sources : sequence of str or str, optional
        Source sub-folders in order; default: detected.
    metrics : str or iterable, optional
        Metric names or objects; default all registered metrics.
    profile : str or Profile
        ``"standard"`` (default) or ``"cddfuse"``.
    cache_dir : path-like, optional
        Root of the fused-image cache; default :func:`default_cache_dir`.
        Images go to ``<cache_dir>/fused/<dataset key>/<method>/<name>.png``.
    task : str, optional
        Task given to methods that take one (default: from the layout).
    jobs : int
        Parallel worker processes (ignored when ``executor`` is given).
    executor : concurrent.futures.Executor, optional
        Runs the work items (one per fused image); it is not shut down.
    progress : bool or None
        Show a progress bar on stderr (``None``: only on a terminal).
    host : PluginHost, optional
        Where metrics and methods are looked up.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    InputError
        The dataset has no usable layout or no shared names, or a fused
        folder is missing. Problems of single images become failures.
    UnknownNameError
        Unknown metric, profile or method.
    """
    from .metrics.compute import resolve_metrics
    from .plugins import get_host

    host = host or get_host()
    prof = get_profile(profile)
    chosen = resolve_metrics(metrics, host)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs must be a positive integer, got {jobs!r}")
    data = find_dataset(dataset, sources)
    if metrics is None:  # "all": only those defined for this many sources
        n = len(data.modalities)
        chosen = [m for m in chosen if m.sources is None or n in m.sources]
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    specs: list[FusedFolder | FusedMethod] = [*_folder_specs(fused),
                                              *_method_specs(methods, data, cache_root, host, task)]
    if not specs:
        raise InputError("nothing to evaluate: give fused-image folders (--fused DIR) "
                         "or methods to run (--method NAME)")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InputError(f"two fused sources share the label {labels!r}; give them distinct names")

    report = EvaluationReport(prof, chosen, labels, dataset=data.root, sources=data.modalities)
    for name, why in data.problems.items():
        report.failures.append(Failure(name, None, why))

    tasks: list[_Task] = []
    listings: dict[Path, dict[str, list[Path]]] = {}
    for spec in specs:
        for name, paths in data.items.items():
            srcs = tuple(str(p) for p in paths)
            if isinstance(spec, FusedFolder):
                found, why = _find_fused(spec.folder, listings, name)
                if found is None:
                    report.failures.append(Failure(name, spec.label, why))
                    continue
                tasks.append(_Task(name, spec.label, srcs, str(found), None))
            else:
                cached = spec.folder / f"{name}.png"
                tasks.append(_Task(name, spec.label, srcs, str(cached) if cached.is_file() else None,
                                   spec))

    outcomes = _run(tasks, _State(tuple(chosen), prof), jobs, executor, progress)
    order = {label: i for i, label in enumerate(labels)}
    outcomes.sort(key=lambda o: (order[o.method], o.image))
    for o in outcomes:
        report.produced += int(o.produced)
        for metric, message in o.errors:
            report.failures.append(Failure(o.image, o.method, message, metric))
        if not any(metric is None for metric, _ in o.errors):  # the image itself was scored
            row: dict[str, Any] = {"image": o.image, "method": o.method}
            row.update({m.name: o.values.get(m.name) for m in chosen})
            report.rows.append(row)
    report.failures.sort(key=lambda f: (f.method is not None, order.get(f.method or "", -1), f.image))
    return report


def _run(tasks: list[_Task], state: _State, jobs: int, executor: cf.Executor | None,
         progress: bool | None) -> list[_Outcome]:
    """Run the work items in-process, in a process pool, or on ``executor``."""
    import dataclasses
    import multiprocessing

    from tqdm import tqdm

    def progress_bar() -> Any:
        return tqdm(total=len(tasks), desc="eval", unit="image", file=sys.stderr,
                    disable=None if progress is None else not progress, leave=False)

    outcomes: list[_Outcome] = []
    previous = _WORKER_STATE
    if executor is None and jobs == 1:
        _init_worker(state)
        try:
            with progress_bar() as bar:
                for t in tasks:
                    outcomes.append(run_task(t))
                    bar.update(1)
        finally:
            _init_worker(previous)
        return outcomes
    owned = executor is None
    if executor is not None:
        # a foreign executor (threads, Dask): every item carries the metrics
        tasks = [dataclasses.replace(t, state=state) for t in tasks]
        pool = executor
    elif "fork" in multiprocessing.get_all_start_methods():
        # forked workers inherit the state as is, so metrics from plugins
        # (even lambdas) work; only the small work items are pickled
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                      initializer=_init_worker, initargs=(state,))
    else:
        pool = cf.ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(state,))
    try:
        # submit (and so fork the workers) before the progress bar starts its monitor thread
        futures = {pool.submit(run_task, t): t for t in tasks}
        with progress_bar() as bar:
            for fut in cf.as_completed(futures):
                t = futures[fut]
                try:
                    outcomes.append(fut.result())
                except Exception as exc:  # a worker died or could not unpickle the item
                    outcomes.append(_Outcome(t.image, t.method, {}, [(None, _message(exc))]))
                bar.update(1)
    finally:
        if owned:
            pool.shutdown(cancel_futures=True)
    return outcomes
