"""Learned vs fixed loss under the authors' training recipe, from random weights, at equal fuser updates.

Issue 21: every earlier learned-vs-fixed run fine-tuned fixed-loss weights
with fusekit's own short recipe (Adam on P, ~130 proposer updates). This
benchmark trains every arm *from random weights* with ``fusekit train
--recipe authors`` (ReFusion's released schedule, see
:mod:`fusekit.training.recipes`), scaled to two CPU cores:

======================  =====================  ==============================
element                 authors                scaled here
======================  =====================  ==============================
epochs                  50                     10
outer batches / epoch   up to 600              120
fusion steps / epoch    one pass (~2000)       360 (one pass over 720 patches)
lr decay                /10 every 10 epochs    /10 every 2 epochs (same share)
gradient-term ramp      (epoch + 1) / 50       (epoch + 1) / 10
P update                lr_F * g / max|g|      2.5 x lr_F * g / max|g| (*)
accumulation            2 outer batches        2
batch                   2 + swapped order      2 + swapped order
patch                   256 px (group)         32 px
F, R learning rate      Adam 1e-4              Adam 1e-3 (**)
start                   random                 random
======================  =====================  ==============================

(*) P makes 600 updates here instead of 15,000; with the step 2.5x larger
its largest possible travel over the first decay period (120 updates x
2.5e-3 = 0.3) equals the authors' (3,000 x 1e-4). (**) F makes 3,600
updates instead of ~100,000, so its rate is the 1e-3 with which fusekit's
CPU runs reach the shipped quality.

Arms (same seed, data, batches and fuser updates; they differ only in the loss):

* ``fixed``: the hand-made loss (``--loss-proposer fixed``), no meta phase;
* ``learned``: ReFusion's proposer, P's update = meta-gradient + direct
  ``dL_fuse/dP`` (the authors' code);
* ``learned-nodirect``: the meta-gradient alone (``--no-direct-term``);
* ``learned-steady`` (a design change): the meta-gradient alone, and P's
  step stays at the peak rate while F's decays (``--no-proposer-decay``), so
  P keeps learning once F has become good;
* ``learned-sym`` (a design change): the meta-gradient alone, with P
  order-equivariant (``--symmetric-proposer``), so that it cannot collapse
  to "intensity from the first input, gradient from the second";
  ``learned-sym-direct`` keeps the direct term too;
* ``learned-int`` (a design change): P, order-equivariant and moved by the
  authors' update with its direct term, sets the intensity weights only; the
  gradient term keeps the hand-made max-gradient selection
  (``--learn-weights intensity``). The learned part is then exactly what the
  fixed loss sets by a rule (an even or brighter-source intensity target),
  and the direct term's selection pressure acts on intensity alone.

Stages::

    python benchmarks/meta_recipe.py train --task mfif --seeds 1 2 [--arms fixed learned ...]
    python benchmarks/meta_recipe.py score --task mfif
    python benchmarks/meta_recipe.py sheet --task mfif

``train`` runs the jobs two at a time, one CPU thread each, and continues a
stopped run from its checkpoint (in ``--work``, or kept in
``benchmarks/results/meta/partial/`` for runs a session had to stop); weights, cards,
loss logs and the proposers' weights go to ``benchmarks/results/meta/<task>/``
(kept in the repository), checkpoints to ``--work``. ``score`` fuses the
task's test splits with every run there and scores them in both profiles
(:func:`fusekit.experiments.compare`; fused images cached by content, a
split's score table named after the set of runs and reused when there), and
writes the section ``meta-recipe-<task>`` of ``BENCHMARKS.md`` (mean and
spread over the seeds). ``sheet`` writes
``docs/meta_recipe_<task>.png``; ``maps`` draws the learned proposers' weight
maps (``docs/meta_recipe_<task>_maps.png``).

Reference: H. Bai et al., "ReFusion", IJCV 2024, arXiv:2312.07943.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from fusekit.experiments import Run, compare, fmt, mean_spread, runs_sheet, suite, task_mean, write_section

REPO = Path(__file__).resolve().parents[1]
DATA = suite.data_root()

RESULTS = REPO / "benchmarks" / "results" / "meta"
SCALED = ["--recipe", "authors", "--epochs", "10", "--meta-batches", "120", "--fusion-batches", "360",
          "--decay-every", "2", "--accumulate", "2", "--proposer-step-scale", "2.5", "--lr", "1e-3",
          "--batch-size", "2", "--patch-size", "32", "--threads", "1", "--checkpoint-every", "1000",
          "--no-progress"]
#: arm -> extra options of ``fusekit train``
ARMS = {
    "fixed": ["--loss-proposer", "fixed"],
    "learned": ["--loss-proposer", "refusion"],
    "learned-nodirect": ["--loss-proposer", "refusion", "--no-direct-term"],
    # design change: meta-gradient alone, and P keeps its peak step while F's rate decays
    "learned-steady": ["--loss-proposer", "refusion", "--no-direct-term", "--no-proposer-decay"],
    # design change: the meta-gradient alone, with P made order-equivariant so that it cannot collapse to
    # a rule about input slots (what the diagnostic shows the meta-only arms do)
    "learned-sym": ["--loss-proposer", "refusion", "--no-direct-term", "--symmetric-proposer"],
    # the same with the authors' direct term kept
    "learned-sym-direct": ["--loss-proposer", "refusion", "--symmetric-proposer"],
    # design change: P (order-equivariant, authors' update with the direct term) sets the intensity weights
    # only; the gradient term keeps the hand-made max-gradient selection, so the learned part is exactly
    # what the fixed loss sets by a rule (mean or max intensity)
    "learned-int": ["--loss-proposer", "refusion", "--symmetric-proposer", "--learn-weights", "intensity"],
    # design change: as learned-int, with P's weights sharpened (temperature 0.1), so that the small
    # preferences the short schedule teaches P become near-selections in the loss
    "learned-int-sharp": ["--loss-proposer", "refusion", "--symmetric-proposer", "--learn-weights", "intensity",
                          "--proposer-temperature", "0.1"],
    # design change: as learned-int, with P's step 10x the scaled recipe's (25 x F's rate): the scaled and
    # the authors' schedules both let each of P's parameters travel at most ~0.33 in a whole run, and
    # learned-int's P ended within 1% of an even split; here the direct term's selection pressure can act
    "learned-int-fast": ["--loss-proposer", "refusion", "--symmetric-proposer", "--learn-weights", "intensity",
                         "--proposer-step-scale", "25"],
    # design change: meta-learning proper. As learned-int-fast (P order-equivariant, intensity weights only,
    # P's step 25 x F's rate) but without the authors' direct term dL_fuse/dP, which the diagnostic shows is
    # 10^3-10^6 times the meta-gradient and drives P towards the source F already matches (MEIF: the
    # over-exposed one); here P follows only the reconstruction meta-gradient (SNR 0.3-0.8, i.e. consistent)
    "learned-int-meta": ["--loss-proposer", "refusion", "--symmetric-proposer", "--learn-weights", "intensity",
                         "--no-direct-term", "--proposer-step-scale", "25"],
    # design change: as learned-int-meta, with the orders averaged in log space (--symmetric-mean
    # geometric). learned-int-meta's P saturated on an input slot within the first epoch on MFIF, which
    # the arithmetic average turns into an exact even split with no gradient left (its loss was then the
    # fixed one); in log space a slot preference cancels and gets no gradient, so only content can move P
    "learned-int-geo": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "geometric",
                        "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25"],
    # design change of the meta-objective: as learned-int-geo, with the reconstruction loss measured by
    # absolute errors averaged over the sources (--rec-error absolute --rec-reduction mean). ReFusion's
    # squared, worst-source loss makes an even blend of two sources that differ by d cost d^2/4 where
    # a selection costs d^2, whatever the content; absolute errors averaged over the sources cost both
    # d/2, so P can move only towards what the reconstructor can predict (a defocused source from the
    # sharp one, say)
    "learned-int-abs": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "geometric",
                        "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25",
                        "--rec-error", "absolute", "--rec-reduction", "mean"],
    # design change: as learned-int-abs, with the geometric mean taken from P's log-softmax
    # (--symmetric-mean logit). In learned-int-geo and -abs the inner P's slot preference drifted past the
    # floor of the logarithm (a logit gap of 69, within 1-2 epochs) and from then on P got no gradient
    # at all, content included: its loss was frozen at an even split. Here the cancelled slot preference
    # can drift without freezing what P learns about content
    "learned-int-logit": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "logit",
                          "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25",
                          "--rec-error", "absolute", "--rec-reduction", "mean"],
    # design change: learned-int-fast (the authors' update with its direct term, ReFusion's own
    # reconstruction loss) with the logit mean. learned-int-fast's P froze at an even split (its
    # arithmetic mean hid a saturated slot rule); with the freeze removed the direct term can act: on
    # MFIF, where F follows the sharper source's gradients, it pulls the intensity weights towards the
    # source F already matches, i.e. the sharper one
    "learned-int-logit-direct": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean",
                                 "logit", "--learn-weights", "intensity", "--proposer-step-scale", "25"],
    # design change of the meta-objective: as learned-int-logit (no direct term, logit mean, absolute
    # errors averaged over the sources), with the hand-made max-gradient term added to the outer loss
    # (--meta-detail 1). With the reconstruction objective alone P learned a content rule unrelated to
    # focus (MFIF) or gave all intensity to the darker input (MEIF); here P is rewarded for intensity
    # targets after which F keeps the sharper source's detail, which a blend (the fixed MFIF/MEIF
    # intensity target) cannot give
    "learned-int-detail": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "logit",
                           "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25",
                           "--rec-error", "absolute", "--rec-reduction", "mean", "--meta-detail", "1"],
    # design change of the meta-objective's target: as learned-int-detail, but the detail term scores
    # the fused image against an image it can equal (--meta-detail-target focus: at each pixel the
    # source with more gradient energy over 7x7, compared by signed Sobel gradients). learned-int-detail's
    # max-gradient target is out of reach wherever the sources differ and rewarded pixel-wise switching
    # (its P learned "brighter source"); a reachable selection penalises switching and rewards focus
    "learned-int-focus": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "logit",
                          "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25",
                          "--rec-error", "absolute", "--rec-reduction", "mean", "--meta-detail", "1",
                          "--meta-detail-target", "focus"],
    # learned-int-focus with the focus term weighted 10: with weight 1 the term started at about half of
    # the reconstruction part of the outer loss, yet both proposers saturated within the first epochs on
    # a brightness rule (to brighter 0.22 / 0.91, to sharper at chance) and their meta-gradients vanished;
    # here the focus term dominates P's signal from the start
    "learned-int-focus10": ["--loss-proposer", "refusion", "--symmetric-proposer", "--symmetric-mean", "logit",
                            "--learn-weights", "intensity", "--no-direct-term", "--proposer-step-scale", "25",
                            "--rec-error", "absolute", "--rec-reduction", "mean", "--meta-detail", "10",
                            "--meta-detail-target", "focus"],
}
TRAIN_DIRS = {
    "ivif": [DATA / "ivif" / d / "train" for d in ("roadscene", "tno", "llvip", "msrs")],
    "mif": [DATA / "mif" / f"aanlib_mri_{m}" / "train" for m in ("ct", "pet", "spect")],
}
#: final gradient-term weight, as the shipped weights of each task were trained
LAMBDA = {"ivif": 0.5, "mif": 1.0, "mfif": 1.0, "meif": 1.0}
PROFILES = ("cddfuse", "standard")


def run_stem(task: str, arm: str, seed: int) -> Path:
    return RESULTS / task / f"{arm}-seed{seed}"


def data_args(task: str, work: Path) -> list[str]:
    """Training data: the train folders (IVIF, MIF) or ``make_patches.py`` patches (MFIF, MEIF)."""
    if task in TRAIN_DIRS:
        return [str(d) for d in TRAIN_DIRS[task]]
    patches = work / "data" / f"{task}.npz"
    if not patches.is_file():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_patches.py"), "--out",
                        str(work / "data"), "--tasks", task], check=True)
    return ["--patches", str(patches)]


def train_command(task: str, arm: str, seed: int, work: Path, resume: bool = True) -> list[str]:
    """``fusekit train`` for one run; it continues from the run's checkpoint where one is left
    (a stopped session), which the trainer resumes exactly."""
    stem = run_stem(task, arm, seed)
    checkpoint = work / "ckpt" / f"{task}-{arm}-seed{seed}.ckpt"
    kept = RESULTS / "partial" / checkpoint.name  # a stopped run's checkpoint kept in the repository
    if resume and kept.is_file() and not checkpoint.is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(kept.read_bytes())
    again = ["--resume", str(checkpoint)] if resume and checkpoint.is_file() else []
    return (["fusekit", "train", "--task", task, *data_args(task, work), *SCALED, *ARMS[arm],
             "--lambda-grad", f"{LAMBDA[task]:g}", "--seed", str(seed), "--log", str(stem) + ".csv",
             "--checkpoint", str(checkpoint), *again, "-o", str(stem) + ".safetensors"])


def export_proposer(checkpoint: Path, out: Path) -> None:
    """Write the learned proposer P of a training checkpoint as safetensors (for ``fusekit explain``)."""
    from fusekit.training.trainer import read_checkpoint, save_weights

    state = read_checkpoint(checkpoint)
    if not state["proposer"]:
        return
    config = json.loads(state["config"])
    symmetric = bool(config.get("symmetric_proposer"))
    mean = config.get("symmetric_mean", "arithmetic")
    temperature = float(config.get("proposer_temperature", 1.0))
    learn = config.get("learn_weights", "both")  # "intensity": gradient weights by rule
    wrappers = int(symmetric) + int(temperature != 1.0)  # each wrapper module prefixes the keys with "inner."
    weights = {k[len("inner.") * wrappers:]: v for k, v in state["proposer"].items()}
    save_weights(weights, out, {"format": "fusekit-proposer", "task": state["task"],
                                "loss_proposer": state["loss_proposer"], "steps": state["step"],
                                "symmetric": "1" if symmetric else "0", "symmetric_mean": mean,
                                "temperature": f"{temperature:g}",
                                "learn_weights": learn})


def stage_train(args: argparse.Namespace) -> None:
    """Run every (arm, seed) two at a time, one thread each."""
    (args.work / "ckpt").mkdir(parents=True, exist_ok=True)
    (RESULTS / args.task).mkdir(parents=True, exist_ok=True)
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms
            if args.force or not run_stem(args.task, arm, seed).with_suffix(".safetensors").is_file()]
    running: list[tuple[subprocess.Popen, str, int, object]] = []
    failed = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while jobs or running:
        while jobs and len(running) < args.parallel:
            arm, seed = jobs.pop(0)
            cmd = train_command(args.task, arm, seed, args.work, resume=not args.force)
            print(f"[{time.strftime('%H:%M:%S')}] " + " ".join(cmd), flush=True)
            log = open(run_stem(args.task, arm, seed).with_suffix(".log"), "a" if "--resume" in cmd else "w")
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), arm, seed, log))
        time.sleep(5)
        for item in list(running):
            proc, arm, seed, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            print(f"[{time.strftime('%H:%M:%S')}] {arm} seed {seed}: exit {proc.returncode}", flush=True)
            if proc.returncode:
                failed.append(f"{arm}-seed{seed}")
            elif arm != "fixed":
                export_proposer(args.work / "ckpt" / f"{args.task}-{arm}-seed{seed}.ckpt",
                                run_stem(args.task, arm, seed).with_suffix(".proposer.safetensors"))
    if failed:
        raise SystemExit(f"training failed: {', '.join(failed)}; see {RESULTS / args.task}/*.log")


def runs_in(task: str) -> dict[str, Path]:
    """label (``arm-seedS``) -> weights of every finished run of ``task``."""
    return {p.name[:-len(".safetensors")]: p for p in sorted((RESULTS / task).glob("*-seed*.safetensors"))
            if not p.name.endswith(".proposer.safetensors")}


def stage_score(args: argparse.Namespace) -> None:
    """Fuse and score every run; write the section with per-arm mean ± half-range over seeds."""
    runs = runs_in(args.task)
    if args.only:  # a quick look at some arms: printed, never written over the full table
        runs = {label: w for label, w in runs.items() if label.rsplit("-seed", 1)[0] in args.only}
        args.no_write = True
    if not runs:
        raise SystemExit(f"no runs in {RESULTS / args.task}; run the train stage first")
    labels = list(runs)
    arms = sorted({label.rsplit("-seed", 1)[0] for label in labels}, key=lambda a: list(ARMS).index(a)
                  if a in ARMS else 99)
    splits = suite.splits(args.task)
    digest = hashlib.sha256("_".join(labels).encode()).hexdigest()[:12]  # many runs overflow a file name
    # task mean (unweighted over splits) per profile, arm, seed; a split's tables are reused when there
    per_run: dict[str, dict[str, list[float]]] = {}
    fused = {label: Run("refusion", {"weights": str(w)}) for label, w in runs.items()}
    for profile in PROFILES:
        scores = compare(splits, fused, args.work / "fused", profile=profile, metrics=suite.METRICS, jobs=args.jobs,
                         reuse=True, log=print,
                         table=lambda s, p: args.work / "csv" / f"{s.dataset}-{p}-{len(labels)}runs-{digest}.csv")
        means = [sc.means() for sc in scores.values()]
        per_run[profile] = {label: task_mean([m[label] for m in means]) for label in labels}
    text = report(args.task, arms, labels, per_run, splits)
    print(text)
    if not args.no_write:
        write_section(f"meta-recipe-{args.task}", text, REPO / "BENCHMARKS.md")


def report(task: str, arms: list[str], labels: list[str], per_run: dict, splits: list) -> str:
    cards = {label: json.loads((RESULTS / task / f"{label}.json").read_text()) for label in labels}
    secs = "; ".join(f"{label} {cards[label].get('train_seconds')} s ({cards[label].get('steps')} steps)"
                     for label in labels)
    seeds = sorted({str(c.get("seed")) for c in cards.values()})
    mark = f"meta-recipe-{task}"
    lines = [f"<!-- begin {mark} -->",
             f"## Learned vs fixed loss under the authors' recipe, from random weights, {task} "
             "(`benchmarks/meta_recipe.py`)", "",
             f"Scored {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}. Every arm: `fusekit train "
             f"{' '.join(SCALED[:SCALED.index('--threads')])} --lambda-grad {LAMBDA[task]:g}` from random weights, seeds "
             f"{', '.join(seeds)}; each arm makes the same 3,600 fuser updates on the same batches. "
             "Arms: " + "; ".join(f"**{a}** `{' '.join(ARMS[a])}`" for a in arms if a in ARMS) + ". "
             f"Training time (one CPU thread each, 2-5 runs sharing the 2 cores): {secs}. Task mean = unweighted mean "
             f"over the test splits ({', '.join(s.dataset for s in splits)}); value = mean over seeds "
             "± half the range. Every metric higher is better.", ""]
    for profile in PROFILES:
        head = suite.HEAD
        lines += [f"**{task}, task mean, `{profile}` profile**", "",
                  "| arm | " + " | ".join(head) + " | beats fixed on |", "|---|" + "---|" * (len(head) + 1)]
        if profile == "cddfuse":
            ym = task_mean([suite.YARDSTICK[s.dataset] for s in splits])
            lines.append("| *yardstick (authors' ckpt)* | " + " | ".join(fmt(v) for v in ym) + " | |")
        fixed_mean = None
        for arm in arms:
            values = [per_run[profile][label] for label in labels if label.rsplit("-seed", 1)[0] == arm]
            mean, spread = mean_spread(values)
            if arm == "fixed":
                fixed_mean = mean
            wins = "" if arm == "fixed" or fixed_mean is None else \
                f"{sum(a > b for a, b in zip(mean, fixed_mean))}/9"
            cells = [f"{fmt(m)} ± {fmt(s)}" for m, s in zip(mean, spread)]
            lines.append(f"| {arm} (n={len(values)}) | " + " | ".join(cells) + f" | {wins} |")
            if len(values) > 2 and fixed_mean is not None:  # a replicated arm: each seed on its own
                for label in (label for label in labels if label.rsplit("-seed", 1)[0] == arm):
                    one = per_run[profile][label]
                    lines.append(f"| *{arm}, seed {label.rsplit('-seed', 1)[1]}* | " + " | ".join(fmt(v) for v in one)
                                 + f" | {sum(a > b for a, b in zip(one, fixed_mean))}/9 |")
        lines.append("")
    lines.append(f"<!-- end {mark} -->")
    return "\n".join(lines)


def stage_sheet(args: argparse.Namespace) -> None:
    """``docs/meta_recipe_<task>.png``: sources | one column per arm (seed ``--sheet-seed``), the suite's scenes."""
    labels = [label for label in runs_in(args.task) if label.endswith(f"-seed{args.sheet_seed}")]
    scenes = suite.sheet_scenes(args.task)
    out = runs_sheet(REPO / "docs" / f"meta_recipe_{args.task}.png", scenes, args.work / "fused", labels, height=160)
    print(f"wrote {out}: " + " | ".join(list(scenes[-1][0].sources) + labels))


