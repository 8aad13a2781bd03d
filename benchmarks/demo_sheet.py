"""Redraw the README's demo figure, ``docs/demo.png``, with the shipped weights.

Usage::

    python benchmarks/demo_sheet.py

Fuses the demo pairs in ``examples/data`` with ``refusion`` and the weights
that ship in the plugin (``--task ivif``: infrared | visible | fused;
``--task mif``: PET | MRI | fused, colour from PET) and tiles them 200 pixels
high, columns titled and rows labelled with their task (full-colour PNG: a 256-colour palette turns the PET reds yellow). Run it whenever shipped weights change, so the figure shows what
``fusekit fuse`` gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

ROWS = [("ivif", ("ir.png", "vi.png")), ("mif", ("pet.png", "mri.png"))]
TITLES = ["infrared / PET", "visible / MRI", "refusion"]


def main() -> None:
    from PIL import Image

    import fusekit
    from fusekit.io import read_image, write_image
    from fusekit.sheet import contact_sheet

    data = REPO / "examples" / "data"
    rows = []
    for task, names in ROWS:
        sources = [read_image(data / n) for n in names]
        rows.append(sources + [fusekit.fuse(sources, method="refusion", task=task)])
    out = REPO / "docs" / "demo.png"
    sheet = contact_sheet(rows, height=200, titles=TITLES, row_labels=[task for task, _ in ROWS])
    write_image(out, np.asarray(sheet, dtype=np.float32))
    with Image.open(out) as image:  # lossless, smaller: zlib at its best
        image.load()
        image.save(out, optimize=True)
    out.chmod(0o644)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
