"""Draw the README's per-task figure, ``docs/tasks.png``, from the small pairs in ``examples/data``.

Usage::

    python benchmarks/tasks_sheet.py

One row per task (IVIF, MIF, MFIF, MEIF): the two sources, ``refusion`` with
the shipped weights of that task, and the classic method suited to it
(guided filter for IVIF and MIF, ``focus`` for MFIF, ``exposure`` for MEIF).
Every tile is labelled with what it is. The pairs are the ones the README's
"Try each task" commands fuse, so the figure shows what those commands give;
rerun it when the shipped weights change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data"

#: task -> (source folders in the order learned methods expect, scene name, classic method)
ROWS = {
    "ivif": (("ir", "vi"), "FLIR_06570", "guided-filter"),
    "mif": (("ct", "mri"), "11", "guided-filter"),
    "mfif": (("near", "far"), "lytro_05", "focus"),
    "meif": (("under", "over"), "Candle", "exposure"),
}
TILE = 192
GAP = 4


def main() -> None:
    from PIL import Image, ImageDraw

    import fusekit
    from fusekit.io import read_image
    from fusekit.sheet import draw_label, label_font

    font = label_font(15)
    rows = []
    for task, (slots, scene, classic) in ROWS.items():
        sources = [read_image(DATA / task / slot / f"{scene}.png") for slot in slots]
        tiles = [(f"{task}: {slot}", image) for slot, image in zip(slots, sources)]
        tiles.append(("refusion", fusekit.fuse(sources, method="refusion", task=task)))
        tiles.append((classic, fusekit.fuse(sources, method=classic)))
        rows.append(tiles)
        print(f"fused {task}")
    width = 4 * (TILE + GAP) - GAP
    sheet = Image.new("RGB", (width, len(rows) * (TILE + GAP) - GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, tiles in enumerate(rows):
        for c, (name, image) in enumerate(tiles):
            arr = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
            if arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=2)
            tile = Image.fromarray((arr * 255 + 0.5).astype(np.uint8))
            tile.thumbnail((TILE, TILE), Image.LANCZOS)  # keeps the aspect; centred in its cell
            x = c * (TILE + GAP) + (TILE - tile.width) // 2
            y = r * (TILE + GAP) + (TILE - tile.height) // 2
            sheet.paste(tile, (x, y))
            draw_label(draw, (x, y), name, font)
    out = REPO / "docs" / "tasks.png"
    sheet.save(out, optimize=True)
    out.chmod(0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
