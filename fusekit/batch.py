"""Fuse many sets of files, in this process or in worker processes.

``fusekit fuse DIR1 DIR2 -o OUT --jobs N`` (or ``--dask ADDRESS``) runs here. Every set is fused and
written on its own (atomic writes, see :func:`fusekit.api.fuse_files`); a set
that fails is recorded and the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .api import fuse_files
from .contract import describe
from .errors import one_line
from .interfaces import Fuser
from .workers import cap_jobs, init_worker_signals, run_item, stop_pool, usable_cores

__all__ = ["fuse_sets"]

#: The fuser of this worker process (set by :func:`_init_worker`).
_WORKER_FUSER: Fuser | None = None


def _init_worker(fuser: Fuser, threads: int) -> None:
    global _WORKER_FUSER
    init_worker_signals()  # Ctrl-C is the main process's to handle; SIGTERM removes a half-written temp
    _WORKER_FUSER = fuser
    if "torch" in sys.modules:  # share the cores between workers instead of oversubscribing them
        sys.modules["torch"].set_num_threads(threads)


def _fuse_one(fuser: Fuser, paths: Sequence[Path], out: Path, bit_depth: int | None) -> str | None:
    """Fuse one set; the error message, or ``None`` on success."""
    try:
        fuse_files(fuser, paths, out, bit_depth=bit_depth)
        return None
    except Exception as exc:  # any failure of one set is reported, the batch goes on
        return one_line(exc)
    except SystemExit as exc:  # a plugin calling sys.exit() must not end the whole batch
        return f"{describe(fuser)} called sys.exit({exc.code!r}); fix the plugin"


def _fuse_in_worker(paths: Sequence[Path], out: Path, bit_depth: int | None) -> str | None:
    assert _WORKER_FUSER is not None, "worker started without a fuser"
    return run_item(_fuse_one, _WORKER_FUSER, paths, out, bit_depth)


def fuse_sets(fuser: Fuser, sets: Mapping[str, Sequence[Path]], outputs: Mapping[str, Path], *,
              bit_depth: int | None = None, jobs: int = 1, executor: cf.Executor | None = None,
              on_done: Callable[[str, str | None], None] | None = None) -> dict[str, str]:
    """Fuse every set of source files into its output file.

    Parameters
    ----------
    fuser : Fuser
        A prepared fuser (``fuser.prepare()`` already called).
    sets : mapping of str to sequence of Path
        Set name -> source files, in the fuser's source order.
    outputs : mapping of str to Path
        Set name -> output file (same keys as ``sets``).
    bit_depth : {8, 16}, optional
        Output depth; default: that of the deepest source of each set.
    jobs : int
        Worker processes; 1 fuses in this process. More than the usable
        cores is capped to them with a warning. With N > 1 each worker gets
        ``cores // N`` torch threads (at least 1).
    executor : concurrent.futures.Executor, optional
        Runs the sets instead (``jobs`` is then ignored), e.g. a Dask
        cluster's (:func:`fusekit.evaluation.cluster.dask_executor`); the
        fuser travels with each set, so it must pickle (cloudpickle for Dask).
    on_done : callable, optional
        Called as ``on_done(name, error_or_None)`` after each set (progress).

    Returns
    -------
    dict of str to str
        Set name -> one-line error, for the sets that failed.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (or a plugin raising it): worker processes are stopped at
        once, queued sets are not started, and no temporary file is left;
        the sets reported through ``on_done`` so far are complete.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    failures: dict[str, str] = {}

    def record(name: str, error: str | None) -> None:
        if error is not None:
            failures[name] = error
        if on_done is not None:
            on_done(name, error)

    if executor is None and (jobs == 1 or len(sets) <= 1):
        for name, paths in sets.items():
            record(name, _fuse_one(fuser, paths, outputs[name], bit_depth))
        return failures
    if executor is not None:
        futures = {executor.submit(_fuse_one, fuser, list(paths), outputs[name], bit_depth): name
                   for name, paths in sets.items()}
        _collect(futures, record)
        return failures
    jobs = cap_jobs(jobs, len(sets))
    threads = max(1, usable_cores() // jobs)
    context: Any = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() \
        else None
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                  initializer=_init_worker, initargs=(fuser, threads))
    try:
        futures = {pool.submit(_fuse_in_worker, list(paths), outputs[name], bit_depth): name
                   for name, paths in sets.items()}
        _collect(futures, record)
    except BaseException:  # Ctrl-C: stop now instead of finishing every queued set
        stop_pool(pool)
        raise
    pool.shutdown()
    return failures


def _collect(futures: Mapping[cf.Future, str], record: Callable[[str, str | None], None]) -> None:
    """Record each set's outcome as its future completes."""
    for fut in cf.as_completed(futures):
        try:
            error = fut.result()
        except Exception as exc:  # the worker died, or the fuser could not be sent to it
            error = one_line(exc)
        record(futures[fut], error)
