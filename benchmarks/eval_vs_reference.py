"""Whole-process time of ``fusekit eval`` against the CDDFuse-style reference, first run included.

Issue 24's row "``fusekit eval --profile cddfuse``, 41 triplets, first run after
install: >= 20x the CDDFuse script". Every timed run is a fresh process on the
same 41 RoadScene triplets (infrared, visible, and their rounded mean as the
fused image; :func:`metrics_startup.make_dataset`):

* ``reference``: ``Reference`` of ``benchmarks/metrics.py`` (a plain
  re-implementation of the CDDFuse evaluation script's approach, 11 metrics),
  images read as 8-bit grey levels as the script reads them, one triplet after
  the other;
* ``fusekit eval --profile cddfuse --metrics <the same 11>``, on an empty
  ``NUMBA_CACHE_DIR`` (the first run after install), with ``--jobs 1`` and
  with the default (``-j auto``: one worker per usable core);
* ``fusekit eval --profile cddfuse`` with every metric the profile computes by
  default, default ``-j``.

The settings alternate within each of ``--rounds`` rounds; medians are
reported, with the ratio of medians against the reference. Writes section
``eval-vs-reference`` of ``BENCHMARKS.md``.
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

from fusekit.experiments import cpu_description, write_section
from fusekit.workers import usable_cores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics import NAMES  # noqa: E402  (the reference's 11 metrics)
from metrics_startup import DATA, REPO, make_dataset  # noqa: E402

MARK = "eval-vs-reference"
REFERENCE_RUN = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
sys.path.insert(0, {bench!r})
from metrics import Reference
root = Path({root!r})
rows = []
for fused in sorted((root / "fused").iterdir()):
    grey = [np.asarray(Image.open(next((root / sub).glob(fused.stem + ".*"))).convert("L"), np.float64)
            for sub in ("ir", "vi")]
    f = np.asarray(Image.open(fused).convert("L"), np.float64)
    rows.append(Reference.compute(f, grey[0], grey[1]))
print(len(rows))
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process (its output discarded, its errors shown; a failure stops the benchmark)."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--triplets", type=int, default=41)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_dataset(Path(tmp) / "set", DATA / "ivif" / "roadscene" / "test", args.triplets)
        reference = [sys.executable, "-c", REFERENCE_RUN.format(bench=str(REPO / "benchmarks"), root=str(dataset))]
        eval_cmd = [sys.executable, "-m", "fusekit", "eval", str(dataset), "--fused", str(dataset / "fused"),
                    "--profile", "cddfuse"]
        settings = {
            "reference (11 metrics, one process)": reference,
            "fusekit eval, same 11 metrics, --jobs 1": eval_cmd + ["--metrics", ",".join(NAMES), "--jobs", "1"],
            f"fusekit eval, same 11 metrics, default -j (auto: {usable_cores()} here)":
                eval_cmd + ["--metrics", ",".join(NAMES)],
            f"fusekit eval, all the profile's metrics, default -j (auto: {usable_cores()} here)": eval_cmd,
        }
        times: dict[str, list[float]] = {label: [] for label in settings}
        for round_ in range(args.rounds):
            for i, (label, command) in enumerate(settings.items()):
                cache = Path(tmp) / f"numba-{round_}-{i}"
                env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))  # empty: the first run after install
                times[label].append(timed(command, env))
                print(f"round {round_ + 1}: {label}: {times[label][-1]:.2f} s", flush=True)
    load_after = os.getloadavg()[0]

    ref = statistics.median(times["reference (11 metrics, one process)"])
    rows = []
    for label, values in times.items():
        median = statistics.median(values)
        ratio = "1" if label.startswith("reference") else f"**{ref / median:.1f}x**"
        rows.append(f"| {label} | {median:.2f} | {ratio} | {', '.join(f'{v:.2f}' for v in values)} |")
    text = "\n".join([
        f"<!-- begin {MARK} -->",
        "## `fusekit eval` against the CDDFuse-style reference, whole processes, first run included "
        "(`benchmarks/eval_vs_reference.py`)", "",
        f"Command: `python benchmarks/eval_vs_reference.py --rounds {args.rounds}` "
        f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {platform.machine()}, {os.cpu_count()} cores "
        f"({cpu_description()}), Python {platform.python_version()}; load average {load_before:.1f} before and "
        f"{load_after:.1f} after). {args.triplets} RoadScene test triplets (infrared, visible, their rounded mean "
        "as the fused image). Each run is a fresh process; every `fusekit eval` run starts on an empty "
        "`NUMBA_CACHE_DIR`, as the first run after install. The reference is `Reference` in "
        "`benchmarks/metrics.py`, a plain re-implementation of the CDDFuse evaluation script's approach "
        f"({', '.join(NAMES)}; same values as fusekit's `cddfuse` profile, see section `metrics`). Median of "
        f"{args.rounds} rounds in which the settings alternate; ratio = reference median / median.", "",
        "| run | wall s (median) | speed-up vs reference | every run (s) |", "|---|---:|---:|---|",
        *rows, "", f"<!-- end {MARK} -->"])
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
