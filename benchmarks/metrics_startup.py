"""Whole-process time of ``fusekit eval``: first run after install and later runs.

Usage::

    python benchmarks/metrics_startup.py                 # writes its section of BENCHMARKS.md
    python benchmarks/metrics_startup.py --no-write --rounds 2
    python benchmarks/metrics_startup.py --base 6d5efbf  # the code to compare against

What it measures
----------------
``fusekit eval DATASET --fused DATASET/fused --profile cddfuse`` (every
metric the profile defines) as a fresh process, on one MSRS 640x480 triplet
and on 41 RoadScene test triplets (fused = the rounded mean of the two
sources, written to a temporary dataset), for

* ``--base``: the repository at that commit (a temporary ``git worktree``,
  imported instead of the working tree), and the working tree;
* ``first run``: default settings (``FUSEKIT_NUMBA`` unset) on an empty
  ``NUMBA_CACHE_DIR``, as on the first run after ``pip install``
  (at ``--base`` numba compiles the kernels and fills the cache);
  ``later run``: the same again, on that cache;
* ``FUSEKIT_NUMBA=0``: numpy/scipy only, both trees;
* ``FUSEKIT_NUMBA=1``, first and later run: the working tree with numba's
  kernels asked for (they are off by default there).

Python may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped for the
runs, and one untimed run per tree writes the ``.pyc`` files first), as an
installed package has its ``.pyc`` files.

The settings alternate within each of ``--rounds`` rounds and the medians
are reported, with the per-round ratio base / working tree, because the
machine's speed drifts with the other jobs on it. CPU seconds (user +
system of the process) are reported too: on shared cores they move less
than wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fusekit.experiments import write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MARK = "metrics-first-run"


def make_dataset(root: Path, source: Path, count: int) -> Path:
    """Link the first ``count`` pairs of ``source`` (``ir``/``vi``) into ``root`` with a ``fused`` folder."""
    from PIL import Image

    for sub in ("ir", "vi", "fused"):
        (root / sub).mkdir(parents=True)
    for path in sorted((source / "ir").iterdir())[:count]:
        grey = []
        for sub in ("ir", "vi"):
            src = next((source / sub).glob(path.stem + ".*"))
            (root / sub / src.name).symlink_to(src)
            grey.append(np.asarray(Image.open(src).convert("L"), np.float64))
        Image.fromarray(np.uint8(np.round(sum(grey) / 2))).save(root / "fused" / (path.stem + ".png"))
    return root


def _launcher(code: Path | None, then: str) -> list[str]:
    """``python -c`` running ``then`` with fusekit imported from ``code`` (a checkout) if given.

    An editable install's import hook would find the working tree first, so
    it is taken off ``sys.meta_path`` and the checkout put first on the path.
    """
    setup = "import sys; "
    if code is not None:
        setup += ("sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
                  f"getattr(f, '__module__', '')]; sys.path[:0] = [{str(code)!r}, {str(code / 'plugins')!r}]; ")
    return [sys.executable, "-c", setup + then]


def run_eval(code: Path | None, dataset: Path, cache: Path, numba: str | None) -> tuple[float, float]:
    """Wall and CPU seconds of one ``fusekit eval`` process.

    ``code`` is a checkout to run instead of this tree; ``numba`` the value of
    ``FUSEKIT_NUMBA`` (``None``: unset, the default settings).
    """
    import resource

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env.pop("FUSEKIT_NUMBA", None)
    if numba is not None:
        env["FUSEKIT_NUMBA"] = numba
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # .pyc files, as an installed package has them
    command = _launcher(code, "from fusekit.cli import main; sys.exit(main())") + [
        "eval", str(dataset), "--fused", str(dataset / "fused"), "--profile", "cddfuse"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


#: (label, tree, FUSEKIT_NUMBA, cache state) of every timed run of a round, in order.
SETTINGS = (
    ("first run", "base", None, "cold"), ("first run", "now", None, "cold"),
    ("later run", "base", None, "warm"), ("later run", "now", None, "warm"),
    ("FUSEKIT_NUMBA=0", "base", "0", "none"), ("FUSEKIT_NUMBA=0", "now", "0", "none"),
    ("FUSEKIT_NUMBA=1, first run", "now", "1", "cold"), ("FUSEKIT_NUMBA=1, later run", "now", "1", "warm"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="6d5efbf", help="commit to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    times: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fusekit-eval-start-") as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            where = subprocess.run(_launcher(base, "import fusekit.metrics._numba_kernels as k; print(k.__file__)"),
                                   check=True, capture_output=True, text=True).stdout.strip()
            if not where.startswith(str(base)):
                raise SystemExit(f"the base checkout is not the one imported: {where}")
            sets = {"1 triplet (MSRS 640x480)": make_dataset(work / "one", DATA / "ivif/msrs/test", 1),
                    "41 triplets (RoadScene)": make_dataset(work / "many", DATA / "ivif/roadscene/test", 41)}
            codes = {"base": base, "now": None}
            for code in codes.values():            # writes both trees' .pyc files; not timed
                run_eval(code, sets["1 triplet (MSRS 640x480)"], work / "unused", "0")
            for r in range(args.rounds):
                for label, dataset in sets.items():
                    # cold runs come first (they fill the cache the warm runs use); the trees
                    # swap places every round
                    order = SETTINGS if r % 2 == 0 else _swapped(SETTINGS)
                    for setting, which, numba, state in order:
                        cache = work / f"cache-{which}-{numba}-{r}-{dataset.name}"
                        times.setdefault((label, which, setting), []).append(
                            run_eval(codes[which], dataset, cache, numba))
                    for cache in work.glob(f"cache-*-{r}-{dataset.name}"):
                        shutil.rmtree(cache, ignore_errors=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load1 = os.getloadavg()[0]
    text = render(times, args, (load0, load1), argv)
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


def _swapped(settings: tuple) -> tuple:
    """``settings`` with each base/now pair of one label in the other order."""
    out = list(settings)
    for i in range(len(out) - 1):
        if out[i][0] == out[i + 1][0] and {out[i][1], out[i + 1][1]} == {"base", "now"}:
            out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


#: What changed between base and now, the same for every run (the numbers are in the table).
NOTES = (
    "What changed between base and now. (1) numba's kernels are off unless `FUSEKIT_NUMBA=1`: at "
    "base a first run compiled them (about 4 s of CPU here) and every later run paid about 0.5 s of "
    "CPU to import numba and load them, while they save only 15-30 ms per 640x480 triplet over the "
    "numpy path (and a choice by cache state or image count would make a metric's last digits "
    "depend on it). (2) `scipy.ndimage` (about 0.2 s of CPU to import, with `scipy.special`) is "
    "no longer imported by the `standard` and `cddfuse` sets: `cddfuse` SSIM's `uniform_filter` "
    "and Q_CB's `correlate1d` are numpy re-implementations that give scipy's values bit for bit "
    "(`fusekit/metrics/exact_filters.py`: exact integer window sums; scipy's symmetric correlation "
    "loop in its order), on cache-sized strips of rows, the box filter about 2x faster than "
    "scipy's. (3) Start-up: `importlib.metadata` only when an installed distribution has a "
    "`[fusekit]` entry-point section, the `train`/`explain`/`eval` commands imported on first use, "
    "`fusekit.metrics` names resolved lazily, no tqdm for a hidden progress bar. (4) Reading: "
    "`fusekit.io` decodes 8-bit PNG, JPEG and BMP files with Pillow directly and converts them "
    "with numpy (imageio, which imports `importlib.metadata`, and scikit-image only for other "
    "layouts; the same arrays on all 2934 files of the shared data), and "
    "`fusekit.header.read_header` no longer decodes a PNG without an `eXIf` chunk (Pillow's "
    "`getexif()` loads a PNG's pixels to look for one). Every metric value is unchanged, bit for "
    "bit, on both paths (all metrics x all profiles on 4 triplets; `tests/test_metrics_golden.py`, "
    "`tests/test_metrics_vifb.py`, `tests/test_metrics_compiled.py`, "
    "`tests/test_metrics_exact_filters.py`), except Q_Y on images with flat 7x7 windows: their "
    "variance and covariance are now exactly 0 instead of rounding noise, which made Q_Y differ "
    "between the paths and leave [0, 1] (`tests/test_metrics_qy_flat.py`).")


def _ratio(base: list, now: list, i: int) -> float:
    """Median over rounds of base / now of field ``i`` (0 wall, 1 CPU)."""
    return statistics.median(b[i] / n[i] for b, n in zip(base, now))


def render(times, args, load, argv) -> str:
    """The Markdown section."""
    med = statistics.median
    walls = lambda xs: ", ".join(f"{x[0]:.2f}" for x in xs)  # noqa: E731
    command = "python benchmarks/metrics_startup.py" + (f" {' '.join(argv)}" if argv else "")
    lines = [f"<!-- begin {MARK} -->", "## `fusekit eval`: first run after install and later runs "
             "(`benchmarks/metrics_startup.py`)", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} before and "
             f"{load[1]:.1f} after: the 2 cores are shared with other jobs (two training runs at "
             f"raised priority among them), so a process gets well under a core and only the "
             f"side-by-side ratios count; Python {platform.python_version()}, numpy {np.__version__}).",
             "",
             "`fusekit eval DATASET --fused DATASET/fused --profile cddfuse` (all 21 metrics the "
             f"profile defines) as a fresh process; `base` is commit `{args.base}` (a git worktree), "
             "`now` the working tree. `first run`: default settings on an empty `NUMBA_CACHE_DIR`, "
             "i.e. the first run after install (base compiles numba's kernels); `later run`: the "
             "same again on that cache; `FUSEKIT_NUMBA=0`: numpy/scipy only; `FUSEKIT_NUMBA=1`: "
             "`now` with numba's kernels asked for. Median of "
             f"{args.rounds} rounds in which the settings alternate (base and now swap places every "
             "round); `.pyc` files written beforehand for both trees, as an installed package has "
             "them. CPU = user + system seconds of the process.", "",
             "| triplets | setting | base wall s | now wall s | base / now wall (per round, median) | "
             "base CPU s | now CPU s | base / now CPU | wall runs base / now |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    labels = sorted({k[0] for k in times}, key=lambda s: int(s.split()[0]))
    for label in labels:
        for setting in dict.fromkeys(s[0] for s in SETTINGS):
            b, n = times.get((label, "base", setting)), times.get((label, "now", setting))
            if b and n:
                lines.append(
                    f"| {label} | {setting} | {med(x[0] for x in b):.2f} | {med(x[0] for x in n):.2f} | "
                    f"**{_ratio(b, n, 0):.2f}x** | {med(x[1] for x in b):.2f} | {med(x[1] for x in n):.2f} | "
                    f"{_ratio(b, n, 1):.2f}x | {walls(b)} / {walls(n)} |")
            elif n:
                lines.append(f"| {label} | {setting} | | {med(x[0] for x in n):.2f} | | | "
                             f"{med(x[1] for x in n):.2f} | | {walls(n)} |")
    lines += ["", NOTES, f"<!-- end {MARK} -->"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
