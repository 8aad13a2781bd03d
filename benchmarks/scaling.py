"""Scaling curves: time and peak memory of whole processes against image size.

Usage::

    python benchmarks/scaling.py                       # writes docs/scaling.png and its BENCHMARKS.md section
    python benchmarks/scaling.py --no-write --sizes 0.1,0.3 --runs 3
    python benchmarks/scaling.py --series refusion --runs-at 3=3,6=1,12=1 --json new.json \
        --merge old.json                               # measure ReFusion only, plot it with earlier series

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
  (the infrared/visible pair and the ``average`` fusion of it);
* ``fusekit fuse -m refusion IR VI -o out.png`` (the shipped ivif weights,
  mirrored border).

each with 1 and with 2 threads (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``; ``-p workers=N`` for
``exposure``; ``cv2.setNumThreads(N)`` for OpenCV). Wall time and the
process's peak resident memory (``ru_maxrss`` of that child, from
``os.wait4``) are recorded; the medians are plotted log-log. A series stops
growing once a median exceeds ``--max-seconds`` (ReFusion:
``--refusion-max-seconds``).

Physical limit: in the same run, the machine's float32 rate is measured at
each thread count (best of 5: a 2048 x 2048 ``torch.mm`` and a 64 -> 64
channel 3x3 channels-last convolution on 256 x 256; the faster of the two),
and ReFusion's FLOPs at each size (``network_flops`` of
``benchmarks/refusion.py``, 120 kFLOP a pixel) divided by it are drawn as a
dotted line: no implementation of the network can run faster on this
machine (start-up, I/O and the mirrored border not included).
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

from fusekit.experiments import cpu_description, write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MEF = (DATA / "meif/mefb/test/under/ArchSequence.jpg", DATA / "meif/mefb/test/over/ArchSequence.jpg")
IVF = (DATA / "ivif/msrs/test/ir/00537D.png", DATA / "ivif/msrs/test/vi/00537D.png")
MARK = "scaling"
METHODS = ("exposure", "guided-filter", "laplacian-pyramid", "dwt")
REFUSION = "refusion (ivif, shipped weights)"

RATE = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
def best(fn, flops, n=5):
    fn()
    t = 1e9
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return flops / t
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
gemm = best(lambda: a @ b, 2 * 2048 ** 3)
x = torch.randn(1, 64, 256, 256).contiguous(memory_format=torch.channels_last)
w = torch.randn(64, 64, 3, 3)
with torch.inference_mode():
    conv = best(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 64 * 64 * 9 * 256 * 256)
print(f"RATE gemm={gemm} conv={conv}")
"""

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
    cmds[REFUSION] = [fusekit, "fuse", "-m", "refusion", str(d / "ir" / "x.png"), str(d / "vi" / "x.png"), "-o",
                      str(out / "refusion.png"), "--no-progress"]
    return cmds


def rates(threads_list: list[int]) -> dict:
    """The machine's float32 GFLOP/s by thread count: ``{"1": {"gemm": ..., "conv": ...}, ...}`` (see :data:`RATE`)."""
    import re

    out = {}
    for threads in threads_list:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run([sys.executable, "-c", RATE, str(threads)], capture_output=True, text=True, env=env,
                              check=True)
        m = re.search(r"RATE gemm=(\S+) conv=(\S+)", proc.stdout)
        out[str(threads)] = {"gemm": float(m[1]) / 1e9, "conv": float(m[2]) / 1e9}
        print(f"rate {threads} thr: sgemm {out[str(threads)]['gemm']:.0f} GFLOP/s, "
              f"3x3 conv {out[str(threads)]['conv']:.0f} GFLOP/s", flush=True)
    return out


_FLOPS_PER_MP: list = []


