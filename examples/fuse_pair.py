"""Fuse the demo infrared/visible pair with the Python API.

Run from the repository root::

    python examples/fuse_pair.py

It fuses ``examples/data/ir.png`` and ``examples/data/vi.png`` with every
installed method that suits infrared-visible fusion (and that can run:
learned methods without installed weights are skipped), and writes one PNG
per method to ``examples/out/``.
"""

from pathlib import Path

import fusekit
from fusekit.io import read_image, write_image

here = Path(__file__).parent
infrared = read_image(here / "data" / "ir.png")   # H x W, float32 in [0, 1]
visible = read_image(here / "data" / "vi.png")    # H x W x 3 (colour)

out_dir = here / "out"
for name in fusekit.list_fusers():
    fuser_cls = fusekit.plugins.get_host().fusers.get(name)
    if "ivif" not in fuser_cls.tasks:
        continue
    try:
        # infrared first, visible second: the order learned methods expect
        fused = fusekit.fuse([infrared, visible], method=name)
    except fusekit.FusekitError as exc:
        print(f"{name:20s} skipped: {exc}")
        continue
    path = write_image(out_dir / f"{name}.png", fused)
    print(f"{name:20s} -> {path}  shape={fused.shape}")