def stage_maps(args: argparse.Namespace) -> None:
    """``docs/meta_recipe_<task>_maps.png``: per learned arm (seed ``--sheet-seed``) the explain figure
    of the first scene of the task's sheet (sources, fused image, proposed weight maps)."""
    import numpy as np
    import torch
    import fusekit
    from fusekit import color, io
    from fusekit.api import fuse_images
    from fusekit.explain import explain_figure
    from fusekit_refusion.fuser import load_proposer

    split, name = suite.sheet_scenes(args.task)[0]
    dataset, sources = split.dataset, split.sources
    loaded = [io.load_image(path) for path in split.sets()[name]]
    lumas = torch.from_numpy(np.stack([color.luminance(im.data) for im in loaded])[None].astype(np.float32))
    figures = []
    for label, weights in runs_in(args.task).items():
        proposer_file = weights.with_name(weights.name.replace(".safetensors", ".proposer.safetensors"))
        if not label.endswith(f"-seed{args.sheet_seed}") or not proposer_file.is_file():
            continue
        with torch.inference_mode():
            w_int, w_grad = load_proposer(proposer_file)(lumas)
        fused = fuse_images(fusekit.get_fuser("refusion", task=args.task, weights=str(weights)),
                            [im.data for im in loaded])
        figures.append(explain_figure([im.data for im in loaded], fused, w_int[0, 0].numpy(),
                                      w_grad[0, 0].numpy(), list(sources), height=180,
                                      title=f"{label} ({dataset}/{name})"))
    width = max(f.shape[1] for f in figures)
    stacked = np.concatenate([np.pad(f, ((0, 8), (0, width - f.shape[1]), (0, 0)), constant_values=255)
                              for f in figures])
    out = REPO / "docs" / f"meta_recipe_{args.task}_maps.png"
    io.write_image(out, stacked.astype(np.float32) / 255)
    from PIL import Image  # 256 dithered colours: a quarter of the size, and the colour bar stays smooth

    Image.open(out).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)
    out.chmod(0o644)
    print(f"wrote {out}: {len(figures)} learned arms, scene {dataset}/{name}")


