"""ReFusion through the command line, whole process, against the plain reference network's compute alone.

Issue 24's row "ReFusion, 4 MSRS 640x480 pairs through the CLI (start-up,
torch import and weights load included; the authors' side timed on compute
only): >= 6x". Per round:

* ``reference``: :class:`refusion.PlainReFusion` (the authors' network written
  plainly, seeded weights; see ``benchmarks/refusion.py``), in this process at
  ``--threads`` torch threads, after one untimed warm-up pair: the sum of the
  forward passes of the pairs' luminance, ``torch.no_grad``. Start-up, imports,
  weight loading and image reading are not counted.
* ``fusekit fuse -m refusion --task ivif IR/ VI/ -o OUT/``: one fresh process
  on the same pairs (shipped weights, colour output for the colour visible
  images), everything counted: interpreter start, imports, weights, reading,
  fusing, writing.

* with ``--baseline REV``: the same command in a fresh process whose
  ``fusekit_refusion.engine`` is the file at git revision ``REV`` (everything
  else current), so an engine change is measured through the CLI side by side.

Median of ``--rounds`` alternating rounds; writes section ``refusion-cli`` of
``BENCHMARKS.md``.
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
import torch

from fusekit.experiments import cpu_description, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refusion import DATA, REPO, _baseline_engine, seeded_plain  # noqa: E402

#: ``python -c`` program: ``fusekit`` with ``fusekit_refusion.engine`` loaded from the file in argv[1].
WITH_ENGINE = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("fusekit_refusion.engine", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["fusekit_refusion.engine"] = module
spec.loader.exec_module(module)
sys.argv = ["fusekit", *sys.argv[2:]]
from fusekit.cli import main
main()
"""

MARK = "refusion-cli"


def pairs(count: int) -> list[tuple[Path, Path]]:
    """The first ``count`` MSRS test pairs (infrared, visible)."""
    folder = DATA / "ivif" / "msrs" / "test"
    names = sorted(p.name for p in (folder / "ir").iterdir())[:count]
    return [(folder / "ir" / n, folder / "vi" / n) for n in names]


def reference_seconds(net: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Summed wall seconds of the plain network's forward passes over ``inputs``."""
    total = 0.0
    with torch.no_grad():
        for x in inputs:
            t0 = time.perf_counter()
            net(x)
            total += time.perf_counter() - t0
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the reference")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time the CLI with the engine file of this git revision, alternating")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    from fusekit.color import luminance
    from fusekit.io import read_image

    torch.set_num_threads(args.threads)
    chosen = pairs(args.pairs)
    inputs = []
    for ir, vi in chosen:
        grey = [read_image(p) for p in (ir, vi)]
        grey = [luminance(g) if g.ndim == 3 else g for g in grey]
        inputs.append(torch.from_numpy(np.stack(grey)[None].astype(np.float32)))
    net = seeded_plain()
    reference_seconds(net, inputs[:1])  # warm-up
    load_before = os.getloadavg()[0]
    ref_t, cli_t, base_t = [], [], []
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}  # as a user's shell
    with tempfile.TemporaryDirectory() as tmp:
        base_engine = _baseline_engine(args.baseline, Path(tmp)) if args.baseline else None
        for sub in ("ir", "vi"):
            (Path(tmp) / sub).mkdir()
        for ir, vi in chosen:
            (Path(tmp) / "ir" / ir.name).symlink_to(ir)
            (Path(tmp) / "vi" / vi.name).symlink_to(vi)
        for round_ in range(args.rounds):
            command = ["fuse", "-m", "refusion", "--task", "ivif", str(Path(tmp) / "ir"), str(Path(tmp) / "vi")]
            runs = [("current", [sys.executable, "-m", "fusekit"], cli_t)]
            if base_engine is not None:
                runs.append(("baseline", [sys.executable, "-c", WITH_ENGINE, str(base_engine)], base_t))
            for which, start, times in runs:
                out = Path(tmp) / f"out-{which}{round_}"
                t0 = time.perf_counter()
                subprocess.run([*start, *command, "-o", str(out)], check=True, stdout=subprocess.DEVNULL,
                               env=env)  # errors reach the terminal
                times.append(time.perf_counter() - t0)
                assert len(list(out.iterdir())) == len(chosen)
            ref_t.append(reference_seconds(net, inputs))
            print(f"round {round_ + 1}: fusekit CLI {cli_t[-1]:.2f} s"
                  + (f", with the engine at {args.baseline} {base_t[-1]:.2f} s" if base_t else "")
                  + f", reference compute {ref_t[-1]:.2f} s", flush=True)
    load_after = os.getloadavg()[0]
    ratios = [r / c for r, c in zip(ref_t, cli_t)]
    text = "\n".join([
        f"<!-- begin {MARK} -->",
        "## ReFusion through the command line against the plain network's compute (`benchmarks/refusion_cli.py`)",
        "",
        f"Command: `python benchmarks/refusion_cli.py --pairs {args.pairs} --rounds {args.rounds} --threads "
        f"{args.threads}{f' --baseline {args.baseline}' if args.baseline else ''}` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {platform.machine()}, "
        f"{os.cpu_count()} cores ({cpu_description()}), torch {torch.__version__}; load average {load_before:.1f} "
        f"before and {load_after:.1f} after). The first {args.pairs} MSRS test pairs (640x480). fusekit: one "
        "fresh `fusekit fuse -m refusion --task ivif IR/ VI/ -o OUT/` process, everything counted (start-up, "
        "imports, weights, reading, fusing, writing colour PNGs). Reference: `PlainReFusion` of "
        f"`benchmarks/refusion.py` at {args.threads} torch threads, forward passes only (warm, no start-up, no "
        "reading). Medians of alternating rounds; speed-up = the median of the per-round ratios.", "",
        "| what | median s | every run (s) |", "|---|---:|---|",
        f"| reference, compute only, {args.pairs} pairs | {statistics.median(ref_t):.2f} | "
        f"{', '.join(f'{v:.2f}' for v in ref_t)} |",
        f"| fusekit CLI, whole process, {args.pairs} pairs | {statistics.median(cli_t):.2f} | "
        f"{', '.join(f'{v:.2f}' for v in cli_t)} |",
        f"| **speed-up** | **{statistics.median(ratios):.1f}x** | {', '.join(f'{v:.1f}x' for v in ratios)} |",
        *([f"| fusekit CLI with the engine at `{args.baseline}`, {args.pairs} pairs | "
           f"{statistics.median(base_t):.2f} | {', '.join(f'{v:.2f}' for v in base_t)} |",
           f"| current CLI against the `{args.baseline}` engine (median of per-round ratios) | "
           f"**{statistics.median(b / c for b, c in zip(base_t, cli_t)):.2f}x** | "
           f"{', '.join(f'{b / c:.2f}x' for b, c in zip(base_t, cli_t))} |"] if base_t else []),
        "", f"<!-- end {MARK} -->"])
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
