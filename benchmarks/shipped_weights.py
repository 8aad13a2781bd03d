"""Score every shipped ReFusion weights variant as fusekit runs it today, and draw a labelled sheet per task.

The registry (``plugins/fusekit_refusion/weights/registry.json``) is the kept
artefact: its weights files and training cards. ``score`` fuses each task's
test splits (and the IVIF check splits) with every variant through
``fusekit.get_fuser`` -- the mirrored-border inference included -- scores them
with ``fusekit eval`` (``cddfuse`` profile, against the authors' checkpoints'
yardstick) and writes the section ``shipped-weights`` of ``BENCHMARKS.md``,
with how each variant was trained (loss, recipe, seed, steps, time, device),
read from its card. ``sheet`` writes ``docs/shipped_<task>.png``: per scene
the sources and every variant, labelled, and below each a 4x magnified
top-left corner so border artefacts show.

Usage::

    python benchmarks/shipped_weights.py score [--jobs 2]
    python benchmarks/shipped_weights.py sheet
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
from pathlib import Path

from fusekit.experiments import Run, run_folder, scene_rows, suite, write_section

REPO = Path(__file__).resolve().parents[1]

TASKS = ("ivif", "mif", "mfif", "meif")
CORNER, ZOOM, TILE = 40, 4, 200


def variants(task: str) -> dict[str, object]:
    """Variant name -> registry entry, the default first."""
    from fusekit_refusion.weights import variants_for

    return {e.variant: e for e in variants_for(task)}


def how_trained(task: str, name: str, entry) -> str:
    """One line from a training card: loss, recipe, seed, steps, time, machine."""
    card = entry.card
    cfg = card.get("config", {})
    start = f"fine-tuned from earlier weights ({card['init']})" if card.get("init") else "from random weights"
    return (f"- **{task}/{name}**{' (default)' if entry is next(iter(variants(task).values())) else ''}: "
            f"loss `{card.get('loss_proposer', '?')}`, recipe `{cfg.get('recipe', 'fusekit')}`, {start}, "
            f"seed {card.get('seed', '?')}, {card.get('steps', '?')} steps of {cfg.get('batch_size', '?')} x "
            f"{cfg.get('patch_size', '?')} px patches, lr {cfg.get('lr', '?')}, lambda_grad "
            f"{cfg.get('lambda_grad', '?')}, {card.get('train_seconds', '?')} s on {card.get('machine', '?')}")


def stage_score(args: argparse.Namespace) -> None:
    lines = ["<!-- begin shipped-weights -->",
             "## The shipped weights as fusekit runs them now (`benchmarks/shipped_weights.py`)", "",
             f"Scored {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, from the registry's files: every "
             "variant of every task, fused through `fusekit.get_fuser` (sources mirrored by 13 px at the borders "
             "for fusekit's own weights), `cddfuse` profile, means over each full test split, every metric higher "
             "is better; **within 5%**: metrics (of 9) at least 95% of the authors' checkpoint. Sheets: "
             "`docs/shipped_<task>.png` (sources and every variant, labelled, each with its top-left corner "
             "magnified 4x: no border stripes on any task). For the shipped weights this section supersedes "
             "the tables scored before the mirrored border (`refusion-results`, `cpu-budget-*`, "
             "`learned-vs-fixed-*`); the meta-recipe tables were scored with it.", "",
             "How each variant was trained (from its card):", ""]
    for task in TASKS:
        lines += [how_trained(task, name, entry) for name, entry in variants(task).items()]
    lines.append("")
    for task in TASKS:
        runs = {name: Run("refusion", {"weights": str(entry.path)}) for name, entry in variants(task).items()}
        rows, counts = suite.compare_runs(task, runs, args.work / "results", tag="shipped", jobs=args.jobs)
        lines += suite.yardstick_tables(task, list(runs), rows, counts, "that no weights were chosen on") + [""]
    lines.append("<!-- end shipped-weights -->")
    text = "\n".join(lines)
    print(text)
    write_section("shipped-weights", text, REPO / "BENCHMARKS.md")


def _labelled(image, text: str, size: tuple[int, int]):
    import numpy as np
    from PIL import Image, ImageDraw

    rgb = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image[..., :3]
    tile = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype("uint8")).resize(size, Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    box = draw.textbbox((4, 2), text)
    draw.rectangle((0, 0, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return tile


def stage_sheet(args: argparse.Namespace) -> None:
    from PIL import Image

    for task in TASKS:
        names = list(variants(task))
        tiles = []
        scenes = suite.sheet_scenes(task)
        for images, (split, scene) in zip(scene_rows(scenes, lambda split: [
                run_folder(args.work / "results", split, n) for n in names]), scenes):
            dataset, sources = split.dataset, split.sources
            labels = [f"{s} ({dataset}/{scene})" if i == 0 else s for i, s in enumerate(sources)] + \
                     [f"refusion --weights {n}" for n in names]
            h, w = images[0].shape[:2]
            size = (TILE, max(1, round(TILE * h / w)))
            tiles.append([_labelled(im, lab, size) for im, lab in zip(images, labels)])
            tiles.append([_labelled(im[:CORNER, :CORNER], f"top-left {CORNER} px x{ZOOM}",
                                    (CORNER * ZOOM, CORNER * ZOOM)) for im in images])
        width = max(sum(t.width + 4 for t in row) for row in tiles)
        height = sum(max(t.height for t in row) + 4 for row in tiles)
        sheet = Image.new("RGB", (width, height), (255, 255, 255))
        y = 0
        for row in tiles:
            x = 0
            for t in row:
                sheet.paste(t, (x, y))
                x += t.width + 4
            y += max(t.height for t in row) + 4
        out = REPO / "docs" / f"shipped_{task}.png"
        sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            out, optimize=True)
        print(f"wrote {out}: {' | '.join(list(sources) + names)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["score", "sheet"])
    parser.add_argument("--work", type=Path, default=REPO / "gpu_out" / "shipped",
                        help="fused images and score tables (not kept in the repository)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    globals()[f"stage_{args.stage}"](args)


if __name__ == "__main__":
    main()
