"""Learned loss vs fixed loss at equal steps, from the same starting weights.

ReFusion's claim is that a meta-learned loss trains a better fusion network
than a hand-made one. This benchmark tests it as a controlled experiment:
both arms start from the same checkpoint (fuser and reconstructor of the
shipped fixed-loss run), use the same seed, data, batches and step count,
and differ only in the loss proposer:

* **fixed**: ``fusekit train --loss-proposer fixed --init START``
* **learned**: ``fusekit train --loss-proposer refusion --init START
  --proposer-warmup W``: the proposer is first fitted to the fixed loss's
  weights, then meta-learned (so any difference is what meta-learning
  changed).

Stages::

    python benchmarks/learned_vs_fixed.py train --task ivif --start START.ckpt --runs RUNS
    python benchmarks/learned_vs_fixed.py score --task ivif --runs RUNS
    python benchmarks/learned_vs_fixed.py train --task ivif --start START.ckpt --runs RUNS2 --seed 2
    python benchmarks/learned_vs_fixed.py train --task ivif --start START.ckpt --runs RUNS3 --seed 2 --steps 800

``train`` runs both arms side by side (one CPU thread each; settings below).
``score`` fuses the task's test splits with both results and scores them
in both profiles (:func:`fusekit.experiments.compare`, cached in
``RUNS/results`` with the file names of ``refusion_results.py``; the start
weights' scores are read from ``--start-results``), and writes the ``cddfuse``
tables to the ``learned-vs-fixed-<task>`` section of
``BENCHMARKS.md`` (``--no-write`` prints it only). ``sheet`` writes
``docs/learned_vs_fixed_<task>.png`` (sources | start | fixed | learned).

Reference: H. Bai et al., "ReFusion", IJCV 2024, arXiv:2312.07943.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
from pathlib import Path

from fusekit.experiments import (Run, compare, fmt, read_scores, run_folder, run_side_by_side, scene_rows,
                                 sheet_titles, suite, write_section, write_sheet)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"refusion-learned": "refusion", "refusion-fixed": "fixed"}  #: score label -> arm

ARMS = ("fixed", "refusion")
SETTINGS = ["--steps", "400", "--batch-size", "4", "--patch-size", "64", "--lr", "2e-4",
            "--meta-steps", "5", "--fusion-steps", "10", "--threads", "1",
            "--checkpoint-every", "100", "--no-progress"]
LEARNED_ONLY = ["--proposer-warmup", "300", "--lr-proposer", "3e-4"]


def run_name(task: str, arm: str) -> str:
    return f"ft-{task}-{arm}"


def settings(steps: int, lambda_grad: float = 1.0) -> list[str]:
    """:data:`SETTINGS` with ``--steps`` set to ``steps`` (and ``--lambda-grad`` when not 1)."""
    out = list(SETTINGS)
    out[out.index("--steps") + 1] = str(steps)
    return out + ([] if lambda_grad == 1.0 else ["--lambda-grad", f"{lambda_grad:g}"])


def variant(seed: int, steps: int, learn_weights: str = "both", rec_reduction: str = "max",
            lambda_grad: float = 1.0) -> str:
    """Suffix naming a repeat run: '' for seed 1, 400 steps, both weights learned, the max
    reconstruction loss and gradient weight 1, else '-seed2', '-800steps', '-intensity-only',
    '-mean-rec', '-lg0.5', ..."""
    return (("" if seed == 1 else f"-seed{seed}") + ("" if steps == 400 else f"-{steps}steps")
            + ("" if learn_weights == "both" else f"-{learn_weights}-only")
            + ("" if rec_reduction == "max" else f"-{rec_reduction}-rec")
            + ("" if lambda_grad == 1.0 else f"-lg{lambda_grad:g}"))


def learned_only(learn_weights: str, rec_reduction: str = "max") -> list[str]:
    """The learned arm's extra options."""
    return (LEARNED_ONLY + ([] if learn_weights == "both" else ["--learn-weights", learn_weights])
            + ([] if rec_reduction == "max" else ["--rec-reduction", rec_reduction]))


def stage_train(args: argparse.Namespace) -> None:
    """Both arms at once, one thread each; logs and cards in RUNS."""
    jobs = []
    for arm in args.arms:
        name = run_name(args.task, arm)
        jobs.append((["fusekit", "train", "--task", args.task, "--patches", str(args.patches), "--init",
                      str(args.start), "--loss-proposer", arm, *settings(args.steps, args.lambda_grad),
                      "--seed", str(args.seed),
                      *(learned_only(args.learn_weights, args.rec_reduction) if arm == "refusion" else []),
                      "--log", str(args.runs / f"{name}.csv"), "-o", str(args.runs / f"{name}.safetensors")],
                     args.runs / f"{name}.log"))
    run_side_by_side(jobs, args.runs)


