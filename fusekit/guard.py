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


def check_writable(path: str | os.PathLike, *, option: str = "-o") -> None:
    """Raise :class:`UsageError` unless a file can be written at ``path``.

    Checked before any work, so a long run does not end by losing its
    result: ``path`` must not be a folder, and its folder (or the nearest
    existing folder above it, where the rest would be created) must take a
    new file. The test creates and removes an empty hidden file there, which
    also catches read-only mounts and permissions that ``os.access`` gets
    wrong (for root, or with ACLs).

    Parameters
    ----------
    path : path-like
        The file about to be written.
    option : str
        The option that named it, for the message.

    Raises
    ------
    UsageError
        One line naming the path, why it cannot be written, and the fix.
    """
    import tempfile

    from .errors import UsageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give {option} a file name")
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{path}: cannot write to folder {folder} (not a folder); choose another {option} path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fusekit-probe-", dir=folder)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write to folder {folder} ({exc.strerror or exc}); "
                         f"choose a writable {option} path") from None
    os.close(fd)
    os.unlink(probe)


def check_writable_folder(folder: str | os.PathLike, *, option: str = "-o") -> None:
    """Create ``folder`` if needed and raise :class:`UsageError` unless files can be written in it.

    Parameters
    ----------
    folder : path-like
        The output folder of a batch.
    option : str
        The option that named it, for the message.
    """
    from .errors import UsageError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot create the output folder ({exc.strerror or exc}); "
                         f"choose another {option} folder") from None
    try:
        check_writable(folder / "probe", option=option)
    except UsageError:
        raise UsageError(f"{folder}: cannot write in the output folder; choose a writable {option} folder") from None
