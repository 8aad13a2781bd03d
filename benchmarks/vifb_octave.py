"""Rank fusekit's IVIF weights among VIFB's published methods with VIFB's own MATLAB metrics, run by GNU Octave.

VIFB (Zhang, Ye & Xiao, "VIFB: A Visible and Infrared Image Fusion
Benchmark", CVPR Workshops 2020; github.com/xingchenzhang/VIFB) scores 25
published fusion methods on 21 visible-infrared pairs with 13 metrics of its
own MATLAB code (``metrics/metrics*.m``), and ships every method's fused
images and per-image scores (``output/``). This script puts fusekit's
``refusion`` IVIF weights into that ranking, with VIFB's code doing the
scoring, not fusekit's re-implementation (``fusekit eval --profile vifb``,
which is compared on the side).

Nothing of VIFB is copied into this repository: the script reads a local
snapshot of VIFB given with ``--vifb DIR`` (a clone, or ``git archive`` of
it), e.g.::

    git clone https://github.com/xingchenzhang/VIFB /work/vifb     # or
    git --git-dir=VIFB.git archive HEAD | tar -x -C /work/vifb

Usage::

    nice -n 10 python benchmarks/vifb_octave.py run --vifb /work/vifb --vifb-commit 22b2ea9d...
    python benchmarks/vifb_octave.py table        # rewrite the section from the committed CSVs only

Stages of ``run`` (every one skips what is already done, so a stopped run resumes):

1. **fuse** the 21 pairs (``input/IR``, ``input/VI``, infrared first) with
   ``fusekit fuse -m refusion --task ivif --weights V`` for every IVIF variant
   in the weights registry (``fusekit info refusion``; default: all of them)
   and every ``--weights-file LABEL=PATH`` (e.g. the authors' ``.pth``), into
   ``<cache>/fused/<label>-<sha12>/`` as 8-bit PNG (colour, as fusekit writes
   it for a colour visible source). A changed weights file gets a new folder.
2. **octave**: ``octave --no-gui`` runs a driver this script writes into
   ``<cache>/octave/``. Like VIFB's ``compute_metrics.m`` it ``imread``\\ s the
   visible, infrared and fused images, ``cd``\\ s into VIFB's ``metrics``
   folder and calls ``metrics<Name>(imgVI, imgIR, fused)`` for each metric
   of ``util/configMetrics.m``, with warnings off. Two MATLAB functions that
   VIFB's Q_CB / Q_CV call are missing from Octave 7 (``freqspace``, and
   ``blkproc``, removed from MATLAB and octave-image); the driver puts small
   stand-ins written here, following MATLAB's documented behaviour, on the
   path (``freqspace`` grid; ``blkproc`` with zero padding of the partial
   blocks). Each value is appended to a TSV as soon as it is computed.
   A **check** runs the same driver on a few of VIFB's own fused images
   (``--check METHOD``, ``--check-images N``) and compares with the per-image
   values VIFB publishes (MATLAB, 5 significant digits).
3. **fusekit**: ``fusekit eval --profile vifb`` on the same fused images, for
   the agreement table.
4. **published**: the per-image values of VIFB's 25 methods
   (``output/evaluation_metrics_single/<image>_<method>_<metric>.txt``,
   methods from ``util/configMethods.m``), averaged over the 21 images as
   ``compute_metrics.m`` does (``nanmean`` over images); cross-checked with
   ``output/evaluation_metrics/evaluationMetricsAverageImg.mat`` when scipy
   can read it.
5. **table**: every fusekit row is ranked among the 25 published methods (26
   entries; rank 1 best, ties share the average rank) on each metric, with
   CE, RMSE and Q_CV lower-is-better and the other ten higher-is-better as in
   the VIFB paper; the mean of the 13 ranks orders the methods. Written to
   the ``vifb-octave`` section of ``BENCHMARKS.md``.

What is kept in the repository (``benchmarks/results/vifb/``, small CSVs, so
``table`` needs neither Octave nor VIFB): ``octave_per_image.csv`` (our
images, VIFB's code under Octave), ``octave_check.csv`` (Octave vs VIFB's
published MATLAB values), ``fusekit_per_image.csv`` (fusekit's ``vifb``
profile on the same images), ``published_means.csv`` (VIFB's per-method
means over its 21 images, cited from VIFB's ``output/`` folder) and
``meta.json`` (commands, versions, commit, timings).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "vifb"
MARK = "vifb-octave"

#: VIFB metric function suffix -> (short name as in the VIFB paper, fusekit ``vifb`` profile key, higher is better).
METRICS = {
    "Cross_entropy": ("CE", "ce", False),
    "Entropy": ("EN", "en", True),
    "Mutinf": ("MI", "mi", True),
    "Psnr": ("PSNR", "psnr", True),
    "Avg_gradient": ("AG", "ag", True),
    "Edge_intensity": ("EI", "ei", True),
    "Qabf": ("Qabf", "qabf", True),
    "Variance": ("SD", "sd", True),
    "Spatial_frequency": ("SF", "sf", True),
    "Rmse": ("RMSE", "rmse", False),
    "Ssim": ("SSIM", "ssim", True),
    "Qcb": ("Qcb", "qcb", True),
    "Qcv": ("Qcv", "qcv", False),
}

# --- Octave stand-ins for two MATLAB functions VIFB's Q_CB / Q_CV need (written for fusekit) ---
FREQSPACE_M = """\
function [f1, f2] = freqspace(n, flag)
  % Stand-in for MATLAB's freqspace (missing in Octave 7), written for fusekit's
  % benchmarks/vifb_octave.py from MATLAB's documentation: for an m-by-n grid the
  % frequencies along a dimension of length k are ((0:k-1) - floor(k/2)) * 2/k;
  % f1 runs along the columns (n), f2 along the rows (m); 'meshgrid' returns the grids.
  if numel(n) == 1, n = [n n]; end
  f1 = ((0:n(2)-1) - floor(n(2) / 2)) * (2 / n(2));
  f2 = ((0:n(1)-1) - floor(n(1) / 2)) * (2 / n(1));
  if nargin > 1
    if ~strcmp(flag, 'meshgrid'), error('freqspace stand-in: only the meshgrid flag'); end
    [f1, f2] = meshgrid(f1, f2);
  end
