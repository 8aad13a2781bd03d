"""Content hashes of files: the one SHA-256 helper.

The evaluation cache (:mod:`fusekit.evaluation.cache`) keys fused images and
their sources by it, and the ReFusion plugin checks its installed weights
against the registry with it.
"""

from __future__ import annotations

import os

__all__ = ["file_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as lowercase hex.

    Read in 1 MiB blocks, so a large file (weights, a checkpoint) is never
    held in memory whole. Not remembered between calls: a file edited in
    place within the file system's timestamp resolution keeps its size and
    mtime.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
        Hex digest (64 characters).

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    import hashlib  # here: loading OpenSSL's hashes costs ~7 ms, and most runs hash nothing

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
