"""Fixed-loss fine-tunes that differ in one training setting, scored side by side.

``loss_balance.py`` varies the gradient term's weight; this benchmark varies
anything else ``fusekit train`` takes (patch size and batch, number of
steps, seed, starting checkpoint) on top of the same settings, and scores
every run in a folder against the issue-6 yardstick with the same tables.
It answers questions like "does the network, trained on 64-pixel patches
but run on whole 640 x 480 images, gain from larger training patches?"
(its transposed attention takes statistics over the whole input) or "do
more fine-tuning steps close the gap to the yardstick?".

Stages::

    python benchmarks/finetune_variants.py train --task ivif --start START.ckpt --runs RUNS \\
        --variant p128b1 "--patch-size 128 --batch-size 1" --variant p96b2 "--patch-size 96 --batch-size 2"
    python benchmarks/finetune_variants.py score --task ivif --runs RUNS [--baseline LABEL]
    python benchmarks/finetune_variants.py sheet --task ivif --runs RUNS [--baseline LABEL]

``train`` runs one ``fusekit train --loss-proposer fixed --init START`` per
``--variant NAME OPTIONS``, side by side, one CPU thread each: the settings
of ``learned_vs_fixed.py`` with ``--lambda-grad`` (default 0.5, the shipped
IVIF balance) and ``--seed``, then OPTIONS, which override them (the last
value of an option wins). The result is ``RUNS/ft-<task>-NAME.safetensors``
with its training card. ``score`` fuses the task's test splits with every
``ft-<task>-*.safetensors`` in RUNS (copy a reference run there, e.g. the
shipped fine-tune as ``ft-ivif-fixed-lg0.5.*``), scores them with
``fusekit eval`` (``cddfuse`` profile) and writes the section
``finetune-variants-<task>-<RUNS folder name>`` of ``BENCHMARKS.md``: a line
per run from its card, then the tables of ``loss_balance.py``. ``sheet``
writes ``docs/finetune_variants_<task>_<RUNS folder name>.png`` (sources |
one column per run).

Reference: H. Bai et al., "ReFusion", IJCV 2024, arXiv:2312.07943.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
from pathlib import Path

from fusekit.experiments import run_side_by_side, suite, write_section

import learned_vs_fixed as lvf
import loss_balance as lb

REPO = Path(__file__).resolve().parents[1]


def run_path(runs: Path, task: str, name: str) -> Path:
    """Weights file of one variant: ``RUNS/ft-ivif-p128b1.safetensors``."""
    return runs / f"ft-{task}-{name}.safetensors"


def split_options(name: str, options: str) -> list[str]:
    """A variant's OPTIONS string as arguments; a one-line error if its quoting is broken."""
    try:
        return shlex.split(options)
    except ValueError as exc:
        raise SystemExit(f"--variant {name}: cannot read its options {options!r} ({exc}); "
                         "quote the whole option list once, e.g. \"--patch-size 128 --batch-size 1\"") from None


def train_command(args: argparse.Namespace, name: str, options: str) -> list[str]:
    """The ``fusekit train`` command line of one variant (its OPTIONS last, so they win)."""
    out = run_path(args.runs, args.task, name)
    return (["fusekit", "train", "--task", args.task, "--patches", str(args.patches), "--init", str(args.start),
             "--loss-proposer", "fixed", *lvf.settings(args.steps, args.lambda_grad), "--seed", str(args.seed)]
            + split_options(name, options)
            + ["--log", str(out.with_suffix(".csv")), "-o", str(out)])


def stage_train(args: argparse.Namespace) -> None:
    """Every variant at once, one thread each; logs and cards in RUNS."""
    if not args.variant:
        raise SystemExit("train needs at least one --variant NAME OPTIONS")
    run_side_by_side([(train_command(args, name, options),
                       run_path(args.runs, args.task, name).with_suffix(".log"))
                      for name, options in args.variant], args.runs)


def runs_in(args: argparse.Namespace) -> dict[str, Path]:
    """Label -> weights file for every run in RUNS; ``--baseline`` first, then by name."""
    prefix = f"ft-{args.task}-"
    found = {p.stem[len(prefix):]: p for p in sorted(args.runs.glob(f"{prefix}*.safetensors"))}
    if args.baseline is not None:
        if args.baseline not in found:
            raise SystemExit(f"--baseline {args.baseline}: no {prefix}{args.baseline}.safetensors in {args.runs}")
        found = {args.baseline: found[args.baseline], **found}
    return found