def stage_mapstats(args: argparse.Namespace) -> None:
    """Section ``meta-recipe-maps-<task>``: what each learned run's proposer asks for on whole test images.

    Per run, over the first ``--pairs`` pairs of each test split: the intensity map's mean weight of the
    first source, its distance from an even split (mean ``|w - 0.5|``; 0 = even blend, 0.5 = one-hot
    selection), its entropy (bits), and the share of clearly different pixels where the larger intensity
    weight goes to the sharper / brighter source (0.5 = chance), from
    :func:`fusekit.training.diagnostics.weight_map_stats`.
    """
    import numpy as np
    import torch

    from fusekit import color, io
    from fusekit.training.diagnostics import weight_map_stats
    from fusekit_refusion.fuser import load_proposer

    torch.set_num_threads(max(1, args.jobs))
    rows = []
    for label, weights in runs_in(args.task).items():
        proposer_file = weights.with_name(weights.name.replace(".safetensors", ".proposer.safetensors"))
        if not proposer_file.is_file():
            continue
        net = load_proposer(proposer_file)
        stats: list[dict[str, float]] = []
        for split in suite.splits(args.task):
            sets = split.sets()
            for name in sorted(sets)[:args.pairs]:
                lumas = np.stack([color.luminance(io.load_image(p).data) for p in sets[name]])
                x = torch.from_numpy(lumas[None].astype(np.float32))
                with torch.inference_mode():
                    w_int, w_grad = net(x)
                one = weight_map_stats(x, w_int, w_grad)
                one["int_strength"] = float((w_int[:, 0] - 0.5).abs().mean())
                stats.append(one)
        mean = {k: float(np.nanmean([s[k] for s in stats])) for k in stats[0]}
        rows.append(f"| {label} | {mean['int_first']:.3f} | {mean['int_strength']:.3f} | "
                    f"{mean['int_entropy']:.3f} | {mean['int_to_sharper']:.3f} | {mean['int_to_brighter']:.3f} |")
    mark = f"meta-recipe-maps-{args.task}"
    text = "\n".join([
        f"<!-- begin {mark} -->",
        f"## What the learned proposers ask for on whole images, {args.task} (`benchmarks/meta_recipe.py mapstats`)",
        "", f"Computed {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC with `python benchmarks/meta_recipe.py "
        f"mapstats --task {args.task} --pairs {args.pairs}`: each learned run's exported proposer (as `fusekit "
        "explain` loads it: symmetric, sharpened, intensity-only as trained) on the first "
        f"{args.pairs} pairs of each test split. Intensity map only: *first* = mean weight of the first "
        "source; *strength* = mean |w - 0.5| (0: even blend, 0.5: one-hot selection); *entropy* in bits; "
        "*to sharper* / *to brighter* = share of clearly different pixels whose larger weight goes to the "
        "source with the larger Sobel gradient / intensity (0.5 = chance).", "",
        "| run | first | strength | entropy | to sharper | to brighter |", "|---|---|---|---|---|---|",
        *rows, "", f"<!-- end {mark} -->"])
    print(text)
    if not args.no_write:
        write_section(mark, text, REPO / "BENCHMARKS.md")


