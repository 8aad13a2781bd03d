"""``evaluate``: score the fused images of a dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import InputError, ParameterError, one_line
from ..io import remove_stale_temps
from ..metrics.base import Metric
from ..metrics.profiles import Profile, get_profile
from . import cache
from .dataset import find_dataset
from .report import EvaluationReport, Failure
from .sources import FusedFolder, FusedMethod, _find_fused, _folder_specs, _method_specs, default_cache_dir
from .worker import _Fused, _State, _Task, forget_fuser, load_fuser, run_tasks

if TYPE_CHECKING:  # pragma: no cover
    import concurrent.futures as cf

    from ..plugins import PluginHost


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
        Parallel worker processes (ignored when ``executor`` is given);
        more than the usable cores are capped to them with a warning.
    executor : concurrent.futures.Executor, optional
        Runs the work items (one per scene, with every method's fused image
        of it); it is not shut down.
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
    from ..metrics.compute import resolve_metrics
    from ..plugins import get_host

    host = host or get_host()
    prof = get_profile(profile)
    chosen = resolve_metrics(metrics, host, prof)  # a profile may define only some metrics (vifb)
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
    for spec in specs:
        if isinstance(spec, FusedMethod):
            remove_stale_temps(spec.folder)  # left by a run killed while writing into the cache
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InputError(f"two fused sources share the label {labels!r}; give them distinct names")

    report = EvaluationReport(prof, chosen, labels, dataset=data.root, sources=data.modalities,
                              scene_files=dict(data.items),
                              method_info={s.label: _describe(s) for s in specs})
    for name, why in data.problems.items():
        report.failures.append(Failure(name, None, why))

    # one work item per scene, holding every method's fused image of it: the
    # sources are read and their statistics computed once for all methods
    by_scene: dict[str, list[_Fused]] = {name: [] for name in data.items}
    listings: dict[Path, dict[str, list[Path]]] = {}
    source_hashes: dict[str, list[str] | None] = {}
    for spec in specs:
        method = cache.method_key(spec.fuser, spec.options) if isinstance(spec, FusedMethod) else None
        for name in data.items:
            if isinstance(spec, FusedFolder):
                found, why = _find_fused(spec.folder, listings, name)
                if found is None:
                    report.failures.append(Failure(name, spec.label, why))
                    continue
                by_scene[name].append(_Fused(spec.label, str(found), None))
                report.fused_files[(name, spec.label)] = found
            else:
                cached = spec.folder / f"{name}.png"
                report.fused_files[(name, spec.label)] = cached
                key = _scene_key(method, data.modalities, data.items[name], source_hashes, name)
                hit = key is not None and cache.lookup(cached, key)
                by_scene[name].append(_Fused(spec.label, str(cached) if hit else None, spec, key))

    if len(by_scene) <= 1:  # one scene needs no worker processes (nor their imports)
        jobs = 1
    broken = _check_methods([f for entries in by_scene.values() for f in entries], report,
                            in_process=executor is None and jobs == 1)
    tasks: list[_Task] = []
    for name, entries in by_scene.items():
        kept = tuple(f for f in entries if not (f.path is None and f.method in broken))
        if kept:
            tasks.append(_Task(name, tuple(str(p) for p in data.items[name]), kept))
    outcomes = run_tasks(tasks, _State(tuple(chosen), prof), jobs, executor, progress)
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


def _describe(spec: FusedFolder | FusedMethod) -> dict[str, Any]:
    """What the HTML report says about where a column's fused images come from."""
    if isinstance(spec, FusedFolder):
        return {"kind": "folder", "folder": str(spec.folder)}
    try:
        weights = [dict(row) for row in spec.fuser.weight_variants()]
    except Exception:  # a plugin's card that cannot be read must not stop the evaluation
        weights = []
    return {"kind": "method", "name": getattr(spec.fuser, "name", spec.label),
            "options": dict(spec.options), "summary": getattr(spec.fuser, "summary", "") or "",
            "weights": weights}


def _scene_key(method: dict[str, Any] | None, modalities: Sequence[str], sources: Sequence[Path],
               hashes: dict[str, list[str] | None], name: str) -> str | None:
    """Cache key of one scene's fused image for ``method``; None if a source cannot be read.

    Source hashes are computed once per scene and shared by every method.
    """
    if name not in hashes:
        try:
            hashes[name] = [cache.file_sha256(p) for p in sources]
        except OSError:
            hashes[name] = None  # the work item reports the unreadable source
    if method is None or hashes[name] is None:
        return None
    return cache.entry_key(method, modalities, hashes[name])


def _check_methods(entries: list[_Fused], report: EvaluationReport, in_process: bool) -> set[str]:
    """Load each method that still has images to fuse once, before any work item runs.

    A method that cannot run (missing weights, say) becomes one failure and
    its images are skipped, instead of one identical failure per image. For
    in-process runs the loaded fuser is kept for the work items; worker
    processes load their own.

    Returns
    -------
    set of str
        Labels of the methods that cannot run.
    """
    pending = {f.produce.label: f.produce for f in entries if f.path is None and f.produce is not None}
    broken: set[str] = set()
    for _, spec in sorted(pending.items()):
        try:
            fuser = load_fuser(spec)
        except Exception as exc:  # reported once for the method; other methods go on
            report.failures.append(Failure("(all images)", spec.label,
                                           f"cannot run the method: {one_line(exc)}"))
            broken.add(spec.label)
            continue
        if not in_process:
            forget_fuser(spec, fuser)
    return broken
