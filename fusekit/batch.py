"""Fuse many sets of files, in this process, in worker processes or on a Dask cluster.

``fusekit fuse DIR1 DIR2 -o OUT`` (with ``--jobs N`` or ``--dask ADDRESS``)
runs here, through :func:`fusekit.execution.execute`. Every set is fused and
written on its own (atomic writes, see :func:`fusekit.api.fuse_files`); a set
that fails is recorded and the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .api import fuse_files
from .contract import describe
from .errors import PluginError
from .execution import Progress, execute
from .interfaces import Fuser

__all__ = ["fuse_sets"]


def _fuse_one(fuser: Fuser, job: tuple[list[Path], Path, int | None]) -> None:
    """Fuse one set of sources into its output file."""
    paths, out, bit_depth = job
    try:
        fuse_files(fuser, paths, out, bit_depth=bit_depth)
    except SystemExit as exc:  # a plugin calling sys.exit() must not end the whole batch
        raise PluginError(f"{describe(fuser)} called sys.exit({exc.code!r}); fix the plugin") from None


def fuse_sets(fuser: Fuser, sets: Mapping[str, Sequence[Path]], outputs: Mapping[str, Path], *,
              bit_depth: int | None = None, jobs: int = 1, executor: cf.Executor | None = None,
              dask: str | None = None, progress: bool | None = False,
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
        Runs the sets instead (``jobs`` is then ignored); the fuser travels
        with each set, so it must pickle (cloudpickle for Dask).
    dask : str, optional
        Fuse on the Dask cluster at this address, or ``"local"`` for ``jobs``
        Dask workers here (:func:`fusekit.execution.dask_executor`).
    progress : bool or None
        Show a progress bar of the sets on stderr (``None``: only on a terminal).
    on_done : callable, optional
        Called as ``on_done(name, error_or_None)`` after each set.

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
    names = list(sets)
    work = [(list(sets[name]), outputs[name], bit_depth) for name in names]
    bar = Progress(f"fuse {fuser.name}", unit="set", show=progress)
    failures: dict[str, str] = {}
    for done in execute(_fuse_one, work, shared=fuser, jobs=jobs, executor=executor, dask=dask, progress=bar):
        name = names[done.index]
        if done.error is not None:
            failures[name] = done.error
        if on_done is not None:
            on_done(name, done.error)
    return failures
