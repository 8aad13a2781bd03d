"""Contact sheets: sources and results side by side, for looking at fusion by eye."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .color import to_rgb


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], height: int = 240, gap: int = 4) -> np.ndarray:
    """Tile images into one RGB sheet, one row per scene.

    Parameters
    ----------
    rows : sequence of sequence of ndarray
        Each row: images ``H x W`` or ``H x W x 3`` float in [0, 1] (e.g.
        sources then results of several methods).
    height : int
        Every tile is resized to this height in pixels, keeping its aspect.
    gap : int
        White margin between tiles, in pixels.

    Returns
    -------
    ndarray, shape (H_total, W_total, 3), float32 in [0, 1]
    """
    from skimage.transform import resize

    rendered = []
    for row in rows:
        tiles = []
        for image in row:
            rgb = to_rgb(np.clip(image, 0, 1))
            width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
            tiles.append(resize(rgb, (height, width, 3), order=1, anti_aliasing=True).astype(np.float32))
            tiles.append(np.ones((height, gap, 3), np.float32))
        rendered.append(np.concatenate(tiles[:-1], axis=1))
    width = max(r.shape[1] for r in rendered)
    padded = []
    for r in rendered:
        padded.append(np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0))
    return np.concatenate(padded, axis=0)[:-gap]
