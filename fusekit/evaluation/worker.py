"""Work items (one scene each: its sources and every fused image of them) and the executors that run them.

A work item scores all fused images of one scene together, so the sources
are read once and their statistics (gradients, local means, grey levels) are
computed once for every method compared (:meth:`MetricContext.with_fused`).
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, one_line
from ..metrics import compiled
from ..metrics.base import Metric
from ..metrics.profiles import Profile
from ..workers import cap_jobs, init_worker_signals, run_item, stop_pool
from .sources import FusedMethod


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
    state: _State | None = None  # None: use the worker's state (set by _init_worker)


#: State of this worker process (or of the main process for in-process runs).
_WORKER_STATE: _State | None = None


def _init_worker(state: _State | None, worker_process: bool = False) -> None:
    global _WORKER_STATE
    if worker_process:
        init_worker_signals()  # Ctrl-C is the main process's to handle; SIGTERM removes a half-written temp
    _WORKER_STATE = state


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


def run_task(task: _Task) -> list[_Outcome]:
    """Produce (if needed) and score the fused images of one scene; never raises.

    Returns
    -------
    list of _Outcome
        One per fused image, in the order of ``task.fused``.
    """
    from ..io import read_image
    from ..metrics.compute import evaluate_metric, make_context, reuse_sources

    outcomes = [_Outcome(task.image, entry.method, {}, []) for entry in task.fused]
    state = task.state or _WORKER_STATE
    if state is None:
        for outcome in outcomes:
            outcome.errors.append((None, "internal: work item without metrics"))
        return outcomes
    sources = None
    base = None  # the first context: later fused images share its source statistics
    for entry, outcome in zip(task.fused, outcomes):
        try:
            fused_path = entry.path
            if fused_path is None:
                fused_path = _produce(task.image, task.sources, entry.produce, entry.key)
                outcome.produced = True
            if sources is None:
                # RGB kept as stored: each profile converts colour to grey its own way
                sources = [read_image(p, near_grey="keep") for p in task.sources]
            fused = read_image(fused_path, near_grey="keep")
            try:
                if base is None:
                    ctx = base = make_context(fused, sources, state.profile, data_range=1.0)
                else:
                    ctx = reuse_sources(base, fused, data_range=1.0)
            except InputError as exc:
                raise InputError(f"{Path(fused_path).name}: {exc}") from None
        except Exception as exc:  # any failure of this image is reported, the run goes on
            outcome.errors.append((None, one_line(exc)))
            continue
        except SystemExit as exc:  # a plugin calling sys.exit() must not end the whole run
            outcome.errors.append((None, f"{entry.method}: the method called sys.exit({exc.code!r}); "
                                         "fix the plugin"))
            continue
        for metric in state.metrics:
            try:
                outcome.values[metric.name] = float(evaluate_metric(metric, ctx))
            except Exception as exc:
                outcome.errors.append((metric.name, one_line(exc)))
    return outcomes


def _run(tasks: list[_Task], state: _State, jobs: int, executor: cf.Executor | None,
         progress: bool | None) -> list[_Outcome]:
    """Run the work items in-process, in a process pool, or on ``executor``."""
    import dataclasses
    import multiprocessing

    from tqdm import tqdm

    def progress_bar() -> Any:
        return tqdm(total=sum(len(t.fused) for t in tasks), desc="eval", unit="image", file=sys.stderr,
                    disable=None if progress is None else not progress, leave=False)

    outcomes: list[_Outcome] = []
    previous = _WORKER_STATE
    if executor is None and jobs == 1:
        _init_worker(state)
        try:
            with progress_bar() as bar:
                for t in tasks:
                    outcomes += run_task(t)
                    bar.update(len(t.fused))
        finally:
            _init_worker(previous)
        return outcomes
    owned = executor is None
    if owned:
        jobs = cap_jobs(jobs, len(tasks))
    if executor is not None:
        # a foreign executor (threads, Dask): every item carries the metrics
        tasks = [dataclasses.replace(t, state=state) for t in tasks]
        pool = executor
    elif "fork" in multiprocessing.get_all_start_methods():
        # forked workers inherit the state as is, so metrics from plugins
        # (even lambdas) work; only the small work items are pickled. They
        # also inherit numba and the loaded kernels instead of each loading them.
        compiled.warm_up(metrics=[m.name for m in state.metrics], profile=state.profile)
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                                      initializer=_init_worker, initargs=(state, True))
    else:
        pool = cf.ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(state, True))
    try:
        # submit (and so fork the workers) before the progress bar starts its monitor thread
        futures = {(pool.submit(run_item, run_task, t) if owned else pool.submit(run_task, t)): t
                   for t in tasks}
        with progress_bar() as bar:
            for fut in cf.as_completed(futures):
                t = futures[fut]
                try:
                    outcomes += fut.result()
                except Exception as exc:  # a worker died or could not unpickle the item
                    outcomes += [_Outcome(t.image, e.method, {}, [(None, one_line(exc))]) for e in t.fused]
                bar.update(len(t.fused))
    except BaseException:  # Ctrl-C: stop the workers now instead of finishing every queued scene
        if owned:
            stop_pool(pool)
        raise
    if owned:
        pool.shutdown(cancel_futures=True)
    return outcomes
