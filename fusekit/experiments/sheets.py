"""Labelled contact sheets of runs: per scene its sources, then each run's fused image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .runs import Split, run_folder

#: Size above which :func:`write_sheet` with ``max_bytes`` shrinks a sheet (keeps ``docs/`` small).
MAX_SHEET_BYTES = 300 * 1024


def sheet_titles(splits: Sequence[Split], columns: Sequence[str]) -> list[str]:
    """Column titles: per source slot its folder names over the rows' splits (``"ct / pet"``), then ``columns``."""
    slots: list[list[str]] = []
    for split in splits:
        for k, source in enumerate(split.sources):
            if k == len(slots):
                slots.append([])
            if source not in slots[k]:
                slots[k].append(source)
    return [" / ".join(names) for names in slots] + list(columns)


def scene_rows(scenes: Sequence[tuple[Split, str]],
               folders: Callable[[Split], Sequence[str | os.PathLike]]) -> list[list[np.ndarray]]:
    """Images of each scene: its sources, then ``<folder>/<scene>.png`` for each of ``folders(split)``.

    Returns
    -------
    list of list of ndarray
        Float images in [0, 1], one row per scene, for :func:`write_sheet`.
    """
    from ..io import read_image

    return [[read_image(p) for p in split.sets()[name]]
            + [read_image(Path(f) / f"{name}.png") for f in folders(split)] for split, name in scenes]


def write_sheet(out: str | os.PathLike, rows: Sequence[Sequence[np.ndarray]], *,
                titles: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
                height: int = 200, palette: bool = True, max_bytes: int | None = None) -> Path:
    """Draw a contact sheet (:func:`fusekit.sheet.contact_sheet`) and write it as PNG, mode 0644.

    Parameters
    ----------
    out : path-like
        The PNG, written atomically.
    rows : sequence of sequence of ndarray
        Per row, images ``H x W`` or ``H x W x 3`` float in [0, 1].
    titles, row_labels : sequence of str, optional
        Column titles and row labels (see :func:`sheet_titles`).
    height : int
        Tile height in pixels.
    palette : bool
        Store 256 dithered colours (about a third of the size).
    max_bytes : int, optional
        Size limit in bytes: an RGB sheet above it is stored with the palette,
        and tiles shrink by 10% until it fits or they are under 120 px high.

    Returns
    -------
    Path
    """
    from ..io import write_image
    from ..sheet import contact_sheet

    out = Path(out)
    while True:
        write_image(out, np.asarray(contact_sheet(rows, height=height, titles=titles, row_labels=row_labels),
                                    dtype=np.float32))
        if palette or (max_bytes is not None and out.stat().st_size > max_bytes):
            to_palette(out)
        if max_bytes is None or out.stat().st_size <= max_bytes or height < 120:
            break
        height = int(height * 0.9)
    out.chmod(0o644)
    return out


def runs_sheet(out: str | os.PathLike, scenes: Sequence[tuple[Split, str]], fused_dir: str | os.PathLike,
               labels: Sequence[str], **options) -> Path:
    """:func:`write_sheet` of ``scenes``: sources, then each run's image from :func:`~fusekit.experiments.fuse`.

    Columns are titled with the source folders and ``labels``, rows with ``dataset/scene``;
    ``options`` go to :func:`write_sheet`.
    """
    rows = scene_rows(scenes, lambda split: [run_folder(fused_dir, split, label) for label in labels])
    return write_sheet(out, rows, titles=sheet_titles([s for s, _ in scenes], labels),
                       row_labels=[f"{s.dataset}/{name}" for s, name in scenes], **options)


def to_palette(path: str | os.PathLike) -> None:
    """Re-encode a PNG in place as 256 dithered colours (atomically)."""
    from PIL import Image

    from ..io import atomic_file

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256)
    with atomic_file(path, what="sheet") as tmp:
        small.save(tmp, "PNG", optimize=True)
