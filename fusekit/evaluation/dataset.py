"""A dataset folder's image sets, found with the vocabulary of :mod:`fusekit.datasets`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..datasets import LAYOUTS, detect_layout, pair_by_stem
from ..errors import InputError

__all__ = ["LAYOUTS", "Dataset", "find_dataset"]


@dataclass(frozen=True)
class Dataset:
    """Source image sets of a dataset folder.

    Attributes
    ----------
    root : Path
    modalities : tuple of str
        Sub-folder names in source order, e.g. ``("ir", "vi")``.
    task : str or None
        ``"ivif"``, ``"mif"``, ``"mfif"`` or ``"meif"`` for a recognised
        layout, else ``None``.
    items : dict of str to tuple of Path
        Image name (file name without extension) -> one file per modality.
    problems : dict of str to str
        Names that cannot be scored and why (missing in a modality, several
        files with one name).
    """

    root: Path
    modalities: tuple[str, ...]
    task: str | None
    items: dict[str, tuple[Path, ...]]
    problems: dict[str, str] = field(default_factory=dict)


def find_dataset(root: str | os.PathLike, sources: Sequence[str] | str | None = None) -> Dataset:
    """Find the source sets of a dataset folder.

    Parameters
    ----------
    root : path-like
        Folder with one sub-folder per source modality.
    sources : sequence of str or str, optional
        Sub-folder names in source order (``["ir", "vi"]`` or ``"ir,vi"``);
        default: detected from :data:`fusekit.datasets.LAYOUTS`.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        The folder is missing, no layout is recognised, a named sub-folder is
        missing, or no name is shared by all sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give a dataset folder with one sub-folder per source")
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    if sources:
        modalities = tuple(sources)
        if len(modalities) < 2:
            raise InputError(f"--sources needs two or more sub-folders, got {','.join(modalities)}")
        missing = [m for m in modalities if not (root / m).is_dir()]
        if missing:
            present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "(none)"
            raise InputError(f"{root}: no sub-folder {missing[0]!r} (found: {present}); fix --sources")
        task = next((t for t, slots in LAYOUTS.items()
                     if len(slots) == len(modalities)
                     and all(slot.accepts(m) for m, slot in zip(modalities, slots))), None)
    else:
        modalities, task = detect_layout(root)
    items, problems = pair_by_stem([root / m for m in modalities], [m + "/" for m in modalities],
                                   what="source image")
    if not items:
        folders = ", ".join(m + "/" for m in modalities)
        raise InputError(f"{root}: no image name is shared by {folders}; "
                         "the sources of one set must have the same file name")
    return Dataset(root, modalities, task, items, problems)
