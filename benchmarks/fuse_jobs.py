"""Benchmark ``fusekit fuse DIR1 DIR2 -o OUT -j N``: folder mode with worker processes.

Fuses the 12 MSRS test pairs (640 x 480) with a classic method (``laplacian-pyramid``)
and with ``refusion``, ``-j 1`` against ``-j 2``, in interleaved rounds (the
ratio is taken per round, median reported, because this machine's speed
drifts). Every run writes into a fresh folder; the outputs of both are
checked to be identical.

Run from the repository root (``shared/`` beside it)::

    python benchmarks/fuse_jobs.py            # writes its section of BENCHMARKS.md
    python benchmarks/fuse_jobs.py --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fusekit.experiments import write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ivif" / "msrs" / "test"
MARK = "fuse-jobs"
METHODS = (["-m", "laplacian-pyramid"], ["-m", "refusion", "--task", "ivif"])


def run(method: list[str], jobs: int, out: Path) -> float:
    cmd = ["fusekit", "fuse", *method, str(DATA / "ir"), str(DATA / "vi"), "-o", str(out), "-j", str(jobs)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def same_outputs(a: Path, b: Path) -> bool:
    import imageio.v3 as iio

    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        np.array_equal(iio.imread(a / n), iio.imread(b / n)) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            ratios, t1s, t2s = [], [], []
            for r in range(args.rounds):
                t1 = run(method, 1, Path(tmp) / f"{method[1]}-{r}-j1")
                t2 = run(method, 2, Path(tmp) / f"{method[1]}-{r}-j2")
                t1s.append(t1)
                t2s.append(t2)
                ratios.append(t1 / t2)
            same = same_outputs(Path(tmp) / f"{method[1]}-0-j1", Path(tmp) / f"{method[1]}-0-j2")
            rows.append((method[1], statistics.median(t1s), statistics.median(t2s), statistics.median(ratios), same))
            print(rows[-1], flush=True)
    text = "\n".join([
        f"<!-- begin {MARK} -->",
        "## `fusekit fuse` folder mode with worker processes (`benchmarks/fuse_jobs.py`)",
        "",
        f"Command: `python benchmarks/fuse_jobs.py` (run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC "
        f"on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{load:.1f} before). 12 MSRS test pairs (640x480), `fusekit fuse -m METHOD ir/ vi/ -o OUT -j N`, "
        f"whole command timed (start-up included), median of {args.rounds} interleaved rounds.",
        "",
        "| method | `-j 1` (s) | `-j 2` (s) | speed-up | same output |",
        "|---|---|---|---|---|",
        *[f"| {m} | {a:.1f} | {b:.1f} | {r:.2f}x | {'yes' if s else 'NO'} |" for m, a, b, r, s in rows],
        "",
        "With `-j 1` torch already uses both cores inside each ReFusion forward pass, so worker",
        "processes (one torch thread each) gain less there than for the single-threaded classic methods.",
        f"<!-- end {MARK} -->",
    ])
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    sys.exit(main())