end
"""

BLKPROC_M = """\
function out = blkproc(a, blk, border, fun)
  % Stand-in for MATLAB's blkproc (removed from MATLAB and octave-image), written
  % for fusekit's benchmarks/vifb_octave.py: distinct blk(1)-by-blk(2) blocks, the
  % partial blocks at the bottom and right padded with zeros (as blkproc does),
  % fun applied to each block, the results tiled in block order. No overlap.
  if nargin == 3, fun = border; border = [0 0]; end
  if any(border(:) ~= 0), error('blkproc stand-in: only a [0 0] border'); end
  [h, w] = size(a);
  mb = ceil(h / blk(1)); nb = ceil(w / blk(2));
  p = zeros(mb * blk(1), nb * blk(2));
  p(1:h, 1:w) = a;
  parts = cell(mb, nb);
  for i = 1:mb
    for j = 1:nb
      parts{i, j} = fun(p((i-1)*blk(1) + (1:blk(1)), (j-1)*blk(2) + (1:blk(2))));
    end
  end
  out = cell2mat(parts);
end
"""

DRIVER_M = """\
%% Written by fusekit's benchmarks/vifb_octave.py: call VIFB's metric functions as its compute_metrics.m does.
pkg load image;
warning('off', 'all');
addpath('{shims}');
addpath('{metrics}');
cd('{metrics}');
jobs = fopen('{jobs}', 'r');
out = fopen('{out}', 'a');
last = '';
line = fgetl(jobs);
while ischar(line)
  p = strsplit(line, "\\t");
  key = [p{{4}} '|' p{{5}} '|' p{{6}}];
  if ~strcmp(key, last)
    imgVI = imread(p{{4}}); imgIR = imread(p{{5}}); fused = imread(p{{6}}); last = key;
  end
  t = tic;
  try
    res = feval(['metrics' p{{3}}], imgVI, imgIR, fused);
    fprintf(out, "%s\\t%s\\t%s\\t%.17g\\t%.17g\\t%.3f\\t%d/%d/%d\\t\\n", p{{1}}, p{{2}}, p{{3}}, ...
            real(res), imag(res), toc(t), size(imgVI, 3), size(imgIR, 3), size(fused, 3));
  catch err
    msg = regexprep(err.message, '\\s+', ' ');
    fprintf(out, "%s\\t%s\\t%s\\tNaN\\t0\\t%.3f\\t%d/%d/%d\\t%s\\n", p{{1}}, p{{2}}, p{{3}}, toc(t), ...
            size(imgVI, 3), size(imgIR, 3), size(fused, 3), msg);
  end
  fflush(out);
  line = fgetl(jobs);
