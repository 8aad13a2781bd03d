"""Scaling curves: time and peak memory of whole processes against image size.

Usage::

    python benchmarks/scaling.py                       # writes docs/scaling.png and its BENCHMARKS.md section
    python benchmarks/scaling.py --no-write --sizes 0.1,0.3 --runs 3

What it measures
----------------
For each size (megapixels) a real pair is resized (area interpolation
down, cubic up) to that many pixels at its own aspect ratio and written as
PNG: the MEFB ``ArchSequence`` under/over pair for ``exposure`` (colour),
the MSRS ``00537D`` infrared/visible pair for the luminance methods. Then,
as fresh processes, alternately, ``--runs`` times each:

* ``fusekit fuse -m METHOD A B -o out.png`` for ``exposure``,
  ``guided-filter``, ``laplacian-pyramid`` and ``dwt``;
* OpenCV's ``createMergeMertens(1, 1, 1)`` in a Python process doing the
  same (``cv2.imread`` both, ``process``, 8-bit ``cv2.imwrite``): the
  reference for ``exposure``;
* ``fusekit eval DIR --fused DIR/fused --profile cddfuse`` on one triplet
  (the infrared/visible pair and the ``average`` fusion of it).

each with 1 and with 2 threads (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``; ``-p workers=N`` for
``exposure``; ``cv2.setNumThreads(N)`` for OpenCV). Wall time and the
process's peak resident memory (``ru_maxrss`` of that child, from
``os.wait4``) are recorded; the medians are plotted log-log. A series stops
growing once a median exceeds ``--max-seconds``. ReFusion is left out: its
engine is timed by ``benchmarks/refusion.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
MEF = (DATA / "meif/mefb/test/under/ArchSequence.jpg", DATA / "meif/mefb/test/over/ArchSequence.jpg")
IVF = (DATA / "ivif/msrs/test/ir/00537D.png", DATA / "ivif/msrs/test/vi/00537D.png")
MARK = "scaling"
METHODS = ("exposure", "guided-filter", "laplacian-pyramid", "dwt")

OPENCV = """
import sys, cv2, numpy as np
cv2.setNumThreads(int(sys.argv[4]))
images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in sys.argv[1:3]]
fused = cv2.createMergeMertens(1.0, 1.0, 1.0).process(images)
cv2.imwrite(sys.argv[3], np.clip(np.rint(fused * 255.0), 0, 255).astype(np.uint8))
"""


def resized(path: Path, megapixels: float, out: Path, grey: bool = False) -> None:
    """Write ``path`` resized to about ``megapixels`` MP (same aspect ratio) as PNG ``out``."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    scale = (megapixels * 1e6 / (h * w)) ** 0.5
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    cv2.imwrite(str(out), cv2.resize(image, size, interpolation=interp))