def stage_score(args: argparse.Namespace) -> None:
    """Fuse and score the start weights and both arms on the task's test splits."""
    runs = {}
    for label, arm in VARIANTS.items():
        path = args.runs / f"{run_name(args.task, arm)}.safetensors"
        if not path.is_file():
            raise SystemExit(f"{path} is missing; run the train stage first")
        runs[label] = Run("refusion", {"weights": str(path)})
    work = args.runs / "results"
    for profile in ("standard", "cddfuse"):  # tables named as refusion_results.py names them, reused when there
        scores = compare(suite.splits(args.task), runs, work, profile=profile, metrics=suite.METRICS,
                         jobs=args.jobs, reuse=True, log=print,
                         table=lambda s, p: work / "csv" / f"{s.dataset}-{len(s.sets())}-{p}-refusion.csv")
    rows: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for split, sc in scores.items():
        means, counts[split.dataset] = sc.means(), len(sc.images())
        start = read_scores(sorted((args.start_results / "csv").glob(f"{split.dataset}-*-cddfuse-*.csv")))
        rows[split.dataset] = {"fixed": means["refusion-fixed"], "learned": means["refusion-learned"],
                               "start": start.means()["refusion-fixed"]}
    mark, text = report(args, rows, counts)
    print(text)
    if not args.no_write:
        write_section(mark, text, REPO / "BENCHMARKS.md")


def stage_sheet(args: argparse.Namespace) -> None:
    """``docs/learned_vs_fixed_<task>.png``: sources | start | fixed | learned, scenes of the suite."""
    scenes = suite.sheet_scenes(args.task)
    rows = scene_rows(scenes, lambda split: [run_folder(args.start_results, split, "refusion-fixed"),
                                             run_folder(args.runs / "results", split, "refusion-fixed"),
                                             run_folder(args.runs / "results", split, "refusion-learned")])
    suffix = variant(args.seed, args.steps, args.learn_weights, args.rec_reduction, args.lambda_grad)
    out = write_sheet(REPO / "docs" / f"learned_vs_fixed_{args.task}{suffix.replace('-', '_')}.png", rows,
                      height=150, titles=sheet_titles([s for s, _ in scenes], ["start", "fixed", "learned"]),
                      row_labels=[f"{s.dataset}/{n}" for s, n in scenes])
    print(f"wrote {out}: " + " | ".join(list(scenes[-1][0].sources) + ["start", "fixed", "learned"]))


def stage_weights(args: argparse.Namespace) -> None:
    """Mean loss weights of the first source on each test split: fixed loss vs learned proposer.

    The learned proposer is the learned arm's final checkpoint; each split's
    first ``--images`` pairs are run at full size, and the weights are
    averaged over all their pixels (the intensity and gradient weights of
    the first source; the second source gets 1 minus them).
    """
    import numpy as np
    import torch

    from fusekit.plugins import get_host
    from fusekit.training.data import find_pairs, load_pairs
    from fusekit.training.fixed import FixedLossProposer
    from fusekit.training.trainer import read_checkpoint

    state = read_checkpoint(args.runs / f"{run_name(args.task, 'refusion')}.ckpt")
    # an intensity-only run trains with the fixed loss's gradient weights, whatever its proposer's head says
    intensity_only = json.loads(state["config"]).get("learn_weights") == "intensity"
    learned = get_host().loss_proposers.get("refusion")().build_network().eval()
    learned.load_state_dict(state["proposer"])
    fixed = FixedLossProposer(task=args.task).build_network().eval()
    first = suite.splits(args.task)[0].sources[0]
    print(f"{args.task}: mean weight of {first} (intensity / gradient), first {args.images} test pairs per split, "
          f"learned arm after {state['step']} steps"
          + (" (intensity weights learned only: its gradient weights are the fixed loss's)" if intensity_only else ""))
    for split in suite.splits(args.task):
        pairs = find_pairs([split.root], split.task)[:args.images]
        means = {"fixed": np.zeros(2), "learned": np.zeros(2)}
        with torch.no_grad():
            for stack in load_pairs(pairs, 1):
                x = torch.from_numpy(stack)[None]
                for label, net in (("fixed", fixed), ("learned", learned)):
                    w_int, w_grad = net(x)
                    if label == "learned" and intensity_only:
                        w_grad = fixed(x)[1]
                    means[label] += [float(w_int[0, 0].mean()), float(w_grad[0, 0].mean())]
        print(f"  {split.dataset}: " + "; ".join(f"{k} {v[0] / len(pairs):.3f} / {v[1] / len(pairs):.3f}"
                                           for k, v in means.items()))


