"""The dataset vocabulary: tasks, source slots, their folder names, image files, pairing.

This is the one place that knows how fusion data is laid out on disk. A
*dataset folder* has one sub-folder per source; the files of one scene share
their name (without extension) across the sub-folders::

    tno/ir/01.png   tno/vi/01.png
    tno/ir/02.png   tno/vi/02.png

Each task has an ordered list of source *slots*; a slot accepts several
folder names (case-insensitive), its first alias being the canonical one:

====  ==========================  ======================
task  slot 1                      slot 2
====  ==========================  ======================
ivif  ir, infrared                vi, vis, visible
mif   ct, pet, spect, ct_pet_spect  mri
mfif  a, near                     b, far
meif  under                       over
====  ==========================  ======================

The slot order is the source order learned methods expect (ReFusion's test
script: the functional image before MRI). ``fusekit fuse`` (folder mode and
task inference), ``fusekit eval`` and :mod:`fusekit.evaluation` use this
module; it imports only the standard library.

Examples
--------
>>> from fusekit.datasets import detect_task, slot_of
>>> detect_task(["Under", "over"])
'meif'
>>> slot_of("visible")
('ivif', 1)
>>> detect_task(["ir", "mri"]) is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import InputError, ParameterError
from .interfaces import TASKS

__all__ = [
    "TASKS", "Slot", "LAYOUTS", "IMAGE_SUFFIXES", "is_image_file", "images_by_stem", "pair_by_stem",
    "match_folders", "slot_of", "detect_task", "detect_layout", "source_folders",
]


@dataclass(frozen=True)
class Slot:
    """One source position of a task.

    Attributes
    ----------
    label : str
        What the source is, for messages (``"infrared"``).
    aliases : tuple of str
        Folder names accepted for it, lower case, canonical name first.
    """

    label: str
    aliases: tuple[str, ...]

    @property
    def folder(self) -> str:
        """The canonical folder name (``"ir"``)."""
        return self.aliases[0]

    def accepts(self, name: str) -> bool:
        """Whether a folder called ``name`` holds this source (case-insensitive)."""
        return name.lower() in self.aliases


#: Per task, its source slots in the order learned methods expect them.
LAYOUTS: dict[str, tuple[Slot, ...]] = {
    "ivif": (Slot("infrared", ("ir", "infrared")), Slot("visible", ("vi", "vis", "visible"))),
    "mif": (Slot("CT/PET/SPECT", ("ct", "pet", "spect", "ct_pet_spect")), Slot("MRI", ("mri",))),
    "mfif": (Slot("near focus", ("a", "near")), Slot("far focus", ("b", "far"))),
    "meif": (Slot("under-exposed", ("under",)), Slot("over-exposed", ("over",))),
}

#: File suffixes fusekit reads and writes as images (lower case, with dot).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an image fusekit reads: an image suffix, not a hidden file.

    Hidden files (``.DS_Store``, macOS ``._x.png`` resource forks, fusekit's
    own temporaries) are never images.
    """
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def images_by_stem(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """Image files directly in ``folder``, keyed by name without extension.

    Returns
    -------
    dict of str to list of Path
        Stem -> the files with that stem, sorted (several when one name
        exists with different extensions).
    """
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        if is_image_file(path) and path.is_file():
            by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def pair_by_stem(folders: Sequence[str | os.PathLike], labels: Sequence[str] | None = None,
                 what: str = "image") -> tuple[dict[str, tuple[Path, ...]], dict[str, str]]:
    """Group the image files of several folders by name without extension.

    Parameters
    ----------
    folders : sequence of path-like
        One folder per source, in source order.
    labels : sequence of str, optional
        How messages name each folder (default: its path).
    what : str
        Noun for messages, e.g. ``"source image"``.

    Returns
    -------
    sets : dict of str to tuple of Path
        Name -> one file per folder, in folder order, for the names present
        exactly once in every folder; sorted by name.
    problems : dict of str to str
        Name -> why it has no set (missing in a folder, several files).

    Examples
    --------
    >>> sets, problems = pair_by_stem(["data/ir", "data/vi"])   # doctest: +SKIP
    >>> sets["01"]                                               # doctest: +SKIP
    (PosixPath('data/ir/01.png'), PosixPath('data/vi/01.png'))
    """
    paths = [Path(f) for f in folders]
    names = list(labels) if labels is not None else [str(p) for p in paths]
    listings = [images_by_stem(p) for p in paths]
    sets: dict[str, tuple[Path, ...]] = {}
    problems: dict[str, str] = {}
    for stem in sorted(set().union(*listings)):
        missing = [label for label, listing in zip(names, listings) if stem not in listing]
        several = [p.name for listing in listings for p in listing.get(stem, []) if len(listing[stem]) > 1]
        if missing:
            problems[stem] = f"no {what} named {stem!r} in {', '.join(missing)}"
        elif several:
            problems[stem] = f"several {what} files named {stem!r} ({', '.join(several)}); keep one"
        else:
            sets[stem] = tuple(listing[stem][0] for listing in listings)
    return sets, problems


def match_folders(folders: Sequence[Path]) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """:func:`pair_by_stem` with lists as values (the shape ``fusekit fuse`` and scripts use)."""
    sets, problems = pair_by_stem(folders)
    return {name: list(paths) for name, paths in sets.items()}, problems


def slot_of(folder_name: str) -> tuple[str, int] | None:
    """The ``(task, slot index)`` a folder called ``folder_name`` holds, or ``None``.

    Every alias belongs to exactly one slot of one task.
    """
    for task, slots in LAYOUTS.items():
        for index, slot in enumerate(slots):
            if slot.accepts(folder_name):
                return task, index
    return None


def detect_task(folder_names: Iterable[str]) -> str | None:
    """The task whose source slots the folder names fill, one name per slot, in any order.

    Parameters
    ----------
    folder_names : iterable of str
        E.g. the parent folders of the source files, ``["under", "over"]``.

    Returns
    -------
    str or None
        ``None`` unless every name is an alias of a slot of one task and
        every slot of that task is named exactly once.
    """
    found = [slot_of(n) for n in folder_names]
    if not found or any(f is None for f in found):
        return None
    tasks = {task for task, _ in found}  # type: ignore[misc]
    if len(tasks) != 1:
        return None
    task = tasks.pop()
    indices = sorted(index for _, index in found)  # type: ignore[misc]
    return task if indices == list(range(len(LAYOUTS[task]))) else None


def _subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect_layout(root: str | os.PathLike) -> tuple[tuple[str, ...], str]:
    """The source sub-folders of a dataset folder, in slot order, and their task.

    Returns
    -------
    modalities : tuple of str
        Sub-folder names as they are on disk, e.g. ``("ir", "vi")``.
    task : str

    Raises
    ------
    InputError
        No task's slots are each filled by exactly one sub-folder, or
        several tasks' are.
    """
    root = Path(root)
    subdirs = _subfolders(root)
    matches = []
    for task, slots in LAYOUTS.items():
        picked = []
        for slot in slots:
            found = [d for d in subdirs if slot.accepts(d)]
            if len(found) != 1:
                break
            picked.append(found[0])
        else:
            matches.append((tuple(picked), task))
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(subdirs) if subdirs else "(no sub-folders)"
    if not matches:
        raise InputError(
            f"{root}: no recognised source sub-folders (found: {shown}); expected ir/vi, "
            "ct|pet|spect/mri, a/b or under/over, or name them with --sources X,Y"
        )
    raise InputError(f"{root}: several source layouts match ({shown}); pick one with --sources X,Y")


def source_folders(root: str | os.PathLike, task: str) -> tuple[Path, ...]:
    """The sub-folders of ``root`` that hold ``task``'s sources, in slot order.

    Parameters
    ----------
    root : path-like
        A dataset folder (one sub-folder per source).
    task : {"ivif", "mif", "mfif", "meif"}

    Returns
    -------
    tuple of Path
        One folder per slot, e.g. ``(root/"ir", root/"vi")``.

    Raises
    ------
    ParameterError
        Unknown task.
    InputError
        ``root`` is not a folder, or a slot has no sub-folder or several.
    """
    if task not in LAYOUTS:
        raise ParameterError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data folder {root} does not exist or is not a folder")
    subdirs = _subfolders(root)
    out = []
    for slot in LAYOUTS[task]:
        found = [d for d in subdirs if slot.accepts(d)]
        if not found:
            raise InputError(
                f"{root}: task {task!r} needs a sub-folder named {' or '.join(slot.aliases)} "
                f"({slot.label}), found {', '.join(subdirs) if subdirs else 'no sub-folders'}; "
                "point it at a folder with one sub-folder per source")
        if len(found) > 1:
            raise InputError(f"{root}: found several {slot.label} folders ({', '.join(found)}); "
                             "use one data folder per source pair")
        out.append(root / found[0])
    return tuple(out)
