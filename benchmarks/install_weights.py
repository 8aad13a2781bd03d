"""Install trained ReFusion weights into the plugin's weights registry.

Usage::

    python benchmarks/install_weights.py TASK WEIGHTS.safetensors CARD.json [--note TEXT]

Copies the weights to ``plugins/fusekit_refusion/weights/refusion_<task>.safetensors``,
computes its sha256 and writes (or replaces) the task's entry in
``weights/registry.json`` with the training card (from ``fusekit train``'s JSON
card, plus the note). The weights are checked to load into the network first.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fusekit_refusion.weights import REGISTRY, WEIGHTS_DIR, sha256_of

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["ivif", "mif", "mfif", "meif"])
    parser.add_argument("weights", type=Path)
    parser.add_argument("card", type=Path)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    from fusekit_refusion.fuser import ReFusion

    ReFusion(task=args.task, weights=str(args.weights)).prepare()  # loads, or raises WeightsError
    target = WEIGHTS_DIR / f"refusion_{args.task}.safetensors"
    shutil.copyfile(args.weights, target)
    card = json.loads(args.card.read_text())
    for key in ("weights", "checkpoint", "log"):  # paths of the training machine
        card.pop(key, None)
    if args.note:
        card["note"] = args.note
    registry = json.loads(REGISTRY.read_text())
    entries = [e for e in registry["weights"] if e["task"] != args.task]
    entries.append({"task": args.task, "file": target.name, "sha256": sha256_of(target), "card": card})
    registry["weights"] = sorted(entries, key=lambda e: ["ivif", "mif", "mfif", "meif"].index(e["task"]))
    REGISTRY.write_text(json.dumps(registry, indent=2) + "\n")
    print(f"installed {target.relative_to(ROOT)} for {args.task}")


if __name__ == "__main__":
    main()
