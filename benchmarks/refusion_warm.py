"""Warm ReFusion calls in one process: the current engine against an earlier engine file, alternating processes.

A long-running process (a notebook, a service, ``fusekit fuse`` on a folder)
fuses pair after pair; what the second and later calls cost is what it
pays. Each process here loads one engine (the current one, or
``plugins/fusekit_refusion/engine.py`` at ``--baseline``), fuses MSRS
00537D (640x480, shipped ivif weights, ``stretch=False``) ``--calls``
times at ``--threads`` torch threads, and reports every call's wall time,
CPU time (user + system, the whole process) and minor page faults
(``getrusage``). The first call of each process is reported apart (it
builds oneDNN's kernels); the warm figures are medians over every later
call of every process of that engine. ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
is removed from the children's environment, as in a user's shell.

Writes section ``refusion-warm`` of ``BENCHMARKS.md``.
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

import torch

from fusekit.experiments import cpu_description, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refusion import REPO, _baseline_engine  # noqa: E402

MARK = "refusion-warm"

#: ``python -c`` program: argv = engine file or "-", threads, calls; prints one JSON line per call.
CALLS = r"""
import importlib.util, json, resource, sys, time
engine, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if engine != "-":
    spec = importlib.util.spec_from_file_location("fusekit_refusion.engine", engine)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fusekit_refusion.engine"] = module
    spec.loader.exec_module(module)
import torch
torch.set_num_threads(threads)
sys.path.insert(0, sys.argv[4])
from refusion import msrs_pair
from fusekit_refusion.fuser import ReFusion
a, b, _ = msrs_pair()
fuser = ReFusion(task="ivif", stretch=False)
fuser.prepare()
for _ in range(calls):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fuser.fuse([a, b])
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                      "sys": r1.ru_stime - r0.ru_stime, "faults": r1.ru_minflt - r0.ru_minflt}), flush=True)
"""


def run(engine: str, threads: int, calls: int) -> list[dict]:
    """One fresh process: the per-call records of :data:`CALLS`."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", CALLS, engine, str(threads), str(calls),
                          str(REPO / "benchmarks")], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"engine {engine}: {out.stderr[-2000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="REV", help="git revision of the earlier engine")
    parser.add_argument("--processes", type=int, default=3, help="processes per engine (alternating)")
    parser.add_argument("--calls", type=int, default=4, help="fuse calls per process (the first is cold)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    records: dict[str, list[list[dict]]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        engines = {"baseline": str(_baseline_engine(args.baseline, Path(tmp))), "current": "-"}
        for i in range(args.processes):
            for which, engine in engines.items():
                records[which].append(run(engine, args.threads, args.calls))
                warm = [r["wall"] for r in records[which][-1][1:]]
                print(f"process {i + 1}, {which}: first {records[which][-1][0]['wall']:.2f} s, warm "
                      f"{', '.join(f'{w:.2f}' for w in warm)} s", flush=True)
    load_after = os.getloadavg()[0]

    def median(which: str, key: str, warm: bool = True) -> float:
        return statistics.median(r[key] for p in records[which] for r in (p[1:] if warm else p[:1]))

    rows = []
    for which in ("baseline", "current"):
        name = f"engine at `{args.baseline}`" if which == "baseline" else "current engine"
        rows.append(f"| {name} | {median(which, 'wall', False):.2f} | {median(which, 'wall'):.2f} | "
                    f"{median(which, 'cpu'):.2f} | {median(which, 'sys'):.2f} | {median(which, 'faults'):,.0f} |")
    ratio_wall = median("baseline", "wall") / median("current", "wall")
    ratio_cpu = median("baseline", "cpu") / median("current", "cpu")
    text = "\n".join([
        f"<!-- begin {MARK} -->",
        "## Warm ReFusion calls in one process, against an earlier engine (`benchmarks/refusion_warm.py`)", "",
        f"Command: `python benchmarks/refusion_warm.py --baseline {args.baseline} --processes {args.processes} "
        f"--calls {args.calls} --threads {args.threads}` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu_description()}), torch {torch.__version__}; load "
        f"average {load_before:.1f} before and {load_after:.1f} after). MSRS 00537D (640x480), shipped ivif "
        f"weights, `ReFusion(task='ivif', stretch=False).fuse`, {args.threads} torch threads; {args.processes} "
        f"fresh processes per engine, alternating, {args.calls} calls each. *Warm* = every call after a "
        "process's first (medians); CPU = user + system time of the process during the call; faults = minor "
        "page faults during the call.", "",
        "| engine | first call s | warm call s | warm CPU s | warm system s | warm minor faults |",
        "|---|---:|---:|---:|---:|---:|", *rows, "",
        f"Warm call, earlier engine / current: **{ratio_wall:.2f}x** wall, **{ratio_cpu:.2f}x** CPU.", "",
        f"<!-- end {MARK} -->"])
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
