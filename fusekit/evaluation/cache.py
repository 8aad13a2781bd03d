"""Trustworthy entries of the fused-image cache of ``fusekit eval --method``.

Only fused images are cached, never scores: the profile and the metric set
change nothing that is cached, and every score is computed afresh from the
images. A cached image ``<folder>/<name>.png`` (the folder names the dataset,
its source sub-folders in order, the method and its options) has a record
beside it, ``<name>.json``, holding

* ``key``: a SHA-256 of everything the fused image depends on: the fusekit
  version, the method's class (for a third-party plugin's method also the
  content of the file that defines it, so an upgraded or edited plugin fuses
  again), its options (and the content of any option that names a file, such
  as ``weights``), the source sub-folders in order, and the content of every
  source file;
* ``sha256``: the SHA-256 of the cached PNG itself.

An entry is used only when both match. A different key (a source edited in
place, another source order, new weights, another fusekit version) makes the
image be fused again; a record that cannot be read or a PNG that does not
match its record (edited, truncated, corrupted) is recomputed with a
warning.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..hashing import file_sha256  # noqa: F401 - also this module's name for it (runner, experiments)
from ..io import FusekitWarning, write_bytes_atomic

#: Version of the record format; a change invalidates every entry.
RECORD_FORMAT = 1


def _option_material(options: Iterable[tuple[str, Any]]) -> list[list[str]]:
    """Options as text, with the content hash of any option naming an existing file."""
    out = []
    for key, value in options:
        item = [str(key), repr(value)]
        if isinstance(value, (str, os.PathLike)) and str(value) and os.path.isfile(value):
            item.append(file_sha256(value))
        out.append(item)
    return out


#: Packages released with fusekit: the fusekit version in the key stands for their code.
SHIPPED_PACKAGES = ("fusekit", "fusekit_classic", "fusekit_refusion")


def _code_material(fuser: type) -> dict[str, str]:
    """For a third-party method, the SHA-256 of the file that defines it (``{}`` for fusekit's own).

    The fusekit version does not change when a plugin is upgraded or edited; the defining file does.
    """
    if fuser.__module__.split(".")[0] in SHIPPED_PACKAGES:
        return {}
    import sys

    path = getattr(sys.modules.get(fuser.__module__), "__file__", None)
    return {"code": file_sha256(path)} if path and os.path.isfile(path) else {}


def method_key(fuser: type, options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """What a method contributes to the key: its class, options, and files its options name; for a
    third-party method also the content of the file that defines it.

    Computed once per method and run (it may hash a weights file).
    """
    return {"method": f"{fuser.__module__}.{fuser.__qualname__}", "options": _option_material(options),
            **_code_material(fuser)}


def entry_key(method: dict[str, Any], modalities: Sequence[str], source_hashes: Sequence[str]) -> str:
    """The key of one cached fused image: a SHA-256 of everything it depends on.

    Parameters
    ----------
    method : dict
        From :func:`method_key`.
    modalities : sequence of str
        Source sub-folders, in the order the sources are given to the method.
    source_hashes : sequence of str
        :func:`file_sha256` of the scene's source files, in that order.

    Returns
    -------
    str
        Hex digest.
    """
    from .. import __version__

    material = {
        "format": RECORD_FORMAT,
        "fusekit": __version__,
        **method,
        "modalities": list(modalities),
        "sources": list(source_hashes),
    }
    import hashlib

    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def record_path(image: str | os.PathLike) -> Path:
    """Where the record of the cached image ``image`` lives (same stem, ``.json``)."""
    return Path(image).with_suffix(".json")


def lookup(image: str | os.PathLike, key: str) -> bool:
    """Whether the cached ``image`` may be used for ``key``; warn if it is corrupt.

    Parameters
    ----------
    image : path-like
        The cached PNG.
    key : str
        From :func:`entry_key`.

    Returns
    -------
    bool
        True if the image exists, its record names ``key`` and the image's
        bytes match the record. A missing image or record, or another key,
        is a plain miss; an unreadable record or an image that does not
        match its record gives a :class:`~fusekit.io.FusekitWarning` (the
        entry is recomputed).
    """
    image = Path(image)
    record = record_path(image)
    if not image.is_file() or not record.is_file():
        return False
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        stored_key, stored_hash = data["key"], data["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(f"{record}: cache record is unreadable; fusing {image.name} again",
                      FusekitWarning, stacklevel=2)
        return False
    if stored_key != key:
        return False
    try:
        ok = file_sha256(image) == stored_hash
    except OSError:
        ok = False
    if not ok:
        warnings.warn(f"{image}: cached fused image was changed or is corrupt; fusing it again",
                      FusekitWarning, stacklevel=2)
    return ok


def store(image: str | os.PathLike, key: str) -> Path:
    """Write the record of the freshly written cached ``image`` (atomically).

    Parameters
    ----------
    image : path-like
        The cached PNG, already written.
    key : str
        From :func:`entry_key`.

    Returns
    -------
    Path
        The record's path.
    """
    from .. import __version__

    image = Path(image)
    record = record_path(image)
    text = json.dumps({"format": RECORD_FORMAT, "key": key, "sha256": file_sha256(image),
                       "fusekit": __version__}, indent=1)
    return write_bytes_atomic(record, text.encode("utf-8"), what="cache record")
