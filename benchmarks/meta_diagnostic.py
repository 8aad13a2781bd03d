"""Meta-gradient diagnostic of training checkpoints: does the loss proposer learn, or follow noise?

For each checkpoint (a learnable proposer's), rebuilds the run's trainer,
restores it, and prints :func:`fusekit.training.diagnostics.meta_gradient_report`
over ``--batches`` meta batches drawn from the run's own training data:
signal-to-noise of P's meta-gradient and of the direct term ``dL_fuse/dP``,
their size ratio and cosine, and statistics of the proposed weight maps.

Usage::

    python benchmarks/meta_diagnostic.py --task mfif --patches gpu_out/meta/data/mfif.npz \\
        --label "authors, step 4800" gpu_out/meta/ckpt/mfif-learned-seed1.ckpt [...] [--section NAME]

With ``--section NAME`` the table is written to ``BENCHMARKS.md`` (section
``meta-diagnostic-NAME``), else printed.

Reference: H. Bai et al., "ReFusion", IJCV 2024, arXiv:2312.07943.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
from pathlib import Path

from fusekit.experiments import write_section

REPO = Path(__file__).resolve().parents[1]

COLUMNS = [("meta_snr", "meta SNR", 3), ("direct_snr", "direct SNR", 3), ("direct_over_meta", "|direct|/|meta|", 0),
           ("cosine", "cos(meta, direct)", 2), ("int_first", "w_int src0", 3), ("grad_first", "w_grad src0", 3),
           ("int_entropy", "H(w_int) bits", 3), ("grad_entropy", "H(w_grad) bits", 3),
           ("int_to_brighter", "w_int to brighter", 3), ("int_to_sharper", "w_int to sharper", 3),
           ("grad_to_sharper", "w_grad to sharper", 3), ("meta_rec", "L_rec outer", 4)]


def trainer_from_checkpoint(path: Path, data: list[str], patches: list[Path]):
    """A :class:`Trainer` with the run's networks, settings and data, restored from ``path``."""
    from fusekit.plugins import get_host
    from fusekit.training.data import PatchSampler, find_pairs, load_pairs, load_patch_file
    from fusekit.training.trainer import TrainConfig, Trainer, read_checkpoint

    state = read_checkpoint(path)
    config = TrainConfig(**json.loads(state["config"]))
    host = get_host()
    images = []
    if data:
        images.extend(load_pairs(find_pairs(data, config.task), config.patch_size))
    for p in patches:
        images.extend(list(load_patch_file(p, config.patch_size)))
    sampler = PatchSampler(images, config.patch_size, seed=config.seed + 1000, augment=True)
    parts = []
    for kind, registry in (("method", host.fusers), ("loss_proposer", host.loss_proposers),
                           ("reconstructor", host.reconstructors)):
        cls = registry.get(state[kind])
        try:
            parts.append(cls(task=config.task))
        except TypeError:
            parts.append(cls())
    config.max_minutes = None
    trainer = Trainer(*parts, sampler, config, names={"method": state["method"],
                                                      "loss_proposer": state["loss_proposer"],
                                                      "reconstructor": state["reconstructor"]}, progress=False)
    trainer.load_checkpoint(path)
    return trainer


def fmt(value: float, digits: int) -> str:
    if value != value:
        return "-"
    if digits == 0:
        return f"{value:.3g}" if value < 1e4 else f"{value:.2e}"
    return f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--label", action="append", default=[], help="row label per checkpoint, in order")
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", nargs="*", default=[], help="training folders of the run")
    parser.add_argument("--patches", nargs="*", type=Path, default=[], help="patch files of the run")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--section", default=None)
    parser.add_argument("--note", default="", help="text under the section's heading")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    from fusekit.training.diagnostics import meta_gradient_report

    rows = []
    for i, path in enumerate(args.checkpoints):
        torch.manual_seed(args.seed)
        trainer = trainer_from_checkpoint(path, args.data, args.patches)
        report = meta_gradient_report(trainer, batches=args.batches)
        label = args.label[i] if i < len(args.label) else path.stem
        rows.append((label, trainer.step, report))
        print(label, json.dumps({k: round(v, 6) for k, v in report.items()}), flush=True)
    lines = ["| checkpoint | step | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for label, step, report in rows:
        lines.append(f"| {label} | {step} | " + " | ".join(fmt(report[k], d) for k, _, d in COLUMNS) + " |")
    table = "\n".join(lines)
    print(table)
    if args.section:
        mark = f"meta-diagnostic-{args.section}"
        floor = 1 / args.batches ** 0.5
        text = "\n".join([
            f"<!-- begin {mark} -->",
            f"## Meta-gradient diagnostic, {args.section} (`benchmarks/meta_diagnostic.py`)", "",
            f"Run {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}: `python benchmarks/meta_diagnostic.py "
            f"--task {args.task} --batches {args.batches} ...` over {args.batches} meta batches per checkpoint "
            f"(noise floor of an SNR: 1/sqrt({args.batches}) = {floor:.3f}). Weight statistics on the "
            "canonical-order half of the batches; *src0* is the task's first source.", "",
            *( [args.note, ""] if args.note else []),
            table, f"<!-- end {mark} -->"])
        write_section(mark, text, REPO / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