def run(command: list[str], threads: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{command} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0


def commands(work: Path, size: float, threads: int) -> dict[str, list[str]]:
    """The processes of one size and thread count, by series name."""
    fusekit = str(Path(sys.executable).with_name("fusekit"))
    d = work / f"{size}"
    out = d / "out"
    cmds = {"OpenCV Mertens": [sys.executable, "-c", OPENCV, str(d / "under.png"), str(d / "over.png"),
                               str(out / "opencv.png"), str(threads)]}
    for method in METHODS:
        a, b = ("under.png", "over.png") if method == "exposure" else ("ir/x.png", "vi/x.png")
        extra = ["-p", f"workers={threads}"] if method == "exposure" else []
        cmds[method] = [fusekit, "fuse", "-m", method, str(d / a), str(d / b), "-o",
                        str(out / f"{method}.png"), "--no-progress"] + extra
    cmds["eval (cddfuse, 1 triplet)"] = [fusekit, "eval", str(d), "--fused", str(d / "fused"),
                                         "--profile", "cddfuse", "-o", str(out / "eval.csv")]
    return cmds


def prepare(work: Path, size: float) -> None:
    d = work / f"{size}"
    for sub in ("ir", "vi", "fused", "out"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    resized(MEF[0], size, d / "under.png")
    resized(MEF[1], size, d / "over.png")
    resized(IVF[0], size, d / "ir" / "x.png", grey=True)
    resized(IVF[1], size, d / "vi" / "x.png")
    subprocess.run([str(Path(sys.executable).with_name("fusekit")), "fuse", "-m", "average", str(d / "ir" / "x.png"),
                    str(d / "vi" / "x.png"), "-o", str(d / "fused" / "x.png"), "--no-progress"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(sizes: list[float], runs: int, max_seconds: float, threads_list: list[int], save=None) -> dict:
    """Medians by series and thread count; ``save(results)`` is called after each size."""
    results: dict = {}
    stopped: set = set()
    with tempfile.TemporaryDirectory(prefix="fusekit-scaling-") as tmp:
        work = Path(tmp)
        for size in sizes:
            prepare(work, size)
            for threads in threads_list:
                cmds = {k: v for k, v in commands(work, size, threads).items() if (k, threads) not in stopped}
                if not cmds:
                    continue
                samples: dict = {k: [] for k in cmds}
                for name, cmd in cmds.items():   # warm-up: file cache, .pyc files
                    run(cmd, threads)
                for r in range(runs):
                    names = list(cmds)
                    for name in names[r % len(names):] + names[:r % len(names)]:
                        samples[name].append(run(cmds[name], threads))
                for name, got in samples.items():
                    wall = statistics.median(s[0] for s in got)
                    rss = statistics.median(s[1] for s in got)
                    results.setdefault(name, {}).setdefault(str(threads), []).append(
                        {"mp": size, "wall": wall, "rss": rss, "walls": [s[0] for s in got]})
                    print(f"{size:>5} MP  {threads} thr  {name:<28} {wall:7.2f} s  {rss:7.0f} MiB", flush=True)
                    if wall > max_seconds:
                        stopped.add((name, threads))
            if save is not None:
                save(results)
    return results


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, by_threads) in enumerate(sorted(results.items())):
        for threads, points in sorted(by_threads.items()):
            mp = [p["mp"] for p in points]
            style = "-" if threads == "1" else "--"
            marker = "o" if threads == "1" else "s"
            kw = dict(color="black" if name.startswith("OpenCV") else colours[i % len(colours)],
                      linestyle=style, marker=marker, markersize=4, label=f"{name}, {threads} thr")
            ax_t.plot(mp, [p["wall"] for p in points], **kw)
            ax_m.plot(mp, [p["rss"] for p in points], **kw)
    for ax, label in ((ax_t, "wall time per process, median (s)"), (ax_m, "peak RSS per process, median (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("image size (megapixels)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _runs_text(results: dict) -> str:
    """``5`` or ``5 (3 at 12 MP)``: timed processes per point."""
    by_size: dict = {}
    for by_threads in results.values():
        for points in by_threads.values():
            for p in points:
                by_size.setdefault(p["mp"], set()).add(len(p["walls"]))
    counts = sorted({n for ns in by_size.values() for n in ns}, reverse=True)
    if len(counts) == 1:
        return str(counts[0])
    others = [f"{min(ns)} at {mp:g} MP" for mp, ns in sorted(by_size.items()) if min(ns) != counts[0]]
    return f"{counts[0]} ({', '.join(others)})"


def render(results: dict, command: str, load: tuple, sizes: list[float], runs: int, max_seconds: float) -> str:
    lines = [f"<!-- begin {MARK} -->", "## Scaling with image size, whole processes (`benchmarks/scaling.py`)", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
             f"{os.cpu_count()} CPUs (AMD EPYC, 2 MiB L2), load average {load[0]:.1f} to {load[1]:.1f}: "
             "two `fusekit train` jobs and other engineers' tests shared the two cores, so absolute times are "
             "inflated, by up to ~2x, and the 1- and 2-thread curves differ less than on an idle machine; "
             "compare series measured side by side (same size, same thread count, alternating), and re-measure "
             f"absolute numbers on an idle machine; Python {platform.python_version()}, numpy {np.__version__}).",
             "", "![scaling](docs/scaling.png)", "",
             f"Each point is the median of {_runs_text(results)} fresh processes after one warm-up (start-up, PNG decoding "
             "and encoding included), alternating the series; sizes "
             f"{', '.join(f'{s:g}' for s in sizes)} MP, a series stopping after a median above {max_seconds:g} s. "
             "Inputs: MEFB `ArchSequence` (exposure, OpenCV) and MSRS `00537D` (the others) resized to each "
             "size. Peak memory is the process's maximum resident set (`ru_maxrss`). `eval` scores one "
             "triplet (pair plus its `average` fusion) with all 21 `cddfuse` metrics; its kernels come from "
             "the numba cache warmed by the warm-up run. ReFusion is not in this figure: its engine was being "
             "changed by its owner while this ran (see `benchmarks/refusion.py` and the refusion sections).", "",
             "| series | threads | " + " | ".join(f"{s:g} MP s / MiB" for s in sizes) + " |",
             "|---|---|" + "---:|" * len(sizes)]
    for name, by_threads in sorted(results.items()):
        for threads, points in sorted(by_threads.items()):
            cells = {p["mp"]: f"{p['wall']:.2f} / {p['rss']:.0f}" for p in points}
            lines.append(f"| {name} | {threads} | " + " | ".join(cells.get(s, "skipped") for s in sizes) + " |")
    ex, cv = results.get("exposure", {}), results.get("OpenCV Mertens", {})
    ratios = []
    for threads in sorted(ex):
        pairs = {p["mp"]: p["wall"] for p in cv.get(threads, [])}
        got = [f"{p['mp']:g} MP {pairs[p['mp']] / p['wall']:.2f}x" for p in ex[threads] if p["mp"] in pairs]
        if got:
            ratios.append(f"{threads} thread(s): " + ", ".join(got))
    if ratios:
        lines += ["", "`exposure` against OpenCV (OpenCV wall / fusekit wall; above 1: fusekit faster): "
                  + "; ".join(ratios) + "."]
    lines.append(f"<!-- end {MARK} -->")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,0.3,1,3,6,12", help="megapixels, comma-separated")
    parser.add_argument("--runs", type=int, default=5, help="timed processes per point")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a series above this median")
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="plot and render saved results (merged, e.g. runs of different sizes) instead of measuring")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]
    load0 = os.getloadavg()[0]
    runs = args.runs
    if args.from_json:
        results, loads, commands_run = {}, [], []
        for path in args.from_json:
            saved = json.loads(path.read_text())
            loads += saved["load"]
            commands_run.append(saved["command"])
            for name, by_threads in saved["results"].items():
                for threads, points in by_threads.items():
                    merged = results.setdefault(name, {}).setdefault(threads, [])
                    merged += points
                    merged.sort(key=lambda p: p["mp"])
        load, command = (min(loads), max(loads)), "`, then `".join(commands_run)
        sizes = sorted({p["mp"] for by in results.values() for pts in by.values() for p in pts})
    else:
        command = "python benchmarks/scaling.py" + (f" {' '.join(argv)}" if argv else "")

        def save(partial: dict) -> None:
            if args.json:
                args.json.write_text(json.dumps({"results": partial, "load": (load0, os.getloadavg()[0]),
                                                 "command": command}))

        results = measure(sizes, args.runs, args.max_seconds, [int(t) for t in args.threads.split(",")], save)
        load = (load0, os.getloadavg()[0])
        save(results)
    title = (f"fusekit whole processes vs image size ({os.cpu_count()} shared CPUs, load {load[0]:.1f}-{load[1]:.1f}; "
             "solid: 1 thread, dashed: 2 threads; log-log)")
    text = render(results, command, load, sizes, runs, args.max_seconds)
    print(text)
    if not args.no_write:
        plot(results, REPO / "docs" / "scaling.png", title)
        write_section(MARK, text)


if __name__ == "__main__":
    main(sys.argv[1:])
