"""Overwrite guards: an output must never resolve to one of the inputs.

``fusekit fuse ir.png vi.png -o ir.png`` would otherwise replace a source
with the fused image, and ``fusekit fuse ir/ vi/ -o ir/`` every source of a
folder. Paths are compared after resolving symlinks and ``..``; where both
exist they are compared as files (:func:`os.path.samefile`), which also
catches hard links and case-insensitive file systems (``IR.png`` is
``ir.png`` on macOS and Windows).

Examples
--------
>>> refuse_output_over_inputs("fused.png", ["ir.png", "vi.png"])  # doctest: +SKIP
>>> refuse_output_over_inputs("ir.png", ["ir.png", "vi.png"])     # doctest: +SKIP
Traceback (most recent call last):
InputError: ir.png: the output would overwrite the input ir.png; ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import InputError


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder.

    Parameters
    ----------
    a, b : path-like
        Paths; either may not exist yet.

    Returns
    -------
    bool
        True if both exist and are the same file (symlinks, hard links and
        case-insensitive names included), or if their resolved absolute
        paths are equal (case-folded where the platform ignores case).
    """
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def refuse_output_over_inputs(output: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                              *, what: str = "input") -> None:
    """Raise :class:`InputError` if ``output`` resolves to any of ``inputs``.

    Parameters
    ----------
    output : path-like
        The file (or folder) about to be written.
    inputs : iterable of path-like
        Files (or folders) that are read and must stay unchanged.
    what : str
        Noun for the inputs in the message (``"input"``, ``"source folder"``).

    Raises
    ------
    InputError
        One line naming the output, the input it would overwrite, and the fix.
    """
    for source in inputs:
        if same_path(output, source):
            raise InputError(f"{output}: the output would overwrite the {what} {source}; "
                             "choose another output path (-o)")


def refuse_outputs_in_folder_over_inputs(outputs: Iterable[str | os.PathLike],
                                         inputs: Iterable[str | os.PathLike]) -> None:
    """Raise :class:`InputError` if any of ``outputs`` resolves to any of ``inputs``.

    Builds the resolved set of inputs once, so a folder of thousands of sets
    is checked in linear time.

    Parameters
    ----------
    outputs : iterable of path-like
        Files about to be written.
    inputs : iterable of path-like
        Files that are read.
    """
    resolved: dict[str, Path] = {}
    identities: dict[tuple[int, int], Path] = {}
    for source in inputs:
        resolved[os.path.normcase(os.path.realpath(source))] = Path(source)
        try:
            st = os.stat(source)
            identities[(st.st_dev, st.st_ino)] = Path(source)
        except OSError:
            pass
    for out in outputs:
        hit = resolved.get(os.path.normcase(os.path.realpath(out)))
        if hit is None:
            try:
                st = os.stat(out)
                hit = identities.get((st.st_dev, st.st_ino))
            except OSError:
                hit = None
        if hit is not None:
            raise InputError(f"{out}: the output would overwrite the input {hit}; "
                             "choose another output folder (-o)")