end
fclose(out); fclose(jobs);
disp('vifb_octave driver: done');
"""

OCTAVE_COLS = ("label", "image", "metric", "value", "imag", "seconds", "channels", "error")


# ----------------------------------------------------------------------------- VIFB configuration

VIFB_FIX = "--vifb must name a snapshot of github.com/xingchenzhang/VIFB (git clone https://github.com/xingchenzhang/VIFB)"


def check_vifb(vifb: Path) -> None:
    """Stop with one line naming the first file a VIFB snapshot needs that ``vifb`` lacks."""
    if not vifb.is_dir():
        raise SystemExit(f"{vifb}: no such folder; {VIFB_FIX}")
    needed = [vifb / "util" / f"{n}.m" for n in ("configImgsVI", "configMethods", "configMetrics")]
    needed += [vifb / "metrics" / f"metrics{k}.m" for k in METRICS]
    for path in needed:
        if not path.is_file():
            raise SystemExit(f"{path}: not found, so {vifb} is not a VIFB snapshot; {VIFB_FIX}")
    for sub in ("input/IR", "input/VI", "output/evaluation_metrics_single"):
        if not (vifb / sub).is_dir():
            raise SystemExit(f"{vifb / sub}: not found, so {vifb} is not a whole VIFB snapshot; {VIFB_FIX}")


def check_vifb_inputs(vifb: Path, images: list[str]) -> None:
    """Every pair ``util/configImgsVI.m`` names is in ``input/IR`` and ``input/VI``."""
    for image in images:
        for modality in ("IR", "VI"):
            path = input_path(vifb, modality, image)
            if not path.is_file():
                raise SystemExit(f"{path}: not found (util/configImgsVI.m names {image}); {VIFB_FIX}")


def config_names(vifb: Path, name: str) -> list[str]:
    """The ``struct('name', X)`` entries of ``util/<name>.m`` in order (images, methods, metrics)."""
    text = (vifb / "util" / f"{name}.m").read_text(errors="replace")
    text = "\n".join(line.split("%", 1)[0] for line in text.splitlines())
    return re.findall(r"struct\(\s*'name'\s*,\s*'([^']+)'", text)


def vifb_config(vifb: Path) -> tuple[list[str], list[str], list[str]]:
    images, methods, metrics = (config_names(vifb, n) for n in ("configImgsVI", "configMethods", "configMetrics"))
    if sorted(metrics) != sorted(METRICS):
        raise SystemExit(f"{vifb}/util/configMetrics.m lists {metrics}, not the 13 metrics this script knows")
    if len(images) != 21 or len(methods) < 2:
        raise SystemExit(f"{vifb}: expected 21 images and the published methods, found {len(images)} / {len(methods)}")
    return images, methods, metrics


def vifb_commit(vifb: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(vifb), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (pass --vifb-commit)"


def metrics_fingerprint(vifb: Path) -> str:
    """sha256 over VIFB's metric files (name and bytes), so the table says which code ran."""
    h = hashlib.sha256()
    for path in sorted((vifb / "metrics").glob("*.m")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def input_path(vifb: Path, modality: str, image: str) -> Path:
    return vifb / "input" / modality / f"{image}.jpg"


def check_shared_copy(vifb: Path, images: list[str], shared: Path) -> str:
    """Whether fusekit's offline copy of the VIFB test split is byte-identical to VIFB's inputs."""
    if not shared.is_dir():
        return f"{shared} absent: not compared"
    diff = [f"{m}/{i}" for i in images for m in ("ir", "vi")
            if not (shared / m / f"{i}.jpg").is_file()
            or (shared / m / f"{i}.jpg").read_bytes() != input_path(vifb, m.upper(), i).read_bytes()]
    return f"{len(images)} pairs byte-identical to {shared}" if not diff else f"differ from {shared}: {diff}"


# ----------------------------------------------------------------------------- published values

def read_txt_value(path: Path) -> float:
    text = path.read_text().strip()
    return float(text) if text else math.nan


def published_per_image(vifb: Path, images: list[str], methods: list[str], metrics: list[str]) -> dict:
    """``{(method, image, metric): value}`` from ``output/evaluation_metrics_single`` (MATLAB, 5 digits)."""
    folder = vifb / "output" / "evaluation_metrics_single"
    values = {}
    for method in methods:
        for image in images:
            for metric in metrics:
                path = folder / f"{image}_{method}_{metric}.txt"
                values[method, image, metric] = read_txt_value(path) if path.is_file() else math.nan
    return values


def nanmean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


def published_means(vifb: Path, images, methods, metrics) -> tuple[dict, str]:
    """Per-method means over the images (``nanmean``, as compute_metrics.m) and a note on the .mat cross-check."""
    per = published_per_image(vifb, images, methods, metrics)
    missing = sum(math.isnan(v) for v in per.values())
    means = {m: {k: nanmean([per[m, i, k] for i in images]) for k in metrics} for m in methods}
    note = f"{len(per) - missing} of {len(per)} per-image values read"
    mat = vifb / "output" / "evaluation_metrics" / "evaluationMetricsAverageImg.mat"
    try:
        from scipy.io import loadmat

        avg = loadmat(str(mat))["resultsMetricsAverageImg"]
        worst = max(abs(avg[0, j, k] - means[m][metric]) / max(abs(means[m][metric]), 1e-12)
                    for j, m in enumerate(methods) for k, metric in enumerate(metrics))
        note += (f"; their means agree with VIFB's `evaluationMetricsAverageImg.mat` to {worst:.1e} relative"
                 if avg.shape == (1, len(methods), len(metrics)) else "; the .mat has another shape, not compared")
    except Exception as exc:  # scipy missing, file absent, another layout: the txt values stand alone
        note += f"; `evaluationMetricsAverageImg.mat` not compared ({type(exc).__name__})"
    return means, note


# ----------------------------------------------------------------------------- fusing

def weights_runs(args) -> list[tuple[str, list[str], str]]:
    """``(label, fusekit fuse weight flags, sha12)`` for each registry variant and each ``--weights-file``."""
    runs = []
    from fusekit_refusion.weights import variants_for

    entries = variants_for("ivif")
    wanted = args.variants or [e.variant for e in entries]
    unknown = [v for v in wanted if v not in {e.variant for e in entries}]
    if unknown:
        raise SystemExit(f"--variant {unknown[0]}: no such IVIF weights variant; shipped: "
                         f"{', '.join(e.variant for e in entries) or 'none'} ('fusekit info refusion')")
    for i, entry in enumerate(entries):
        if entry.variant in wanted:
            label = f"ivif/{entry.variant}" + (" (default)" if i == 0 else "")
            runs.append((label, ["--weights", entry.variant], entry.sha256[:12]))
    for item in args.weights_file or []:
        label, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"--weights-file {item!r}: give LABEL=PATH to an existing weights file")
        runs.append((label, ["--weights", str(Path(path).resolve())], sha256_file(Path(path))[:12]))
    if not runs:
        raise SystemExit("nothing to rank: no IVIF weights in the registry; pass --weights-file LABEL=PATH")
    return runs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label.replace(" (default)", "")).strip("-")


FORMS = {"jpeg75": "JPEG q75", "png": "PNG"}


def to_jpeg75(png_folder: Path, out: Path, images: list[str]) -> None:
    """Store fused PNGs as VIFB's ``main_running.m`` stores every method's result.

    ``imwrite(img, '<name>.jpg')``: MATLAB's default JPEG quality 75, 4:2:0
    chroma, baseline (VIFB's 525 published fused images all carry the IJG
    quality-75 tables and 4:2:0 sampling). Pillow's libjpeg encoder with
    ``quality=75, subsampling=2`` writes the same tables.
    """
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for name in images:
        target = out / f"{name}.jpg"
        if not target.is_file():
            with Image.open(png_folder / f"{name}.png") as im:
                im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode).save(
                    target.with_suffix(".part.jpg"), quality=75, subsampling=2, optimize=False)
            target.with_suffix(".part.jpg").replace(target)