def describe(label: str, weights: Path) -> str:
    """One Markdown bullet with a run's training settings, from its card (and the runs it started from)."""
    card_path = weights.with_suffix(".json")
    if not card_path.is_file():
        return f"- **{label}**: no training card"
    card = json.loads(card_path.read_text())
    cfg = card.get("config", {})
    start = f"from `{Path(str(card['init'])).name}`" if card.get("init") else "from random weights"
    stopped = " (stopped by --max-minutes)" if card.get("stopped") == "time" else ""
    lr = cfg.get("lr")
    earlier = []
    parent = card.get("init_card")
    while parent:
        earlier.append(f"{parent.get('steps', '?')} steps on {parent.get('device', '?')} "
                       f"({parent.get('train_seconds', '?')} s)")
        parent = parent.get("init_card")
    history = f" (which is, oldest first: {', then '.join(reversed(earlier))})" if earlier else ""
    return (f"- **{label}**: {start}{history}, {card.get('steps', '?')} steps{stopped} of "
            f"{cfg.get('batch_size', '?')} x {cfg.get('patch_size', '?')} px patches, "
            f"lr {lr if lr is None else format(lr, 'g')}, lambda_grad {cfg.get('lambda_grad', '?')}, "
            f"seed {card.get('seed', '?')}, {card.get('train_seconds', '?')} s on {card.get('machine', '?')}")


def section_mark(args: argparse.Namespace) -> str:
    return f"finetune-variants-{args.task}-{args.runs.resolve().name}"


def stage_score(args: argparse.Namespace) -> None:
    """Fuse and score every run in RUNS; write the section."""
    runs = runs_in(args)
    if not runs:
        raise SystemExit(f"no ft-{args.task}-*.safetensors in {args.runs}")
    rows, counts = suite.compare_runs(args.task, lb.weights_runs(runs), args.runs / "results", tag="variants",
                                      jobs=args.jobs)
    mark = section_mark(args)
    lines = [f"<!-- begin {mark} -->",
             f"## Fine-tune variants, {args.task}, `{args.runs.resolve().name}` (`benchmarks/finetune_variants.py`)",
             "",
             f"Scored {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}. Fixed-loss fine-tunes (settings of "
             f"`learned_vs_fixed.py`, `{' '.join(lvf.SETTINGS[:8])}` unless the run "
             "says otherwise). Means over each full test split, `cddfuse` profile, every metric higher is "
             "better; **within 5%**: metrics (of 9) at least 95% of the yardstick.", ""]
    finish_section(args, mark, lines, runs, rows, counts)


def finish_section(args: argparse.Namespace, mark: str, head: list[str], runs: dict[str, Path],
                   rows: dict[str, dict[str, list[float]]], counts: dict[str, int]) -> None:
    """Complete a BENCHMARKS section of scored runs: ``head``, one line per run, the tables; print, write.

    Parameters
    ----------
    args : argparse.Namespace
        ``task`` and ``no_write`` (print only) are read.
    mark : str
        Section marker, ``head`` opens with its ``begin`` comment.
    head : list of str
        Title and introduction lines.
    runs : dict of str to Path
        Label -> weights file, in table order.
    rows, counts
        What :func:`fusekit.experiments.suite.compare_runs` returned.
    """
    lines = head + [describe(label, path) for label, path in runs.items()] + [""]
    lines += suite.yardstick_tables(args.task, list(runs), rows, counts, "no setting was chosen on")
    lines.append(f"<!-- end {mark} -->")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(mark, text, REPO / "BENCHMARKS.md")


def stage_sheet(args: argparse.Namespace) -> None:
    """``docs/finetune_variants_<task>_<RUNS name>.png``: sources | one column per run (after ``score``)."""
    lb.write_sheet(args, runs_in(args), REPO / "docs" / f"finetune_variants_{args.task}_{args.runs.resolve().name}.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    lb.add_run_args(parser, ["train", "score", "sheet"])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OPTIONS"), default=[],
                        help="train stage: a run named NAME with extra `fusekit train` OPTIONS (repeatable)")
    parser.add_argument("--lambda-grad", type=float, default=0.5, help="train stage: gradient-term weight")
    parser.add_argument("--seed", type=int, default=2, help="train stage: seed (an OPTIONS --seed wins)")
    parser.add_argument("--steps", type=int, default=400, help="train stage: steps (an OPTIONS --steps wins)")
    parser.add_argument("--baseline", help="score and sheet stages: the run listed first, the reference of the "
                        "check splits")
    lb.run_stage(parser, argv, {"train": stage_train, "score": stage_score, "sheet": stage_sheet})


if __name__ == "__main__":
    main()