def stage_ship(args: argparse.Namespace) -> None:
    """Install run ``--ship-run`` (e.g. ``learned-seed1``) as the task's weights variant ``--variant``
    (default ``learned``),
    with its loss proposer, in ``plugins/fusekit_refusion/weights/registry.json``; ``--make-default``
    makes it the task's default (only where it beat the fixed arm, issue 21's rule)."""
    import shutil

    from fusekit_refusion.weights import REGISTRY, WEIGHTS_DIR, sha256_of

    stem = RESULTS / args.task / args.ship_run
    weights, proposer = stem.with_suffix(".safetensors"), stem.with_suffix(".proposer.safetensors")
    card = json.loads(stem.with_suffix(".json").read_text())
    if not proposer.is_file():
        raise SystemExit(f"{proposer} is missing: only a learned run with an exported proposer can ship")
    target = WEIGHTS_DIR / f"refusion_{args.task}_{args.variant}.safetensors"
    target_p = WEIGHTS_DIR / f"refusion_{args.task}_{args.variant}.proposer.safetensors"
    shutil.copyfile(weights, target)
    shutil.copyfile(proposer, target_p)
    card["weights"] = target.name
    card["log"] = str(stem.with_suffix(".csv").relative_to(REPO))
    card["benchmark"] = f"BENCHMARKS.md, section meta-recipe-{args.task} (benchmarks/meta_recipe.py)"
    registry = json.loads(REGISTRY.read_text())
    entries = [e for e in registry["weights"] if not (e["task"] == args.task and e.get("variant") == args.variant)]
    for e in entries:
        if e["task"] == args.task:
            e.setdefault("variant", "fixed")
            if args.make_default:
                e["default"] = False
    entries.append({"task": args.task, "variant": args.variant, "default": bool(args.make_default),
                    "file": target.name, "sha256": sha256_of(target), "proposer": target_p.name,
                    "proposer_sha256": sha256_of(target_p), "card": card})
    registry["weights"] = entries
    REGISTRY.write_text(json.dumps(registry, indent=2) + "\n")
    print(f"installed {args.ship_run} as {args.task}/{args.variant}" + (" (default)" if args.make_default else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["train", "score", "sheet", "maps", "mapstats", "ship"])
    parser.add_argument("--task", required=True, choices=["ivif", "mif", "mfif", "meif"])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS)[:3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--work", type=Path, default=REPO / "gpu_out" / "meta",
                        help="checkpoints, patches, fused images and score tables (not kept in the repository)")
    parser.add_argument("--parallel", type=int, default=2, help="train stage: runs at once")
    parser.add_argument("--force", action="store_true", help="train stage: retrain runs that exist")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sheet-seed", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=6, help="mapstats stage: test pairs per split")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(ARMS), default=None,
                        help="score stage: these arms only, printed (not written)")
    parser.add_argument("--ship-run", default="learned-seed1", help="ship stage: run to install")
    parser.add_argument("--variant", default="learned", help="ship stage: variant name to install as")
    parser.add_argument("--make-default", action="store_true", help="ship stage: make it the task's default")
    args = parser.parse_args(argv)
    globals()[f"stage_{args.stage}"](args)


if __name__ == "__main__":
    main()
