"""Run independent work items here, in local worker processes, or on an executor such as Dask's.

``fuse`` on folders (:mod:`fusekit.batch`) and ``eval``
(:mod:`fusekit.evaluation`) hand their work to :func:`execute`, which runs
``function(shared, item)`` for every item on one of three backends: serial
(``jobs=1``); a :class:`~concurrent.futures.ProcessPoolExecutor` of at most
as many workers as cores and items (``jobs=N``; forked where the platform
can, so ``shared`` is inherited, not pickled; ``cores // N`` torch threads
each); or an executor (``executor=``, or ``dask=ADDRESS``: Dask is imported
only then; the function and ``shared`` travel with every item). Every
backend keeps the same promises:

* results are :class:`Done` records, in completion (or input) order;
* an ``Exception`` of one item, or a worker that dies, becomes that item's
  one-line :attr:`Done.error`, and the other items go on;
* warnings an item raises in a local worker process are raised again here as
  it returns, so that "alpha channel dropped" reaches the user as in a serial
  run (not from an executor: recording warnings is not thread-safe, and an
  executor may run items on threads);
* progress is one tqdm bar on stderr (:class:`Progress`, from :mod:`fusekit.progress`);
* on Ctrl-C (or SIGTERM under :func:`fusekit.workers.sigterm_as_interrupt`)
  nothing more is submitted, queued items are cancelled and worker processes
  terminated at once (a worker unwinds through its atomic write, removing the
  temporary file); the ``KeyboardInterrupt`` reaches the caller, which says
  so in one line. Every item already yielded is complete.

Examples
--------
>>> from fusekit.execution import execute
>>> [d.value for d in execute(pow, [1, 2, 3], shared=2, ordered=True)]
[2, 4, 8]
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from . import workers
from .errors import InputError, one_line
from .progress import Progress

__all__ = ["Done", "Progress", "execute", "dask_executor"]

#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT_S = 10

#: ``(function, shared)`` of this worker process (set by :func:`_init_worker`).
_WORKER: tuple[Callable[[Any, Any], Any], Any] | None = None


@dataclass(frozen=True)
class Done:
    """The outcome of one work item: ``index`` and ``item`` as given, ``value`` or one-line ``error``."""

    index: int
    item: Any
    value: Any = None
    error: str | None = None


#: No bar.
_SILENT = Progress("", show=False)


def execute(function: Callable[[Any, Any], Any], items: Iterable[Any], *, shared: Any = None,
            jobs: int = 1, executor: cf.Executor | None = None, dask: str | None = None,
            ordered: bool = False, progress: Progress | None = None) -> Iterator[Done]:
    """Run ``function(shared, item)`` for every item; yield a :class:`Done` for each.

    Parameters
    ----------
    function : callable
        ``function(shared, item) -> value``; a module-level function where it
        must pickle (spawned workers, an executor).
    items : iterable
        Independent work items (small: each is sent to a worker).
    shared : object, optional
        State every item needs (a prepared fuser, metrics); sent once per
        worker process, or with each item on an executor.
    jobs : int
        Worker processes; 1 runs here. Capped to the usable cores (with a
        warning) and to the number of items. With ``dask="local"``, the
        number of Dask workers.
    executor : concurrent.futures.Executor, optional
        Runs the items instead; it is not shut down.
    dask : str, optional
        Run on the Dask cluster at this address (see :func:`dask_executor`).
    ordered : bool
        Yield in input order instead of completion order.
    progress : Progress, optional
        Show a progress bar.

    Yields
    ------
    Done

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C, after the workers are stopped (see the module docstring).
        Iterate to the end, or close the generator, so that they are.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    items = list(items)
    progress = progress or _SILENT
    if dask is not None:
        with dask_executor(dask, workers=jobs) as client:
            yield from _run_on(client, lambda item: (_attempt, function, shared, item), items, ordered, progress)
    elif executor is not None:
        yield from _run_on(executor, lambda item: (_attempt, function, shared, item), items, ordered, progress)
    elif jobs > 1 and len(items) > 1 and (jobs := workers.cap_jobs(jobs, len(items))) > 1:
        import multiprocessing  # here: ~4 ms of imports (sockets, selectors) that one job never needs

        context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                                      initargs=(function, shared, max(1, workers.usable_cores() // jobs)))
        try:
            yield from _run_on(pool, lambda item: (_in_worker, item), items, ordered, progress)
        except BaseException:  # Ctrl-C, or the caller stopped: stop now, not after every queued item
            workers.stop_pool(pool)
            raise
        pool.shutdown()
    else:
        with progress.bar(items) as bar:
            for index, item in enumerate(items):
                yield Done(index, item, *_attempt(function, shared, item))
                bar.update(progress.units(item))


def _attempt(function: Callable[[Any, Any], Any], shared: Any, item: Any) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, message)`` if the item failed; runs where the item runs."""
    try:
        return function(shared, item), None
    except Exception as exc:  # one item's failure is reported with it; the others go on
        return None, one_line(exc)


def _attempt_relaying(function: Callable[[Any, Any], Any], shared: Any,
                      item: Any) -> tuple[Any, str | None, list[tuple[str, type[Warning]]]]:
    """:func:`_attempt` in a worker process, with the warnings it raised as ``(text, category)`` pairs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, error = _attempt(function, shared, item)
    return value, error, [(str(w.message), w.category) for w in caught]


def _init_worker(function: Callable[[Any, Any], Any], shared: Any, threads: int) -> None:
    global _WORKER
    workers.init_worker_signals()  # Ctrl-C is the main process's to handle; SIGTERM removes a half-written temp
    _WORKER = (function, shared)
    if "torch" in sys.modules:  # share the cores between workers instead of oversubscribing them
        sys.modules["torch"].set_num_threads(threads)


def _in_worker(item: Any) -> tuple[Any, str | None]:
    if _WORKER is None:
        raise RuntimeError("worker process started without its function")
    return workers.run_item(_attempt_relaying, *_WORKER, item)


def _run_on(executor: cf.Executor, call: Callable[[Any], tuple], items: list[Any], ordered: bool,
            progress: Progress) -> Iterator[Done]:
    """Submit ``executor.submit(*call(item))`` for every item, then yield each result; cancel the rest if stopped."""
    futures: dict[cf.Future, int] = {}
    try:
        for index, item in enumerate(items):
            futures[executor.submit(*call(item))] = index
        with progress.bar(items) as bar:  # after the submissions fork the workers: tqdm starts a thread
            for future in futures if ordered else cf.as_completed(futures):
                item = items[futures[future]]
                try:
                    value, error, *relayed = future.result()  # workers add their warnings; executors do not
                except Exception as exc:  # the worker died, or the item could not be sent to it
                    value, error, relayed = None, one_line(exc), []
                for text, category in (relayed[0] if relayed else []):  # the parent's filters decide, as serially
                    warnings.warn(text, category, stacklevel=2)
                yield Done(futures[future], item, value, error)
                bar.update(progress.units(item))
    except BaseException:
        for future in futures:
            future.cancel()
        raise


@contextmanager
def dask_executor(address: str, workers: int = 1) -> Iterator[cf.Executor]:
    """An executor backed by a Dask cluster; the connection is closed on exit.

    Every worker needs fusekit and the plugins used, and must see the files
    at the same paths (a shared file system).

    Parameters
    ----------
    address : str
        Scheduler address (``tcp://host:8786``), or ``"local"`` to start a
        cluster of worker processes on this machine.
    workers : int
        Worker processes of a ``"local"`` cluster (one thread each).

    Yields
    ------
    concurrent.futures.Executor

    Raises
    ------
    InputError
        Dask's distributed scheduler is not installed, or the scheduler
        cannot be reached.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--dask needs Dask's distributed scheduler; install it with "
                         "pip install 'fusekit[dask]'") from None
    cluster = None
    if address == "local":
        # the scheduler serves HTTP routes even without a dashboard, by default on port 8787; a free
        # port instead, so a second cluster (or anything on 8787) gives no "Port 8787 is already in
        # use" warning in fusekit's output
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"})
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"cannot reach the Dask scheduler at {address} ({reason}); start one with "
                             f"'dask scheduler' and workers with 'dask worker {address}', or check "
                             f"the address") from None
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
