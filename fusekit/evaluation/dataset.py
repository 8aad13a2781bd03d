"""Dataset discovery: source sub-folders, their order, and the image sets they share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import InputError

#: Recognised source layouts: (task, ((aliases of source 1), (aliases of source 2))).
LAYOUTS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("ivif", (("ir", "infrared"), ("vi", "vis", "visible"))),
    ("mif", (("ct", "pet", "spect", "ct_pet_spect"), ("mri",))),
    ("mfif", (("a", "near"), ("b", "far"))),
    ("meif", (("under",), ("over",))),
)

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


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


def _images_by_stem(folder: Path) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in _IMAGE_EXTENSIONS:
            by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _detect_layout(root: Path) -> tuple[tuple[str, ...], str | None]:
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    matches = []
    for task, slots in LAYOUTS:
        picked = []
        for aliases in slots:
            found = [d for d in subdirs if d.lower() in aliases]
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


def find_dataset(root: str | os.PathLike, sources: Sequence[str] | str | None = None) -> Dataset:
    """Find the source sets of a dataset folder.

    Parameters
    ----------
    root : path-like
        Folder with one sub-folder per source modality.
    sources : sequence of str or str, optional
        Sub-folder names in source order (``["ir", "vi"]`` or ``"ir,vi"``);
        default: detected from :data:`LAYOUTS`.

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
        task = next((t for t, slots in LAYOUTS
                     if len(slots) == len(modalities)
                     and all(m.lower() in a for m, a in zip(modalities, slots))), None)
    else:
        modalities, task = _detect_layout(root)
    listings = [_images_by_stem(root / m) for m in modalities]
    items: dict[str, tuple[Path, ...]] = {}
    problems: dict[str, str] = {}
    for name in sorted(set().union(*listings)):
        missing = [m for m, listing in zip(modalities, listings) if name not in listing]
        multiple = [p.name for listing in listings for p in listing.get(name, [])
                    if len(listing[name]) > 1]
        if missing:
            problems[name] = f"no source image named {name!r} in {', '.join(m + '/' for m in missing)}"
        elif multiple:
            problems[name] = f"several source files named {name!r} ({', '.join(multiple)}); keep one"
        else:
            items[name] = tuple(listing[name][0] for listing in listings)
    if not items:
        folders = ", ".join(m + "/" for m in modalities)
        raise InputError(f"{root}: no image name is shared by {folders}; "
                         "the sources of one set must have the same file name")
    return Dataset(root, modalities, task, items, problems)
