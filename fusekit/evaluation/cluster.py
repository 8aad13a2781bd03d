"""Run evaluation work items on a Dask cluster (``fusekit eval --dask ADDRESS``).

fusekit does no scheduling of its own beyond one machine: for more, the work
items go to Dask's distributed scheduler through its
:class:`concurrent.futures.Executor` (``Client.get_executor()``). Every
worker needs fusekit and the plugins of the methods and metrics used, and
must see the dataset, the fused folders and the cache folder at the same
paths (a shared file system).
"""

from __future__ import annotations

import concurrent.futures as cf
from contextlib import contextmanager
from typing import Iterator

from ..errors import InputError

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT_S = 10


@contextmanager
def dask_executor(address: str, workers: int = 1) -> Iterator[cf.Executor]:
    """An executor backed by a Dask cluster; the connection is closed on exit.

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
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
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
