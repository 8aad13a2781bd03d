"""Whole-process time of ``fusekit eval``: first run after install (numba compiles) and later runs.

Usage::

    python benchmarks/metrics_startup.py                 # writes its section of BENCHMARKS.md
    python benchmarks/metrics_startup.py --no-write --rounds 2
    python benchmarks/metrics_startup.py --base 857ac06  # the code to compare against

What it measures
----------------
``fusekit eval DATASET --fused DATASET/fused --profile cddfuse`` (every
metric the profile defines) as a fresh process, on one MSRS 640x480 triplet
and on 41 RoadScene test triplets (fused = the rounded mean of the two
sources, written to a temporary dataset), for

* ``--base``: the repository at that commit (a temporary ``git worktree``,
  imported instead of the working tree), and the working tree;
* ``cold``: an empty ``NUMBA_CACHE_DIR``, as on the first run after
  ``pip install`` (numba compiles the kernels and fills the cache);
  ``warm``: the same cache again (numba only loads the kernels);
* ``FUSEKIT_NUMBA=0``: numpy/scipy only, no numba at all.

Python may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped for the
runs, and one untimed run per tree writes the ``.pyc`` files first), as an
installed package has its ``.pyc`` files.

The settings alternate within each of ``--rounds`` rounds and the medians
are reported, with the per-round ratio base / working tree, because the
machine's speed drifts with the other jobs on it.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: also when loaded by file path
from sections import write_section  # noqa: E402

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


def run_eval(code: Path | None, dataset: Path, cache: Path, numba: bool) -> float:
    """Seconds of one ``fusekit eval`` process; ``code`` is a checkout to run instead of this tree."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), FUSEKIT_NUMBA="1" if numba else "0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # .pyc files, as an installed package has them
    command = _launcher(code, "from fusekit.cli import main; sys.exit(main())") + [
        "eval", str(dataset), "--fused", str(dataset / "fused"), "--profile", "cddfuse"]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="857ac06", help="commit to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    times: dict[tuple[str, str, str], list[float]] = {}
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
                run_eval(code, sets["1 triplet (MSRS 640x480)"], work / "unused", False)
            for r in range(args.rounds):
                for label, dataset in sets.items():
                    order = ("base", "now") if r % 2 == 0 else ("now", "base")
                    for which in order:
                        cache = work / f"cache-{which}-{r}-{dataset.name}"
                        times.setdefault((label, which, "cold"), []).append(
                            run_eval(codes[which], dataset, cache, True))
                        times.setdefault((label, which, "warm"), []).append(
                            run_eval(codes[which], dataset, cache, True))
                        shutil.rmtree(cache, ignore_errors=True)
                    times.setdefault((label, "now", "numpy"), []).append(
                        run_eval(None, dataset, work / "unused", False))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load1 = os.getloadavg()[0]
    text = render(times, args, (load0, load1), argv)
    print(text)
    if not args.no_write:
        write_section(MARK, text)


#: What the table shows, the same for every run.
NOTES = (
    "What changed between base and now: the first run compiles only the kernels of the metrics "
    "asked for (SSIM, VIF, Qabf, Nabf use kernels; `--metrics en,sd,mi` compiles nothing and does "
    "not import numba), and the kernels compile about 2x faster: the Sobel kernel copied its "
    "input into a zero-padded array with a 2-D slice assignment, which alone took numba ~2.5 s "
    "to compile (a loop now), and the `cddfuse` SSIM compiled its window-sum kernel inlined into "
    "two callers (now compiled once; the variance and the SSIM map are small kernels of their own, "
    "called after it). The values are "
    "unchanged (`tests/test_metrics_golden.py`, `tests/test_metrics_vifb.py`, "
    "`tests/test_metrics_compiled.py`). numba caches the compiled kernels in `NUMBA_CACHE_DIR` if "
    "set, else beside the module if writable, else in the user's cache folder, so an installed "
    "package and CI runners both keep them. A warm run still pays about 0.4 s for importing numba "
    "and loading the kernels (numba's own import pulls in scipy's BLAS bindings); whether the "
    "kernels earn that back depends on how many and how large the images are: compare the `warm` "
    "and `numpy` rows.")


def render(times, args, load, argv) -> str:
    """The Markdown section."""
    med = statistics.median
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    command = "python benchmarks/metrics_startup.py" + (f" {' '.join(argv)}" if argv else "")
    lines = [f"<!-- begin {MARK} -->", "## `fusekit eval`: first run after install and later runs "
             "(`benchmarks/metrics_startup.py`)", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} before and "
             f"{load[1]:.1f} after: the cores are shared with other jobs, so only side-by-side "
             f"ratios count; Python {platform.python_version()}, numpy {np.__version__}).", "",
             "`fusekit eval DATASET --fused DATASET/fused --profile cddfuse` (all 21 metrics the "
             f"profile defines) as a fresh process; `base` is commit `{args.base}` (a git worktree), "
             "`now` the working tree. `cold`: empty `NUMBA_CACHE_DIR`, i.e. the first run after "
             "install, when numba compiles the kernels; `warm`: the next run on that cache; "
             f"`numpy`: `FUSEKIT_NUMBA=0`. Median of {args.rounds} alternating rounds; `.pyc` files "
             "written beforehand for both trees, as an installed package has them.", "",
             "| triplets | setting | base s | now s | base / now (per round, median) | runs base / now |",
             "|---|---|---:|---:|---:|---|"]
    labels = sorted({k[0] for k in times}, key=lambda s: int(s.split()[0]))
    for label in labels:
        for setting in ("cold", "warm"):
            b, n = times[(label, "base", setting)], times[(label, "now", setting)]
            ratio = med(x / y for x, y in zip(b, n))
            lines.append(f"| {label} | {setting} | {med(b):.2f} | {med(n):.2f} | **{ratio:.2f}x** | "
                         f"{fmt(b)} / {fmt(n)} |")
        p = times[(label, "now", "numpy")]
        lines.append(f"| {label} | numpy (no numba) | | {med(p):.2f} | | {fmt(p)} |")
    lines += ["", NOTES, f"<!-- end {MARK} -->"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