def _card(args: argparse.Namespace, arm: str) -> dict:
    path = args.runs / f"{run_name(args.task, arm)}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _seed(cards: dict[str, dict]) -> str:
    """The seed the arms were trained with, read from their cards."""
    seeds = {str(c.get("seed", "?")) for c in cards.values()}
    return " / ".join(sorted(seeds))


def report(args: argparse.Namespace, rows: dict[str, dict[str, list[float]]],
           counts: dict[str, int]) -> tuple[str, str]:
    """The section's marker name and its Markdown (seed 1 keeps the plain name)."""
    cards = {arm: _card(args, arm) for arm in ARMS}
    seed = _seed(cards)
    mark = f"learned-vs-fixed-{args.task}" + variant(int(seed) if seed.isdigit() else args.seed, args.steps,
                                                     args.learn_weights, args.rec_reduction, args.lambda_grad)
    secs = {arm: cards[arm].get("train_seconds", "?") for arm in ARMS}
    shown = settings(args.steps, args.lambda_grad)
    shown = shown[:12] + shown[len(SETTINGS):]  # the options that differ between runs, not threads and logging
    lines = [f"<!-- begin {mark} -->",
             f"## Learned vs fixed loss at equal steps, {args.task}"
             + ("" if seed == "1" else f", seed {seed}") + ("" if args.steps == 400 else f", {args.steps} steps")
             + ("" if args.learn_weights == "both" else f", {args.learn_weights} weights learned only")
             + ("" if args.rec_reduction == "max" else f", {args.rec_reduction} reconstruction loss")
             + ("" if args.lambda_grad == 1.0 else f", gradient weight {args.lambda_grad:g}")
             + " (`benchmarks/learned_vs_fixed.py`)", "",
             f"Run {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}. Both arms start from "
             f"`{args.start.name}` (the shipped fixed-loss run's checkpoint), seed {seed}, "
             f"`{' '.join(shown)}`; learned adds `{' '.join(learned_only(args.learn_weights, args.rec_reduction))}`. "
             f"Training time on one CPU thread each, side by side: fixed {secs['fixed']} s, "
             f"learned {secs['refusion']} s. **start** is the shipped weights before fine-tuning. "
             "Means over each full test split, `cddfuse` profile, every metric higher is better.",
             ""]
    total_wins, total = 0, 0
    for dataset, by in rows.items():
        lines += [f"**{args.task}/{dataset}** ({counts[dataset]} images)", "",
                  "| weights | " + " | ".join(suite.HEAD) + " |", "|---|" + "---|" * len(suite.HEAD)]
        lines.append("| *yardstick (authors' ckpt)* | " + " | ".join(fmt(v) for v in suite.YARDSTICK[dataset]) + " |")
        for label in ("start", "fixed", "learned"):
            lines.append(f"| {label} | " + " | ".join(fmt(v) for v in by[label]) + " |")
        wins = [h for h, a, b in zip(suite.HEAD, by["learned"], by["fixed"]) if a > b]
        total_wins += len(wins)
        total += len(suite.HEAD)
        lines += ["", f"Learned beats fixed on {len(wins)}/9: {', '.join(wins) or 'none'}.", ""]
    lines += [f"Overall: learned beats fixed on {total_wins} of {total} split-metric pairs.",
              f"<!-- end {mark} -->"]
    return mark, "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["train", "score", "sheet", "weights"])
    parser.add_argument("--task", required=True, choices=["ivif", "mif", "mfif", "meif"])
    parser.add_argument("--start", type=Path, required=True, help="checkpoint both arms start from")
    parser.add_argument("--start-results", type=Path, default=REPO / "gpu_out" / "results",
                        help="refusion_results.py work folder whose 'refusion-fixed' scores are START's")
    parser.add_argument("--patches", type=Path, default=None, help="default: gpu_data/<task>.npz")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="train stage: which arms to run (default both, side by side)")
    parser.add_argument("--seed", type=int, default=1, help="train stage: seed of both arms")
    parser.add_argument("--steps", type=int, default=400, help="training steps of both arms")
    parser.add_argument("--learn-weights", choices=["both", "intensity"], default="both",
                        help="the learned arm's --learn-weights (an ablation)")
    parser.add_argument("--rec-reduction", choices=["max", "mean"], default="max",
                        help="the learned arm's --rec-reduction (an ablation of the meta-objective)")
    parser.add_argument("--lambda-grad", type=float, default=1.0,
                        help="train stage: final weight of the gradient terms, both arms (the fixed arm of "
                             "benchmarks/loss_balance.py at the same seed and lambda is the same run)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--images", type=int, default=5, help="weights stage: pairs per split")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.patches = args.patches or REPO / "gpu_data" / f"{args.task}.npz"
    if shutil.which("fusekit") is None:
        raise SystemExit("the fusekit command is not on PATH; pip install -e . first")
    globals()[f"stage_{args.stage}"](args)


if __name__ == "__main__":
    main()