def check_fused_images(folder: Path, ext: str, images: list[str], vifb: Path) -> None:
    """Stop with one line naming the first fused image that is missing, unreadable (truncated) or not
    the size of its infrared input: VIFB's code would score it as NaN or as garbage."""
    from PIL import Image

    fix = f"delete it (or {folder}) and rerun to fuse it again"
    for name in images:
        path = folder / f"{name}.{ext}"
        if not path.is_file():
            raise SystemExit(f"{path}: fused image missing; rerun to fuse it (or delete {folder} to fuse them all)")
        try:
            with Image.open(path) as im:
                im.load()
                size = im.size
            with Image.open(input_path(vifb, "IR", name)) as src:
                want = src.size
        except (OSError, SyntaxError, ValueError) as exc:
            raise SystemExit(f"{path}: unreadable fused image ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'truncated?'}); {fix}") from None
        if size != want:
            raise SystemExit(f"{path}: fused image is {size[0]} x {size[1]}, its sources "
                             f"{want[0]} x {want[1]}; {fix}")


def run_checked(cmd: list[str], what: str, **kwargs) -> None:
    """Run ``cmd`` (a fusekit command); stop with one line if it fails (its own message is above)."""
    try:
        proc = subprocess.run(cmd, **kwargs)
    except OSError as exc:
        raise SystemExit(f"{cmd[0]}: cannot start {what} ({exc.strerror})") from None
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode}; its message is above); fix that and rerun "
                         f"(what is done is kept)")


def stage_fuse(args, vifb: Path, images: list[str], runs) -> dict[str, tuple[Path, str]]:
    """Fuse with every weights run; ``{row label: (folder, extension)}`` for each stored form."""
    folders = {}
    for label, flags, sha in runs:
        out = args.cache / "fused" / f"{slug(label)}-{sha}"
        if all((out / f"{i}.png").is_file() for i in images):
            print(f"fuse {label}: cached in {out}", flush=True)
        else:
            t0 = time.time()
            cmd = [sys.executable, "-m", "fusekit", "fuse", "-m", "refusion", "--task", "ivif", *flags,
                   str(vifb / "input" / "IR"), str(vifb / "input" / "VI"), "-o", str(out), "--no-progress"]
            print("+", " ".join(cmd), flush=True)
            run_checked(cmd, f"fusekit fuse for {label}")
            print(f"fuse {label}: {time.time() - t0:.0f} s", flush=True)
        check_fused_images(out, "png", images, vifb)
        for form in args.forms:
            if form == "png":
                folders[f"{label}, {FORMS[form]}"] = (out, "png")
            else:
                jpg = out.with_name(out.name + "-jpeg75")
                to_jpeg75(out, jpg, images)
                check_fused_images(jpg, "jpg", images, vifb)
                folders[f"{label}, {FORMS[form]}"] = (jpg, "jpg")
    return folders


# ----------------------------------------------------------------------------- Octave

def octave_versions(octave: str) -> dict[str, str]:
    script = ("printf('octave %s\\n', version()); p = pkg('list'); "
              "for i = 1:numel(p), printf('%s %s\\n', p{i}.name, p{i}.version); end")
    try:
        proc = subprocess.run([octave, "--no-gui", "--no-window-system", "--quiet", "--no-init-file", "--eval",
                               script], capture_output=True, text=True)
    except OSError as exc:
        raise SystemExit(f"{octave}: cannot run GNU Octave ({exc.strerror}); install it "
                         f"(apt-get install octave octave-image) or pass --octave PATH") from None
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{octave}: 'octave --eval' failed (exit {proc.returncode}: {last}); check the "
                         f"installation or pass --octave PATH")
    out = proc.stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def read_octave_tsv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 7:
            rows.append(dict(zip(OCTAVE_COLS, parts + [""] * (len(OCTAVE_COLS) - len(parts)))))
    return rows