def refusion_flops(megapixels: float) -> float:
    """ReFusion's FLOPs on a pair of ``megapixels`` MP (``network_flops`` of ``benchmarks/refusion.py``)."""
    if not _FLOPS_PER_MP:
        import importlib.util

        spec = importlib.util.spec_from_file_location("refusion_benchmark", Path(__file__).with_name("refusion.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _FLOPS_PER_MP.append(module.network_flops(1000, 1000))
    return _FLOPS_PER_MP[0] * megapixels


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


def measure(sizes: list[float], runs: int, max_seconds: float, threads_list: list[int], save=None,
            series: list[str] | None = None, runs_at: dict | None = None,
            refusion_max_seconds: float | None = None) -> dict:
    """Medians by series and thread count; ``save(results)`` is called after each size.

    ``series``: only these (names as in :func:`commands`, or ``refusion``);
    ``runs_at``: timed runs at particular sizes (``{12.0: 1}``: one run and
    no warm-up at 12 MP; the warm-up is skipped wherever fewer than 3 runs).
    """
    results: dict = {}
    stopped: set = set()
    runs_at = runs_at or {}
    with tempfile.TemporaryDirectory(prefix="fusekit-scaling-") as tmp:
        work = Path(tmp)
        for size in sizes:
            prepare(work, size)
            n = runs_at.get(size, runs)
            for threads in threads_list:
                cmds = {k: v for k, v in commands(work, size, threads).items() if (k, threads) not in stopped
                        and (series is None or k in series or (k == REFUSION and "refusion" in series))}
                if not cmds:
                    continue
                samples: dict = {k: [] for k in cmds}
                if n >= 3:
                    for name, cmd in cmds.items():   # warm-up: file cache, .pyc files
                        run(cmd, threads)
                for r in range(n):
                    names = list(cmds)
                    for name in names[r % len(names):] + names[:r % len(names)]:
                        samples[name].append(run(cmds[name], threads))
                for name, got in samples.items():
                    wall = statistics.median(s[0] for s in got)
                    rss = statistics.median(s[1] for s in got)
                    results.setdefault(name, {}).setdefault(str(threads), []).append(
                        {"mp": size, "wall": wall, "rss": rss, "walls": [s[0] for s in got]})
                    print(f"{size:>5} MP  {threads} thr  {name:<28} {wall:7.2f} s  {rss:7.0f} MiB", flush=True)
                    limit = refusion_max_seconds if name == REFUSION and refusion_max_seconds else max_seconds
                    if wall > limit:
                        stopped.add((name, threads))
            if save is not None:
                save(results)
    return results


def _limit_rate(rates: dict, threads: str) -> float:
    """The rate (GFLOP/s) of the limit line at ``threads``: the best of sgemm and the 3x3 convolution
    measured at that many threads or fewer (under load, 2 threads can measure slower than 1; the machine
    can still do what 1 thread did)."""
    return max(max(r.values()) for t, r in rates.items() if int(t) <= int(threads))


def plot(results: dict, path: Path, title: str, limit: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 6.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, by_threads) in enumerate(sorted(results.items())):
        for threads, points in sorted(by_threads.items()):
            mp = [p["mp"] for p in points]
            style = "-" if threads == "1" else "--"
            marker = "o" if threads == "1" else "s"
            kw = dict(color="black" if name.startswith("OpenCV") else colours[i % len(colours)],
                      linestyle=style, marker=marker, markersize=4, label=f"{name}, {threads} thr",
                      linewidth=2.2 if name == REFUSION else 1.2)
            ax_t.plot(mp, [p["wall"] for p in points], **kw)
            ax_m.plot(mp, [p["rss"] for p in points], **kw)
    for threads in sorted((limit or {}).get("rates", {})):
        best = _limit_rate(limit["rates"], threads)
        mps = limit["sizes"]
        ax_t.plot(mps, [refusion_flops(mp) / (best * 1e9) for mp in mps], color="grey",
                  linestyle=":" if threads == "1" else "-.", linewidth=1.2,
                  label=f"ReFusion FLOPs / {best:.0f} GFLOP/s (best measured rate), {threads} thr")
    for ax, label in ((ax_t, "wall time per process, median (s)"), (ax_m, "peak RSS per process, median (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("image size (megapixels)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.13, 1, 1))
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


def render(results: dict, command: str, load: tuple, sizes: list[float], max_seconds: float,
           limit: dict | None = None, notes: list[str] | None = None) -> str:
    lines = [f"<!-- begin {MARK} -->", "## Scaling with image size, whole processes (`benchmarks/scaling.py`)", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, "
             f"{os.cpu_count()} CPUs ({cpu_description()}), load average {load[0]:.1f} to {load[1]:.1f} "
             "(what else ran, where it matters, is in the notes below); absolute times vary with the load and "
             "with the host, so compare series measured side by side (same size, same thread count, "
             f"alternating); Python {platform.python_version()}, "
             f"numpy {np.__version__}).",
             "", "![scaling](docs/scaling.png)", "",
             f"Each point is the median of {_runs_text(results)} fresh processes (after one warm-up where 3 or more "
             "runs; start-up, PNG decoding and encoding included), alternating the series; sizes "
             f"{', '.join(f'{s:g}' for s in sizes)} MP, a series stopping after a median above {max_seconds:g} s "
             "(ReFusion: larger). Inputs: MEFB `ArchSequence` (exposure, OpenCV) and MSRS `00537D` (the others) "
             "resized to each size. Peak memory is the process's maximum resident set (`ru_maxrss`). `eval` "
             "scores one triplet (pair plus its `average` fusion) with all 21 `cddfuse` metrics; its kernels come "
             "from the numba cache warmed by the warm-up run. `refusion`: `fusekit fuse -m refusion` with the "
             "shipped ivif weights (mirrored border; above ~4 MP the features stream through a temporary file)."]
    for note in notes or []:
        lines += ["", note]
    lines += ["", "| series | threads | " + " | ".join(f"{s:g} MP s / MiB" for s in sizes) + " |",
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
    if limit and limit.get("rates"):
        rf = results.get(REFUSION, {})
        parts = []
        for threads, rate in sorted(limit["rates"].items()):
            best = _limit_rate(limit["rates"], threads)
            pts = [f"{p['mp']:g} MP {refusion_flops(p['mp']) / (best * 1e9):.2f} s ({p['wall']:.1f} s measured, "
                   f"{refusion_flops(p['mp']) / (best * 1e9) / p['wall']:.0%})" for p in rf.get(threads, [])]
            parts.append(f"{threads} thread(s): measured sgemm {rate['gemm']:.0f}, 3x3 conv {rate['conv']:.0f} "
                         f"GFLOP/s, line at {best:.0f}" + (": " + ", ".join(pts) if pts else ""))
        lines += ["", "Physical limit (dotted / dash-dotted grey lines): ReFusion's 120 kFLOP a pixel (36.9 GFLOP "
                  "at 640 x 480; `network_flops` in `benchmarks/refusion.py`) over the best rate measured in the same "
                  "run (best of 5, under the same load) by sgemm (2048^3) or a 64-channel 3x3 convolution (counted "
                  "at its nominal FLOPs; oneDNN may take a faster algorithm), at that thread count or fewer. "
                  "It leaves out start-up (about 2 s of the small sizes' process time), image I/O, the 13-pixel "
                  "mirrored border and the engine's halos, and the 16- to 128-channel products and depthwise "
                  "convolutions of this network cannot run at a large GEMM's rate; so it bounds from below, "
                  "not a target. Limit / measured process time: " + "; ".join(parts) + "."]
    lines.append(f"<!-- end {MARK} -->")
    return "\n".join(lines) + "\n"


def _parse_runs_at(text: str) -> dict:
    """``"3=3,6=1,12=1"`` -> ``{3.0: 3, 6.0: 1, 12.0: 1}``."""
    out = {}
    for item in filter(None, (text or "").split(",")):
        size, n = item.split("=")
        out[float(size)] = int(n)
    return out


def _merge(paths: list[Path]) -> tuple[dict, list, list, dict]:
    """Results, loads and commands of saved JSON files, merged (a later file's series/threads/size wins)."""
    results, loads, commands_run, limit = {}, [], [], {}
    for path in paths:
        saved = json.loads(path.read_text())
        loads += saved["load"]
        commands_run.append(saved["command"])
        if saved.get("limit"):
            limit = saved["limit"]
        for name, by_threads in saved["results"].items():
            for threads, points in by_threads.items():
                merged = results.setdefault(name, {}).setdefault(threads, [])
                merged[:] = [p for p in merged if p["mp"] not in {q["mp"] for q in points}] + points
                merged.sort(key=lambda p: p["mp"])
    return results, loads, commands_run, limit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,0.3,1,3,6,12", help="megapixels, comma-separated")
    parser.add_argument("--runs", type=int, default=5, help="timed processes per point")
    parser.add_argument("--runs-at", default="", help="timed processes at particular sizes, e.g. 6=1,12=1")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a series above this median")
    parser.add_argument("--refusion-max-seconds", type=float, default=600.0, help="the same, for ReFusion")
    parser.add_argument("--series", default="", help="measure only these series (comma-separated; 'refusion')")
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="saved results to plot with the new ones (other series, earlier runs)")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="plot and render saved results (merged, e.g. runs of different sizes) instead of measuring")
    parser.add_argument("--note", action="append", default=[], help="a paragraph for the section (repeatable)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",")]
    load0 = os.getloadavg()[0]
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.from_json:
        results, loads, commands_run, limit = _merge(args.from_json)
        load, command = (min(loads), max(loads)), "`, then `".join(commands_run)
    else:
        command = "python benchmarks/scaling.py" + (f" {' '.join(argv)}" if argv else "")
        series = [x.strip() for x in args.series.split(",") if x.strip()] or None
        limit = {"rates": rates(threads_list), "sizes": sizes} if series is None or "refusion" in series else {}

        def save(partial: dict) -> None:
            if args.json:
                args.json.write_text(json.dumps({"results": partial, "load": (load0, os.getloadavg()[0]),
                                                 "command": command, "limit": limit}))

        results = measure(sizes, args.runs, args.max_seconds, threads_list, save, series,
                          _parse_runs_at(args.runs_at), args.refusion_max_seconds)
        load = (load0, os.getloadavg()[0])
        save(results)
        if args.merge:
            old, loads, commands_run, _ = _merge(args.merge)
            for name, by_threads in results.items():
                old[name] = by_threads
            results = old
            load = (min(loads + list(load)), max(loads + list(load)))
            command = "`, then `".join(commands_run + [command])
    sizes = sorted({p["mp"] for by in results.values() for pts in by.values() for p in pts})
    if limit:
        limit["sizes"] = sizes
    title = (f"fusekit whole processes vs image size ({os.cpu_count()} shared CPUs, load {load[0]:.1f}-{load[1]:.1f}; "
             "solid: 1 thread, dashed: 2 threads; log-log)")
    text = render(results, command, load, sizes, args.max_seconds, limit, args.note)
    print(text)
    if not args.no_write:
        plot(results, REPO / "docs" / "scaling.png", title, limit)
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main(sys.argv[1:])
