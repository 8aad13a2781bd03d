"""Exposure fusion (``exposure``) against OpenCV's ``createMergeMertens(1, 1, 1)``, whole processes.

Usage::

    python benchmarks/exposure.py                 # writes its section of BENCHMARKS.md
    python benchmarks/exposure.py --no-write      # print only
    python benchmarks/exposure.py --pairs 5 --rounds 7

What it measures
----------------
* One folder run each, as a user runs them: ``fusekit fuse -m exposure
  UNDER/ OVER/ -o OUT/`` against a Python process that does the same with
  OpenCV (``cv2.imread`` both exposures, ``createMergeMertens(1, 1, 1)``,
  the result rounded to 8 bits and written with ``cv2.imwrite`` as PNG),
  on the first ``--pairs`` MEFB test pairs (linked into a temporary folder).
  Both processes start from scratch (interpreter, imports, decoding,
  encoding included) and are run alternately, ``--rounds`` times; the
  ratio is taken per round and its median reported, because the machine's
  speed drifts with the other jobs on it.
* The method alone, in one process: ``Exposure().fuse`` on float32 RGB
  against ``merge.process`` on the same 8-bit images, alternately, median
  wall time and least CPU time of ``--repeats`` calls per pair after a
  warm-up.
* Reading and writing alone, in one process: ``fusekit.io`` against
  ``cv2.imread`` / ``cv2.imwrite`` on the same files (least CPU time of
  ``--repeats`` passes), the part of the folder runs that is not the method.
* Agreement: PSNR between the two results (both clipped to [0, 1]) on the
  same pairs, and between the PNG files both processes wrote.

Requires ``opencv-python-headless`` (the ``dev`` extra) and the data in
``../shared/data``.
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
MEFB = DATA / "meif" / "mefb" / "test"
MARK = "exposure-vs-opencv"


def opencv_folder(under: Path, over: Path, out: Path) -> None:
    """The reference process: fuse every pair of ``under``/``over`` with OpenCV into ``out`` (PNG).

    Parameters
    ----------
    under, over : Path
        Folders of the under- and over-exposed images, paired by file name.
    out : Path
        Output folder (created); one ``<stem>.png`` per pair.
    """
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    merge = cv2.createMergeMertens(1.0, 1.0, 1.0)
    for name in sorted(os.listdir(under)):
        images = [cv2.imread(str(folder / name), cv2.IMREAD_COLOR) for folder in (under, over)]
        fused = merge.process(images)
        pixels = np.clip(np.rint(fused * 255.0), 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / (Path(name).stem + ".png")), pixels)


def _fusekit_command(code: Path | None = None) -> list[str]:
    """``fusekit``, or ``python -c`` running the CLI of checkout ``code`` instead of this tree."""
    script = Path(sys.executable).with_name("fusekit")
    if code is None and script.exists():
        return [str(script)]
    setup = "import sys; "
    if code is not None:   # an editable install's import hook would find the working tree first
        setup += ("sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
                  f"getattr(f, '__module__', '')]; sys.path[:0] = [{str(code)!r}, {str(code / 'plugins')!r}]; ")
    return [sys.executable, "-c", setup + "from fusekit.cli import main; sys.exit(main())"]


def _timed_process(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one process."""
    import resource

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # .pyc files, as an installed package has them
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def bench_folders(under: Path, over: Path, rounds: int, work: Path, base: Path | None) -> dict:
    """Alternate the OpenCV process, ``fusekit fuse`` and (if given) the ``base`` checkout's
    ``fusekit fuse`` on the folders; wall seconds per round."""
    fuse = ["fuse", "-m", "exposure", str(under), str(over), "-o"]
    commands = {"theirs": [sys.executable, str(Path(__file__).resolve()), "--opencv-folder", str(under), str(over)],
                "ours": _fusekit_command() + fuse}
    if base is not None:
        commands["base"] = _fusekit_command(base) + fuse
    # start-up alone (the output folder argument is ignored): the imports each side needs
    commands["theirs_start"] = [sys.executable, "-c", "import sys, cv2, numpy"]
    commands["ours_start"] = [sys.executable, "-c", "import sys, fusekit.cli, fusekit.api, fusekit_classic.exposure"]
    times: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    labels = list(commands)
    for r in range(rounds + 1):                  # round 0 warms the file cache, not reported
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            out = work / f"{label}-{r}"
            extra = [] if label.endswith("_start") else [str(out)]
            seconds, cpu_seconds = _timed_process(commands[label] + extra)
            if r:
                times[label].append(seconds)
                cpu[label].append(cpu_seconds)
            if r < rounds and out.exists():
                shutil.rmtree(out)
    times["ratios"] = [t / o for t, o in zip(times["theirs"], times["ours"])]
    times["cpu"] = cpu
    times["cpu_ratios"] = [t / o for t, o in zip(cpu["theirs"], cpu["ours"])]
    if base is not None:
        times["base_ratios"] = [t / o for t, o in zip(times["theirs"], times["base"])]
    times["files"] = (work / f"ours-{rounds}", work / f"theirs-{rounds}")
    return times


