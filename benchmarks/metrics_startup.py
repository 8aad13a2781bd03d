"""Whole-process time of ``fusekit eval``: first run after install and later runs.

Usage::

    python benchmarks/metrics_startup.py                 # writes its section of BENCHMARKS.md
    python benchmarks/metrics_startup.py --no-write --rounds 2
    python benchmarks/metrics_startup.py --base 6d5efbf  # the code to compare against

What it measures
----------------
``fusekit eval DATASET --fused DATASET/fused --profile cddfuse`` (every
metric the profile defines) as a fresh process, on one MSRS 640x480 triplet
(also with ``--profile standard``, the default) and on 41 RoadScene test
triplets (fused = the rounded mean of the two sources, written to a
temporary dataset), for

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


def run_eval(code: Path | None, dataset: Path, cache: Path, numba: str | None,
             profile: str = "cddfuse") -> tuple[float, float, int]:
    """Wall and CPU seconds and minor page faults of one ``fusekit eval`` process.

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
        "eval", str(dataset), "--fused", str(dataset / "fused"), "--profile", profile]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), r1.ru_minflt - r0.ru_minflt


#: (label, tree, FUSEKIT_NUMBA, cache state) of every timed run of a round, in order.
SETTINGS = (
    ("first run", "base", None, "cold"), ("first run", "now", None, "cold"),
    ("later run", "base", None, "warm"), ("later run", "now", None, "warm"),
    ("FUSEKIT_NUMBA=0", "base", "0", "none"), ("FUSEKIT_NUMBA=0", "now", "0", "none"),
    ("FUSEKIT_NUMBA=1, first run", "now", "1", "cold"), ("FUSEKIT_NUMBA=1, later run", "now", "1", "warm"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="65574b9", help="commit to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    times: dict[tuple[str, str, str], list[tuple[float, float, int]]] = {}
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
            one = make_dataset(work / "one", DATA / "ivif/msrs/test", 1)
            sets = {"1 triplet (MSRS 640x480)": (one, "cddfuse"),
                    "1 triplet (MSRS 640x480), standard profile": (one, "standard"),
                    "41 triplets (RoadScene)": (make_dataset(work / "many", DATA / "ivif/roadscene/test", 41),
                                                "cddfuse")}
            codes = {"base": base, "now": None}
            for code in codes.values():            # writes both trees' .pyc files; not timed
                for profile in ("cddfuse", "standard"):
                    run_eval(code, one, work / "unused", "0", profile)
            for r in range(args.rounds):
                for index, (label, (dataset, profile)) in enumerate(sets.items()):
                    # cold runs come first (they fill the cache the warm runs use); the trees
                    # swap places every round
                    order = SETTINGS if r % 2 == 0 else _swapped(SETTINGS)
                    for setting, which, numba, state in order:
                        cache = work / f"cache-{which}-{numba}-{r}-{index}"
                        times.setdefault((label, which, setting), []).append(
                            run_eval(codes[which], dataset, cache, numba, profile))
                    for cache in work.glob(f"cache-*-{r}-{index}"):
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
    "What changed between base and now (numba's kernels were already off by default at base, so "
    "the first and later runs differ only at `FUSEKIT_NUMBA=1`). (1) Memory: a 640x480 "
    "triplet's metrics held 136 MB of cached maps by the end (VIF's and Q_Y's local statistics, "
    "the Sobel maps, ...), read by the metric that made them only, kept so that other fused "
    "images of the same scene reuse the sources' part; the heap grew to about 150 MB and the "
    "kernel faulted in and zeroed every page. Each built-in metric's private cache entries are "
    "now released when it finishes, the maps several metrics read (grey levels, centred images, "
    "Sobel maps, stretched images and their levels) after their last reader, and the sources' "
    "after the scene's last fused image (`MetricContext.releasing`; the faults column). (2) "
    "Q_CB, Q_CV and the normalised information metrics share one stretched copy of each image "
    "(8 stretches a triplet -> 3), and Q_CB's two Gaussian windows share their first pass's pair "
    "sums (scipy's operations in its order). (3) Start-up: `hashlib` (OpenSSL), `csv` and the "
    "profiles' convention tables are imported only by `--method` runs, CSV output and "
    "`--list-metrics` / the HTML report; with one job and no progress bar the scenes run in "
    "the process without importing `fusekit.execution` (`multiprocessing`, "
    "`concurrent.futures`: about 23 ms of CPU). Every metric value is unchanged, bit for bit: all "
    "metrics x all profiles on one triplet each of MSRS, RoadScene, TNO and LLVIP (276 values, "
    "compared as `repr`), `tests/test_metrics*.py` (with and without releasing under every "
    "profile).")


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
             f"{load[1]:.1f} after: the 2 cores are shared with other jobs (training runs at "
             f"raised priority among them), so wall times vary with their load and only the "
             f"side-by-side ratios count; Python {platform.python_version()}, numpy {np.__version__}).",
             "",
             "`fusekit eval DATASET --fused DATASET/fused --profile cddfuse` (all 21 metrics the "
             "profile defines; `standard profile`: `--profile standard`, its 21) as a fresh process; "
             f"`base` is commit `{args.base}` (a git worktree), "
             "`now` the working tree. `first run`: default settings on an empty `NUMBA_CACHE_DIR`, "
             "i.e. the first run after install; `later run`: the "
             "same again on that cache; `FUSEKIT_NUMBA=0`: numpy/scipy only; `FUSEKIT_NUMBA=1`: "
             "`now` with numba's kernels asked for. Median of "
             f"{args.rounds} rounds in which the settings alternate (base and now swap places every "
             "round); `.pyc` files written beforehand for both trees, as an installed package has "
             "them. CPU = user + system seconds of the process; minor page faults: the pages the "
             "kernel mapped in (and zeroed) for it.", "",
             "| triplets | setting | base wall s | now wall s | base / now wall (per round, median) | "
             "base CPU s | now CPU s | base / now CPU | minor page faults base / now | wall runs base / now |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    labels = list(dict.fromkeys(k[0] for k in times))   # in the order measured
    for label in labels:
        for setting in dict.fromkeys(s[0] for s in SETTINGS):
            b, n = times.get((label, "base", setting)), times.get((label, "now", setting))
            if b and n:
                lines.append(
                    f"| {label} | {setting} | {med(x[0] for x in b):.2f} | {med(x[0] for x in n):.2f} | "
                    f"**{_ratio(b, n, 0):.2f}x** | {med(x[1] for x in b):.2f} | {med(x[1] for x in n):.2f} | "
                    f"{_ratio(b, n, 1):.2f}x | {med(x[2] for x in b):.0f} / {med(x[2] for x in n):.0f} | "
                    f"{walls(b)} / {walls(n)} |")
            elif n:
                lines.append(f"| {label} | {setting} | | {med(x[0] for x in n):.2f} | | | "
                             f"{med(x[1] for x in n):.2f} | | {med(x[2] for x in n):.0f} | {walls(n)} |")
    lines += ["", NOTES, f"<!-- end {MARK} -->"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
