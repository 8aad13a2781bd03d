"""Local worker processes: how many, how they start, and how they stop on Ctrl-C.

``fusekit fuse -j N`` and ``fusekit eval -j N`` run work items in a
:class:`concurrent.futures.ProcessPoolExecutor` (:mod:`fusekit.execution`).
This module keeps that pool well-behaved:

* :func:`cap_jobs` never starts more processes than there are cores (or
  items): ``-j 1000`` would otherwise fork 1000 workers;
* :func:`init_worker_signals` makes a worker ignore Ctrl-C (the terminal
  sends SIGINT to the whole process group; the main process decides) and
  turns SIGTERM into :class:`Terminated` while an item runs, so an atomic
  write removes its temporary file before the worker exits;
* :func:`stop_pool` cancels what has not started and terminates the
  workers at once, instead of ``shutdown(wait=True)`` finishing every
  queued item after Ctrl-C.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

#: Seconds :func:`stop_pool` waits for terminated workers before killing them.
STOP_GRACE_S = 1.0

_IN_ITEM = False


class Terminated(BaseException):
    """Raised in a worker by SIGTERM while it works on an item (not an ``Exception``: nothing swallows it)."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cap_jobs(jobs: int, items: int | None = None) -> int:
    """``jobs`` limited to the usable cores (with a warning) and to the number of items.

    Parameters
    ----------
    jobs : int
        Worker processes asked for.
    items : int, optional
        Work items; no more workers than items are started.

    Returns
    -------
    int
        At least 1.
    """
    from .io import FusekitWarning

    cores = usable_cores()
    if jobs > cores:
        warnings.warn(f"-j {jobs} is more than the {cores} core(s) here; using {cores} worker processes",
                      FusekitWarning, stacklevel=2)
        jobs = cores
    if items is not None:
        jobs = min(jobs, max(1, items))
    return max(1, jobs)


def _on_sigterm(signum: int, _frame: Any) -> None:
    if _IN_ITEM:
        raise Terminated()  # unwinds through the write in progress, which removes its temporary file
    os._exit(128 + signum)


def init_worker_signals() -> None:
    """Signal handling for a pool worker: ignore SIGINT, SIGTERM ends the item cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)


def run_item(function: Any, *args: Any) -> Any:
    """Run one work item in a worker so that SIGTERM cleans up and exits the process.

    Parameters
    ----------
    function : callable
        The item's work.
    *args
        Its arguments.
    """
    global _IN_ITEM
    _IN_ITEM = True
    try:
        return function(*args)
    except Terminated:
        os._exit(128 + signal.SIGTERM)
    finally:
        _IN_ITEM = False


def stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a process pool now: cancel queued items and terminate the workers (kill if they linger).

    Parameters
    ----------
    pool : ProcessPoolExecutor
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(1.0)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main process, let SIGTERM stop a command like Ctrl-C (workers stopped, temps removed).

    Without it SIGTERM kills the process between any two instructions,
    leaving worker processes running and a temporary file behind. Does
    nothing outside the main thread, where signal handlers cannot be set.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