def drop_partial_line(path: Path) -> None:
    """Cut a line Octave did not finish (stopped mid-write) off ``path``: appended to, it would merge
    with the next value's line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def run_octave(args, jobs: list[tuple[str, str, str, Path, Path, Path]], out: Path) -> float:
    """Append VIFB's values for ``jobs`` (label, image, metric, vi, ir, fused) not yet in ``out``; seconds taken."""
    drop_partial_line(out)
    done = {(r["label"], r["image"], r["metric"]) for r in read_octave_tsv(out)}
    todo = [j for j in jobs if j[:3] not in done]
    if not todo:
        return 0.0
    work = args.cache / "octave"
    shims = work / "shims"
    shims.mkdir(parents=True, exist_ok=True)
    (shims / "freqspace.m").write_text(FREQSPACE_M)
    (shims / "blkproc.m").write_text(BLKPROC_M)
    jobs_file = work / f"jobs-{out.stem}.tsv"
    jobs_file.write_text("".join("\t".join(map(str, j)) + "\n" for j in todo))
    for path in (shims, jobs_file, out, args.vifb):
        if "'" in str(path) or "\t" in str(path):
            raise SystemExit(f"{path}: a quote or tab in a path the Octave driver reads")
    driver = work / f"driver-{out.stem}.m"
    driver.write_text(DRIVER_M.format(shims=shims, metrics=(args.vifb / "metrics").resolve(), jobs=jobs_file,
                                      out=out))
    print(f"octave: {len(todo)} metric values ({len(done)} cached) -> {out}", flush=True)
    t0 = time.time()
    proc = subprocess.run([args.octave, "--no-gui", "--no-window-system", "--quiet", "--no-init-file", str(driver)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.time() - t0
    if "vifb_octave driver: done" not in proc.stdout:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"octave stopped (exit {proc.returncode}); rerun to resume from {out}")
    return seconds


def octave_jobs(label: str, images, metrics, vifb: Path, fused_of) -> list[tuple]:
    return [(label, i, k, input_path(vifb, "VI", i), input_path(vifb, "IR", i), fused_of(i))
            for i in images for k in metrics]


def check_images(vifb: Path, images: list[str], n: int) -> list[str]:
    """``n`` images for the Octave-vs-MATLAB check: the first ones, then a spread over the list."""
    if n >= len(images):
        return list(images)
    step = len(images) / n
    return [images[int(i * step)] for i in range(n)]


# ----------------------------------------------------------------------------- fusekit's vifb profile

def run_fusekit_eval(args, vifb: Path, label: str, folder: Path) -> list[dict[str, str]]:
    out = args.cache / "fusekit" / f"{folder.name}.csv"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "fusekit", "eval", str(vifb / "input"), "--sources", "IR,VI", "--fused",
               str(folder), "--profile", "vifb", "-o", str(out)]
        print("+", " ".join(cmd), flush=True)
        run_checked(cmd, f"fusekit eval for {label}", stdout=subprocess.DEVNULL)
    rows = list(csv.DictReader(out.open()))
    return [{"label": label, **{k: v for k, v in r.items() if k != "method"}} for r in rows]


# ----------------------------------------------------------------------------- ranking (pure, tested)

def ranks(values: dict[str, float], higher_better: bool) -> dict[str, float]:
    """Rank 1 = best; tied values share the mean of the ranks they span; NaN ranks last."""
    key = (lambda n: -values[n]) if higher_better else (lambda n: values[n])
    finite = sorted((n for n in values if not math.isnan(values[n])), key=key)
    out, i = {}, 0
    while i < len(finite):
        j = i
        while j + 1 < len(finite) and values[finite[j + 1]] == values[finite[i]]:
            j += 1
        for n in finite[i:j + 1]:
            out[n] = (i + j) / 2 + 1
        i = j + 1
    for n in values:
        out.setdefault(n, float(len(values)))
    return out


def rank_table(published: dict[str, dict[str, float]], ours: dict[str, float], name: str):
    """Per-metric ranks and mean rank of every method with ``ours`` added as ``name``.

    Returns ``(per_metric, mean_rank, place)``: ``per_metric[metric][method]``,
    ``mean_rank[method]``, and ``place`` = 1 + the number of methods with a
    strictly lower mean rank than ``name``.
    """
    table = {**published, name: ours}
    per_metric = {k: ranks({m: table[m][k] for m in table}, METRICS[k][2]) for k in METRICS}
    mean_rank = {m: sum(per_metric[k][m] for k in METRICS) / len(METRICS) for m in table}
    place = 1 + sum(mean_rank[m] < mean_rank[name] for m in table if m != name)
    return per_metric, mean_rank, place


# ----------------------------------------------------------------------------- kept CSVs

def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with tmp.open("w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def csv_text(header: list[str], rows: list[list]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    write_atomic(path, csv_text(header, rows))


def g(x: float) -> str:
    return "nan" if math.isnan(x) else repr(float(x))


def load_results(folder: Path = RESULTS) -> dict:
    """The kept CSVs and meta as plain structures (what ``table`` and the tests use)."""
    for name in ("published_means.csv", "octave_per_image.csv", "meta.json"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder / name}: not found; run 'python benchmarks/vifb_octave.py run --vifb DIR' "
                             f"first, or pass --results with the folder that holds the kept results")
    published = {}
    for row in csv.DictReader((folder / "published_means.csv").open()):
        published[row["method"]] = {k: float(row[k]) for k in METRICS}
    octave: dict[str, dict[str, dict[str, float]]] = {}
    for row in csv.DictReader((folder / "octave_per_image.csv").open()):
        octave.setdefault(row["label"], {}).setdefault(row["image"], {})[row["metric"]] = float(row["value"])
    fk: dict[str, dict[str, dict[str, float]]] = {}
    path = folder / "fusekit_per_image.csv"
    if path.is_file():
        for row in csv.DictReader(path.open()):
            fk.setdefault(row["label"], {})[row["image"]] = {k: float(row[METRICS[k][1]]) for k in METRICS}
    check_csv = folder / "octave_check.csv"
    check = list(csv.DictReader(check_csv.open())) if check_csv.is_file() else []
    meta = json.loads((folder / "meta.json").read_text())
    return {"published": published, "octave": octave, "fusekit": fk, "check": check, "meta": meta}


def label_means(per_image: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: nanmean([v.get(k, math.nan) for v in per_image.values()]) for k in METRICS}


# ----------------------------------------------------------------------------- Markdown