def bench_calls(names: list[str], repeats: int) -> dict:
    """Per pair: median wall and least CPU seconds of ``Exposure().fuse`` and of OpenCV's ``process``, and their PSNR.

    CPU seconds are the process's (``time.process_time``): OpenCV's count
    both of its threads. The least of ``repeats`` calls is reported for CPU
    time because on shared cores the other jobs only ever add to it.
    """
    import cv2

    from fusekit_classic.exposure import Exposure

    merge = cv2.createMergeMertens(1.0, 1.0, 1.0)
    fuser = Exposure()
    rows = []
    for name in names:
        u8 = [cv2.imread(str(MEFB / side / name), cv2.IMREAD_COLOR) for side in ("under", "over")]
        rgb = [np.ascontiguousarray(im[..., ::-1]).astype(np.float32) / np.float32(255) for im in u8]
        ours_out, theirs_out = fuser.fuse(rgb), merge.process(u8)
        ours_t, theirs_t, ours_c, theirs_c = [], [], [], []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            fuser.fuse(rgb)
            c1, t1 = time.process_time(), time.perf_counter()
            merge.process(u8)
            c2, t2 = time.process_time(), time.perf_counter()
            ours_t.append(t1 - t0)
            theirs_t.append(t2 - t1)
            ours_c.append(c1 - c0)
            theirs_c.append(c2 - c1)
        theirs_rgb = np.clip(theirs_out[..., ::-1], 0, 1)
        mse = float(np.mean((ours_out.astype(np.float64) - theirs_rgb) ** 2))
        rows.append({"name": name, "shape": u8[0].shape[:2], "ours": statistics.median(ours_t),
                     "theirs": statistics.median(theirs_t), "psnr": _psnr(mse),
                     "ours_cpu": min(ours_c), "theirs_cpu": min(theirs_c),
                     "ratio": statistics.median(t / o for t, o in zip(theirs_t, ours_t))})
    return {"rows": rows, "repeats": repeats}


def bench_io(names: list[str], repeats: int) -> dict:
    """Least CPU seconds of reading the pairs and writing results, fusekit.io against cv2 (one process).

    Reading: every ``under``/``over`` file with :func:`fusekit.io.read_image`
    (float32) and with ``cv2.imread`` (8-bit BGR). Writing: one fused-like
    float32 RGB image per pair (the under-exposed source) with
    :func:`fusekit.io.write_image` as PNG, and rounded to 8 bits and written
    with ``cv2.imwrite``, as the two folder runs do.
    """
    import cv2

    from fusekit import io

    files = [MEFB / side / name for name in names for side in ("under", "over")]
    images = [io.read_image(MEFB / "under" / name) for name in names]
    images = [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im for im in images]

    def least(work) -> float:
        best = float("inf")
        for _ in range(repeats):
            c0 = time.process_time()
            work()
            best = min(best, time.process_time() - c0)
        return best

    with tempfile.TemporaryDirectory(prefix="fusekit-exposure-io-") as tmp:
        out = Path(tmp)

        def write_ours() -> None:
            for i, im in enumerate(images):
                io.write_image(out / f"f{i}.png", im)

        def write_theirs() -> None:
            for i, im in enumerate(images):
                pixels = np.clip(np.rint(im[..., ::-1] * 255.0), 0, 255).astype(np.uint8)
                cv2.imwrite(str(out / f"c{i}.png"), pixels)

        return {"repeats": repeats,
                "read_ours": least(lambda: [io.read_image(f) for f in files]),
                "read_theirs": least(lambda: [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files]),
                "write_ours": least(write_ours), "write_theirs": least(write_theirs)}


def _psnr(mse: float) -> float:
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def file_psnr(ours: Path, theirs: Path) -> list[tuple[str, float]]:
    """PSNR (8-bit) between the PNG files the two folder runs wrote."""
    import cv2

    out = []
    for path in sorted(ours.iterdir()):
        a = cv2.imread(str(path), cv2.IMREAD_COLOR).astype(np.float64)
        b = cv2.imread(str(theirs / path.name), cv2.IMREAD_COLOR).astype(np.float64)
        out.append((path.stem, _psnr(float(np.mean((a - b) ** 2)) / 255.0 ** 2)))
    return out


