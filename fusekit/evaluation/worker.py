"""Work items (one scene each: its sources and every fused image of them), run by :mod:`fusekit.execution`.

A work item scores all fused images of one scene together, so the sources
are read once and their statistics (gradients, local means, grey levels) are
computed once for every method compared (:meth:`MetricContext.with_fused`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, one_line
from ..metrics.base import Metric
from ..metrics.profiles import Profile
from .sources import FusedMethod

if TYPE_CHECKING:  # pragma: no cover
    import concurrent.futures as cf


@dataclass(frozen=True)
class _State:
    """What every work item shares: the metrics and the profile."""

    metrics: tuple[Metric, ...]
    profile: Profile


@dataclass(frozen=True)
class _Fused:
    """One fused image of a scene: read from ``path``, or produced by ``produce`` first."""

    method: str
    path: str | None
    produce: FusedMethod | None
    key: str | None = None  # cache key of the image ``produce`` writes (see .cache)


@dataclass(frozen=True)
class _Task:
    """One scene: its source files and the fused images of it to score."""

    image: str
    sources: tuple[str, ...]
    fused: tuple[_Fused, ...]


@dataclass
class _Outcome:
    image: str
    method: str
    values: dict[str, float]
    errors: list[tuple[str | None, str]]
    produced: bool = False


_FUSERS: dict[tuple[Any, ...], Any] = {}


def _fuser_key(spec: FusedMethod) -> tuple[Any, ...]:
    return (spec.fuser, repr(spec.options))  # options may hold unhashable values


def load_fuser(spec: FusedMethod) -> Any:
    """The prepared fuser for ``spec``, created once per process."""
    key = _fuser_key(spec)
    if key not in _FUSERS:
        fuser = spec.fuser.create(**dict(spec.options))
        fuser.prepare()
        _FUSERS[key] = fuser
    return _FUSERS[key]


def forget_fuser(spec: FusedMethod, fuser: Any) -> None:
    """Drop a fuser loaded only to check it, so forked workers load their own."""
    if _FUSERS.get(_fuser_key(spec)) is fuser:
        del _FUSERS[_fuser_key(spec)]


def _produce(image: str, sources: tuple[str, ...], spec: FusedMethod | None, key: str | None = None) -> str:
    from .. import io
    from ..api import fuse_images
    from . import cache

    if spec is None:
        raise InputError(f"{image}: no fused image and no method to produce one")
    loaded = [io.load_image(p) for p in sources]
    fused = fuse_images(load_fuser(spec), [im.data for im in loaded], list(sources))
    depth = max(im.bit_depth for im in loaded)
    out = spec.folder / f"{image}.png"
    cache.record_path(out).unlink(missing_ok=True)  # no record may vouch for the image being replaced
    io.write_image(out, fused, bit_depth=depth)
    if key is not None:
        cache.store(out, key)
    return str(out)


def run_task(state: _State, task: _Task) -> list[_Outcome]:
    """Produce (if needed) and score the fused images of one scene; never raises.

    Parameters
    ----------
    state : _State
        The metrics and the profile.
    task : _Task
        The scene.

    Returns
    -------
    list of _Outcome
        One per fused image, in the order of ``task.fused``.
    """
    import warnings

    from ..io import FusekitWarning, read_image
    from ..metrics.base import families_needed
    from ..metrics.compute import evaluate_metric, make_context, releases_cache, reuse_sources

    outcomes = [_Outcome(task.image, entry.method, {}, []) for entry in task.fused]
    sources = None
    base = None  # the first context: later fused images share its source statistics
    for entry, outcome in zip(task.fused, outcomes):
        try:
            fused_path = entry.path
            if fused_path is None:
                fused_path = _produce(task.image, task.sources, entry.produce, entry.key)
                outcome.produced = True
            if sources is None:
                # RGB kept as stored: each profile converts colour to grey its own way. Where the method
                # has just read the sources, it has already given their warnings (alpha dropped, ...)
                with warnings.catch_warnings():
                    if outcome.produced:
                        warnings.simplefilter("ignore", FusekitWarning)
                    sources = [read_image(p, near_grey="keep") for p in task.sources]
            fused = read_image(fused_path, near_grey="keep")
            try:
                if base is None:
                    ctx = base = make_context(fused, sources, state.profile, data_range=1.0)
                else:
                    ctx = reuse_sources(base, fused, data_range=1.0)
            except InputError as exc:
                where = fused_path if entry.path is not None else Path(fused_path).name  # --fused: the path
                raise InputError(f"{where}: {exc}") from None
        except Exception as exc:  # any failure of this image is reported, the run goes on
            outcome.errors.append((None, one_line(exc)))
            continue
        except SystemExit as exc:  # a plugin calling sys.exit() must not end the whole run
            outcome.errors.append((None, f"{entry.method}: the method called sys.exit({exc.code!r}); "
                                         "fix the plugin"))
            continue
        # after the scene's last fused image no other reuses the sources' statistics: what each
        # built-in metric cached for itself is released as it finishes (same values, fewer pages)
        last = entry is task.fused[-1]
        for metric, keep in zip(state.metrics, families_needed([m.name for m in state.metrics])):
            try:
                with (ctx.releasing(sources=last, keep=keep) if releases_cache(metric, state.profile)
                      else contextlib.nullcontext()):
                    outcome.values[metric.name] = float(evaluate_metric(metric, ctx))
            except Exception as exc:
                outcome.errors.append((metric.name, one_line(exc)))
    return outcomes


def _progress(show: bool | None) -> Any:
    """A :class:`fusekit.progress.Progress` of images for :func:`fusekit.execution.execute`."""
    from ..progress import Progress

    return Progress("eval", unit="image", show=show, leave=False, weight=lambda task: len(task.fused))


def run_tasks(tasks: list[_Task], state: _State, jobs: int, executor: "cf.Executor | None",
              progress: bool | None) -> list[_Outcome]:
    """Run the work items (:func:`fusekit.execution.execute`); a work item that fails fails each of its images.

    One job, no executor and no bar to show (scripts, pipes): the items run
    here, in order, as ``execute`` runs them then, without importing the
    process-pool machinery (:mod:`fusekit.execution` pulls in
    :mod:`multiprocessing` and :mod:`concurrent.futures`: about 23 ms of
    CPU, a twentieth of a one-triplet ``fusekit eval``).
    """
    outcomes: list[_Outcome] = []
    bar = _progress(progress)
    if executor is None and jobs == 1 and not bar.shown():
        for task in tasks:
            try:
                outcomes += run_task(state, task)
            except Exception as exc:  # as execute's attempt: the item's images fail, the others go on
                outcomes += [_Outcome(task.image, e.method, {}, [(None, one_line(exc))]) for e in task.fused]
        return outcomes
    from ..execution import execute

    if executor is None and jobs > 1:
        from ..metrics import compiled

        # forked workers inherit numba and the loaded kernels instead of each loading them
        compiled.warm_up(metrics=[m.name for m in state.metrics], profile=state.profile)
    for done in execute(run_task, tasks, shared=state, jobs=jobs, executor=executor, progress=bar):
        if done.error is None:
            outcomes += done.value
        else:  # a worker died or could not unpickle the item
            outcomes += [_Outcome(done.item.image, e.method, {}, [(None, done.error)]) for e in done.item.fused]
    return outcomes