def fmt(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    a = abs(x)
    return f"{x:.4f}" if a < 10 else f"{x:.3f}" if a < 100 else f"{x:.2f}"


def render(res: dict) -> str:
    published, meta = res["published"], res["meta"]
    n_pub = len(published)
    labels = list(res["octave"])
    order = list(METRICS)
    short = {k: METRICS[k][0] for k in order}
    arrow = {k: "↑" if METRICS[k][2] else "↓" for k in order}
    ranked_rows = {}
    for label in labels:
        ours = label_means(res["octave"][label])
        ranked_rows[label] = (ours, *rank_table(published, ours, label))
    lines = [f"<!-- begin {MARK} -->",
             "## VIFB's own metric code (GNU Octave): fusekit's IVIF weights among VIFB's published methods "
             "(`benchmarks/vifb_octave.py`)", ""]
    lines += [
        f"The 21 VIFB pairs fused by fusekit and scored by VIFB's MATLAB metric functions "
        f"(`metrics/metrics*.m`, called as its `compute_metrics.m` calls them), run by GNU Octave "
        f"{meta['octave']} with octave-image {meta['octave_image']}; ranked among the {n_pub} methods whose "
        f"per-image scores VIFB publishes (`output/evaluation_metrics_single`, MATLAB). VIFB: Zhang, Ye & Xiao, "
        f"*VIFB: A Visible and Infrared Image Fusion Benchmark*, CVPR Workshops 2020, "
        f"github.com/xingchenzhang/VIFB at commit `{meta['vifb_commit']}` "
        f"(metric files sha256 `{meta['metrics_sha256'][:16]}…`). Nothing of VIFB is in this repository; "
        f"the script reads a local snapshot.", "",
        "| fusekit row | mean rank | place of " + str(n_pub + 1) + " | best published (mean rank) |",
        "|---|---:|---:|---|"]
    for label, (ours, per_metric, mean_rank, place) in ranked_rows.items():
        best = min(published, key=lambda m: (mean_rank[m], m))
        lines.append(f"| {label} | {mean_rank[label]:.2f} | {place} | {best} ({mean_rank[best]:.2f}) |")
    lines += [
        "",
        f"- Command: `{meta['command']}`; table only, from the kept CSVs (`benchmarks/results/vifb/`): "
        f"`python benchmarks/vifb_octave.py table`.",
        f"- Fused images: `fusekit fuse -m refusion --task ivif --weights V IR/ VI/` (infrared first), 8-bit "
        f"colour as fusekit writes them for a colour visible source (PNG). VIFB's `main_running.m` stores every "
        f"method's result with `imwrite(img, 'x.jpg')`, MATLAB's default JPEG quality 75, and all {n_pub * 21} "
        f"published fused images carry the quality-75 tables with 4:2:0 chroma; the *JPEG q75* rows store ours "
        f"the same way ({meta.get('jpeg_encoder', '?')}, quality 75, 4:2:0), the like-for-like comparison; the "
        f"*PNG* rows score the lossless output. Inputs: {meta['inputs']}.",
        f"- Ranks: each fusekit row against the {n_pub} published methods ({n_pub + 1} entries; 1 = best, ties "
        "share the mean rank); ↓ = lower is better (CE, RMSE, Qcv, as in the VIFB paper), ↑ = higher. "
        "Mean rank = mean of the 13 ranks; place = 1 + methods with a lower mean rank.",
        "- Octave stand-ins: Octave 7 lacks `freqspace` and `blkproc`, which VIFB's Qcb and Qcv call; the "
        "driver adds small stand-ins (MATLAB's documented behaviour; blkproc zero-pads partial blocks). "
        "Octave's `imread` returns a 3-channel JPEG whose channels are all equal (17 of VIFB's infrared "
        "images) as one channel where MATLAB keeps three; VIFB's per-channel code gives the same values "
        "either way, as each channel of those images is the same.",
        f"- Published means: {meta['published_note']}.",
        f"- Octave failures: {meta.get('octave_failures', 0)}; values with a non-negligible imaginary part: "
        f"{meta.get('octave_complex_values', 0)} (the real part is kept, as MATLAB's `dlmwrite` would print it).",
        f"- Time: {meta['timing']}.", ""]
    if res["check"]:
        lines += check_block(res["check"]) + [""]
    for label, (ours, per_metric, mean_rank, place) in ranked_rows.items():
        best = {k: min(published, key=lambda m: (per_metric[k][m], m)) for k in order}
        lines += [f"### {label}: mean rank {mean_rank[label]:.2f}, place {place} of {n_pub + 1}", "",
                  "| | " + " | ".join(f"{short[k]} {arrow[k]}" for k in order) + " |",
                  "|---|" + "---:|" * len(order),
                  "| fusekit (Octave) | " + " | ".join(fmt(ours[k]) for k in order) + " |",
                  f"| rank of {n_pub + 1} | " + " | ".join(f"{per_metric[k][label]:g}" for k in order) + " |",
                  "| best published | " + " | ".join(fmt(published[best[k]][k]) for k in order) + " |",
                  "| (method) | " + " | ".join(best[k] for k in order) + " |", ""]
    head = labels[0]
    ours, per_metric, mean_rank, place = ranked_rows[head]
    ranked = sorted(mean_rank, key=lambda m: (mean_rank[m], m))
    lines += [f"Mean rank over the 13 metrics, all {n_pub + 1} entries with **{head}**:", "",
              "| place | method | mean rank | place | method | mean rank |", "|---:|---|---:|---:|---|---:|"]
    half = (len(ranked) + 1) // 2
    for i in range(half):
        cells = []
        for j in (i, i + half):
            if j < len(ranked):
                m = ranked[j]
                p = 1 + sum(mean_rank[o] < mean_rank[m] for o in ranked)
                cells += [str(p), f"**{m}**" if m == head else m, f"{mean_rank[m]:.2f}"]
            else:
                cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if res["fusekit"]:
        lines += agreement_block(res) + [""]
    lines.append(f"<!-- end {MARK} -->")
    return "\n".join(lines) + "\n"


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def check_block(check: list[dict[str, str]]) -> list[str]:
    methods = sorted({r["method"] for r in check})
    images = sorted({r["image"] for r in check})
    worst = {k: max((float(r["rel_diff"]) for r in check if r["metric"] == k), default=math.nan) for k in METRICS}
    return [f"**Octave against VIFB's published MATLAB values** ({', '.join(methods)}; {len(images)} images: "
            f"{', '.join(images)}; the published values have 5 significant digits, so up to ~5e-5 relative is "
            f"rounding): largest relative difference per metric", "",
            "| " + " | ".join(METRICS[k][0] for k in METRICS) + " |", "|" + "---:|" * len(METRICS),
            "| " + " | ".join(f"{worst[k]:.1e}" for k in METRICS) + " |"]


def agreement_block(res: dict) -> list[str]:
    lines = ["**fusekit's `vifb` profile against VIFB's code under Octave, same images** (`fusekit eval "
             "--profile vifb`; relative difference of the 21-image means, and the largest per-image one; "
             "**bold**: above 1e-3)", "",
             "| row | " + " | ".join(METRICS[k][0] for k in METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for label, per_image in res["octave"].items():
        fk = res["fusekit"].get(label)
        if not fk:
            continue
        octave_mean, fk_mean = label_means(per_image), label_means(fk)
        worst = {k: max(rel(fk[i][k], per_image[i][k]) for i in per_image if i in fk) for k in METRICS}

        def cell(x):
            return f"**{x:.1e}**" if x > 1e-3 else f"{x:.1e}"

        lines += [f"| {label}: Octave | " + " | ".join(fmt(octave_mean[k]) for k in METRICS) + " |",
                  "| fusekit | " + " | ".join(fmt(fk_mean[k]) for k in METRICS) + " |",
                  "| rel. diff of means | " + " | ".join(cell(rel(fk_mean[k], octave_mean[k])) for k in METRICS)
                  + " |",
                  "| largest per image | " + " | ".join(cell(worst[k]) for k in METRICS) + " |"]
    return lines


# ----------------------------------------------------------------------------- stages

def jpeg_encoder() -> str:
    import PIL
    from PIL import features

    return f"Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo') or 'no'}"


def stage_run(args) -> None:
    t_start = time.time()
    if args.nice:
        os.nice(args.nice)
    os.environ["OMP_NUM_THREADS"] = "1"
    vifb = args.vifb = args.vifb.resolve()
    if shutil.which(args.octave) is None:
        raise SystemExit(f"{args.octave}: GNU Octave not found; install it (apt-get install octave octave-image) "
                         f"or pass --octave PATH")
    check_vifb(vifb)
    images, methods, metrics = vifb_config(vifb)
    check_vifb_inputs(vifb, images)
    unknown = [m for m in args.check if m not in methods]
    if unknown:
        raise SystemExit(f"--check {unknown[0]}: not a method of {vifb}/util/configMethods.m; choose from "
                         f"{', '.join(methods)}, or --check none")
    for m in args.check:
        for image in check_images(vifb, images, args.check_images):
            path = vifb / "output" / "fused_images" / f"{image}_{m}.jpg"
            if not path.is_file():
                raise SystemExit(f"{path}: not found (VIFB's published fused image for --check {m}); use a "
                                 f"whole VIFB snapshot, or --check none")
    runs = weights_runs(args)
    versions = octave_versions(args.octave)
    if "image" not in versions:
        raise SystemExit(f"{args.octave}: octave-image is not installed (apt-get install octave-image)")
    args.cache.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    folders = stage_fuse(args, vifb, images, runs)
    t_fuse = time.time() - t0

    # Octave on VIFB's own fused images first (a check of Octave against MATLAB), then on ours.
    check_out = args.cache / "octave" / "check.tsv"
    check_set = check_images(vifb, images, args.check_images) if args.check else []
    t_check = run_octave(args, [j for m in args.check for j in octave_jobs(
        f"vifb/{m}", check_set, metrics, vifb, lambda i, m=m: vifb / "output" / "fused_images" / f"{i}_{m}.jpg")],
        check_out) if check_set else 0.0
    ours_out = args.cache / "octave" / "ours.tsv"
    t_ours = run_octave(args, [j for label, (folder, ext) in folders.items() for j in octave_jobs(
        label, images, metrics, vifb, lambda i, folder=folder, ext=ext: folder / f"{i}.{ext}")], ours_out)

    rows = read_octave_tsv(ours_out)
    failures = [r for r in rows if r["error"] or r["value"] == "NaN"]
    complex_ = [r for r in rows if abs(float(r["imag"] or 0)) > 1e-9 * max(abs(float(r["value"])), 1.0)]
    if failures:
        print(f"warning: {len(failures)} metric calls failed under Octave, e.g. {failures[0]}", file=sys.stderr)
    labels = list(folders)
    keep = sorted((r for r in rows if r["label"] in labels),
                  key=lambda r: (labels.index(r["label"]), images.index(r["image"]), metrics.index(r["metric"])))
    # every kept file is written at the end, each through a temporary file: a failure on the way leaves
    # the kept set as it was, not half new and half old
    outputs = {"octave_per_image.csv": csv_text(
        ["label", "image", "metric", "value", "seconds", "channels"],
        [[r["label"], r["image"], r["metric"], r["value"], r["seconds"], r["channels"]] for r in keep])}
    sec_per_image = sum(float(r["seconds"]) for r in keep) / max(len({(r["label"], r["image"]) for r in keep}), 1)

    published_pi = published_per_image(vifb, images, methods, metrics)
    check_rows = []
    for r in read_octave_tsv(check_out):
        method = r["label"].split("/", 1)[1]
        pub = published_pi.get((method, r["image"], r["metric"]), math.nan)
        check_rows.append([method, r["image"], r["metric"], r["value"], g(pub), g(rel(float(r["value"]), pub))])
    outputs["octave_check.csv"] = csv_text(["method", "image", "metric", "octave", "published", "rel_diff"],
                                           check_rows)

    fk_rows = []
    for label in labels:
        fk_rows += run_fusekit_eval(args, vifb, label, folders[label][0])
    keys = ["label", "image"] + [METRICS[k][1] for k in METRICS]
    outputs["fusekit_per_image.csv"] = csv_text(keys, [[r[c] for c in keys] for r in fk_rows])

    means, note = published_means(vifb, images, methods, metrics)
    outputs["published_means.csv"] = csv_text(["method", *METRICS],
                                              [[m, *(g(means[m][k]) for k in METRICS)] for m in methods])

    command = ("nice -n 10 python benchmarks/vifb_octave.py run --vifb VIFB_DIR --vifb-commit "
               + vifb_commit(vifb, args.vifb_commit)[:12]
               + ("" if args.forms == ["jpeg75", "png"] else f" --forms {','.join(args.forms)}")
               + "".join(f" --variant {v}" for v in args.variants or [])
               + "".join(f" --weights-file {w.split('=', 1)[0]}=PATH" for w in args.weights_file or []))
    meta = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "vifb_commit": vifb_commit(vifb, args.vifb_commit),
        "metrics_sha256": metrics_fingerprint(vifb),
        "octave": versions.get("octave", "?"),
        "octave_image": versions.get("image", "?"),
        "weights": {label: sha for label, _, sha in runs},
        "jpeg_encoder": jpeg_encoder(),
        "inputs": check_shared_copy(vifb, images, args.shared),
        "published_note": note + f"; methods from `util/configMethods.m` ({len(methods)})",
        "octave_failures": len(failures),
        "octave_complex_values": len(complex_),
        "timing": (f"VIFB's metrics under Octave about {sec_per_image:.0f} s per image (13 metrics; Qabf about "
                   f"half of it) for {len(labels)} rows x 21 images, at nice 10 on 2 cores shared with two "
                   f"training jobs; this run (0 s for what was cached): fusing {t_fuse:.0f} s, Octave check "
                   f"{t_check:.0f} s, Octave on ours {t_ours:.0f} s, whole run {time.time() - t_start:.0f} s"),
    }
    outputs["meta.json"] = json.dumps(meta, indent=1) + "\n"
    for name, text in outputs.items():
        write_atomic(args.results / name, text)
    stage_table(args)


def stage_table(args) -> None:
    from fusekit.experiments import write_section

    text = render(load_results(args.results))
    if args.no_write:
        print(text)
    else:
        write_section(MARK, text, REPO / "BENCHMARKS.md")
        print(f"wrote section {MARK} of BENCHMARKS.md")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    run = sub.add_parser("run", help="fuse, score with VIFB's code under Octave, rank, write the table")
    run.add_argument("--vifb", type=Path, required=True, help="local snapshot of github.com/xingchenzhang/VIFB")
    run.add_argument("--vifb-commit", help="the snapshot's commit (default: git rev-parse in --vifb)")
    run.add_argument("--cache", type=Path, default=REPO / ".fusekit-cache" / "vifb_octave",
                     help="fused images, Octave driver and raw results (default: .fusekit-cache/vifb_octave)")
    run.add_argument("--variant", dest="variants", action="append",
                     help="IVIF weights variant of the registry, repeatable (default: all IVIF variants)")
    run.add_argument("--weights-file", action="append", metavar="LABEL=PATH",
                     help="also rank this weights file (e.g. the authors' .pth), repeatable")
    run.add_argument("--forms", default="jpeg75,png",
                     help="how the fused images are stored for scoring, in order: jpeg75 (as VIFB stores every "
                          "method's result) and/or png (lossless, as fusekit writes them); default jpeg75,png")
    run.add_argument("--check", action="append", default=None, metavar="METHOD",
                     help="VIFB method whose published images are rescored under Octave as a check "
                          "(default: ADF; --check none to skip)")
    run.add_argument("--check-images", type=int, default=2, help="images for the check (default 2)")
    run.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "ivif" / "vifb" / "test",
                     help="fusekit's offline copy of VIFB's inputs, compared byte for byte")
    run.add_argument("--octave", default="octave")
    run.add_argument("--nice", type=int, default=10, help="raise this process's niceness by N (default 10)")
    for p in (run, sub.add_parser("table", help="rewrite the BENCHMARKS.md section from the kept CSVs")):
        p.add_argument("--results", type=Path, default=RESULTS)
        p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = ap.parse_args(argv)
    if args.stage == "run":
        args.check = [] if args.check == ["none"] else (args.check or ["ADF"])
        args.forms = [f.strip() for f in args.forms.split(",") if f.strip()]
        if not args.forms or set(args.forms) - set(FORMS):
            ap.error(f"--forms: choose from {', '.join(FORMS)}")
        if args.check_images < 1:
            ap.error("--check-images: give 1 or more (or --check none to skip the check)")
        stage_run(args)
    else:
        stage_table(args)


if __name__ == "__main__":
    main()