def render(folders: dict, calls: dict, files: list, names: list[str], command: str,
           load: tuple[float, float], base_rev: str | None = None) -> str:
    """The Markdown section."""
    import cv2

    med = statistics.median
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines = [f"<!-- begin {MARK} -->", "## Exposure fusion against OpenCV, whole processes (`benchmarks/exposure.py`)", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} before and "
             f"{load[1]:.1f} after: the 2 cores are shared with other jobs (training runs at raised "
             f"priority among them), so wall times vary with their load and only the side-by-side "
             f"ratios count; Python {platform.python_version()}, numpy {np.__version__}, "
             f"OpenCV {cv2.__version__}).", "",
             f"One folder run each on the first {len(names)} MEFB test pairs "
             f"({', '.join(f'`{n}`' for n in names)}): `fusekit fuse -m exposure under/ over/ -o out/` "
             "against a Python process doing the same with OpenCV (`cv2.imread`, "
             "`createMergeMertens(1, 1, 1).process`, rounded to 8 bits, `cv2.imwrite` PNG). Start-up, "
             f"decoding and encoding included; the processes alternate, {len(folders['ratios'])} rounds "
             "after one unreported warm-up round (which also writes the `.pyc` files: Python may "
             "write bytecode here, as an installed package has it).", "",
             "| what | median wall s | median CPU s (user + sys) | wall runs (s) |", "|---|---:|---:|---|",
             f"| OpenCV process | {med(folders['theirs']):.2f} | {med(folders['cpu']['theirs']):.2f} | "
             f"{fmt(folders['theirs'])} |",
             f"| `fusekit fuse -m exposure` | {med(folders['ours']):.2f} | {med(folders['cpu']['ours']):.2f} | "
             f"{fmt(folders['ours'])} |"]
    for label, what in (("theirs_start", "start-up only: `python -c 'import cv2, numpy'`"),
                        ("ours_start", "start-up only: `python -c 'import fusekit.cli, fusekit.api, "
                         "fusekit_classic.exposure'`")):
        lines.append(f"| {what} | {med(folders[label]):.2f} | {med(folders['cpu'][label]):.2f} | "
                     f"{fmt(folders[label])} |")
    if "base" in folders:
        lines.append(f"| same, fusekit at `{base_rev}` (before this change) | {med(folders['base']):.2f} | "
                     f"{med(folders['cpu']['base']):.2f} | {fmt(folders['base'])} |")
    lines += ["", f"Speed ratio (OpenCV time / fusekit time, per round): median "
              f"**{med(folders['ratios']):.2f}x** (runs {fmt(folders['ratios'])}; above 1: fusekit faster)"
              + (f"; fusekit at `{base_rev}`: {med(folders['base_ratios']):.2f}x (runs "
                 f"{fmt(folders['base_ratios'])})." if "base" in folders else ".")
             + f" In CPU seconds (OpenCV / fusekit, per round): median {med(folders['cpu_ratios']):.2f}x.",
             "", "The method alone in one process (`Exposure().fuse` on float32 RGB against "
             f"`merge.process` on the same 8-bit images, alternately, {calls['repeats']} "
             "calls each per pair; default threads: OpenCV runs on both cores, fusekit on one below "
             "512x512 pixels). Wall: median; CPU: the least process CPU time of a call (OpenCV's counts "
             "both its threads), which the other jobs on the cores disturb less:",
             "", "| pair | size | fusekit wall ms | OpenCV wall ms | wall ratio | fusekit CPU ms | OpenCV CPU ms "
             "| CPU ratio | PSNR to OpenCV (dB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in calls["rows"]:
        h, w = row["shape"]
        lines.append(f"| `{row['name']}` | {w}x{h} | {row['ours'] * 1e3:.1f} | {row['theirs'] * 1e3:.1f} | "
                     f"{row['ratio']:.2f} | {row['ours_cpu'] * 1e3:.1f} | {row['theirs_cpu'] * 1e3:.1f} | "
                     f"{row['theirs_cpu'] / row['ours_cpu']:.2f} | {row['psnr']:.1f} |")
    lines += ["", "PSNR between the PNG files the two folder runs wrote (8 bits): "
              + ", ".join(f"`{n}` {p:.1f} dB" for n, p in files) + ".", "",
              "Where fusekit's folder run spends its time beyond OpenCV's (CPU, the least of "
              f"{calls['io']['repeats']} passes in one process over the same files): start-up (the start-up "
              f"rows: {med(folders['ours_start']) - med(folders['theirs_start']):+.2f} s median wall, "
              f"{med(folders['cpu']['ours_start']) - med(folders['cpu']['theirs_start']):+.2f} s CPU against "
              f"importing cv2); reading the {2 * len(names)} images, {calls['io']['read_ours'] * 1e3:.0f} ms "
              f"with `fusekit.io.read_image` (decoding, float32 conversion and grey checks) against "
              f"{calls['io']['read_theirs'] * 1e3:.0f} ms for `cv2.imread` (8-bit BGR; OpenCV converts to "
              "float inside `process`, counted in the method's time); writing the "
              f"{len(names)} results, {calls['io']['write_ours'] * 1e3:.0f} ms with `fusekit.io.write_image` "
              f"against {calls['io']['write_theirs'] * 1e3:.0f} ms for the 8-bit rounding and "
              "`cv2.imwrite` (both zlib level 1); and the method itself (the table above). Reading, "
              "writing and start-up are `fusekit.io`'s and the CLI's, not the method's. What changed in "
              "reading and writing since the base commit: each file is opened and parsed by Pillow once "
              "(the header read hands its open image to the decoder), the grey checks (R == G == B, then "
              "the 2-level near-grey spread) run on the 8-bit channels in row blocks that stop at the "
              "first colour block, and only the plane returned is converted to float32; writing scales, "
              "clips and rounds in one float32 array. The same arrays as before (checked on every image "
              "of the shared data) and the same written bytes. What changed in "
              "the method since the base commit: (1) the blend is computed relative to the last source "
              "`r`: the weights sum to 1 at every pyramid level, so "
              "`sum_k G(W_k) L(I_k) = L(I_r) + sum_{k != r} G(W_k) L(I_k - I_r)` and the fused image is "
              "`I_r + collapse(sum_{k != r} G(W_k) L(I_k - I_r))`: for a pair one Gaussian pyramid of 4 "
              "planes (the colour difference and one weight map) instead of 8, and 2 EXPANDs per channel "
              "and level instead of 3; (2) the plane and stack REDUCE/EXPAND run on kept buffers without "
              "temporaries or generic indexing (pyramid.py's values bit for bit; REDUCE's two divisions by "
              "16 folded into one by 256, exact in float32); (3) the weights are written into the pyramid "
              "stack in place, the luminance's Laplacian forms the doubled image once. Images of 512x512 "
              "or more still weigh and filter on threads (smaller ones in one thread: on this loaded "
              "machine threads made them slower). The output is the textbook blend's up to float32 "
              "rounding: against the base commit's, at most 5.4e-7 apart on the 100 MEFB pairs (full "
              "depth and `levels=3`), 1837 of 1.3e8 8-bit values (1.4e-5) one level apart, PSNR to "
              "OpenCV within 0.013 dB of before (median 65.68 dB, 93 pairs at 50 dB or more, both); "
              "`tests/test_classic.py` checks the blend against the textbook sum of weighted Laplacian "
              "pyramids and that the threaded, per-plane and stacked paths agree bit for bit. See the "
              "classic section for why some pairs (here `AmikeusBeaverDam`) stay below 50 dB.",
              f"<!-- end {MARK} -->"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="first N MEFB test pairs")
    parser.add_argument("--rounds", type=int, default=7, help="alternating folder runs per side")
    parser.add_argument("--repeats", type=int, default=21, help="timed calls per pair, in-process")
    parser.add_argument("--base", default="65574b9",
                        help="commit whose fusekit also runs, for a before/after in the same run ('' for none)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--opencv-folder", nargs=3, type=Path, metavar=("UNDER", "OVER", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.opencv_folder:
        opencv_folder(*args.opencv_folder)
        return
    names = sorted(os.listdir(MEFB / "under"))[: args.pairs]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fusekit-exposure-") as tmp:
        work = Path(tmp)
        for side in ("under", "over"):
            (work / side).mkdir()
            for name in names:
                (work / side / name).symlink_to(MEFB / side / name)
        base = work / "base" if args.base else None
        if base is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if base is not None:
                probe = _fusekit_command(base)[:-1] + [_fusekit_command(base)[-1].replace(
                    "from fusekit.cli import main; sys.exit(main())", "import fusekit_classic.exposure as e; print(e.__file__)")]
                where = subprocess.run(probe, check=True, capture_output=True, text=True).stdout.strip()
                if not where.startswith(str(base)):
                    raise SystemExit(f"the base checkout is not the one imported: {where}")
            folders = bench_folders(work / "under", work / "over", args.rounds, work, base)
        finally:
            if base is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                               check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files = file_psnr(*folders["files"])
        calls = bench_calls(names, args.repeats)
        calls["io"] = bench_io(names, args.repeats)
    load1 = os.getloadavg()[0]
    command = "python benchmarks/exposure.py" + (f" {' '.join(argv)}" if argv else "")
    text = render(folders, calls, files, names, command, (load0, load1), args.base or None)
    print(text)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main(sys.argv[1:])
