"""Add column titles (and scene row labels) to contact sheets in ``docs/`` drawn before sheets had labels.

The benchmark scripts now label their sheets themselves (``contact_sheet(...,
titles=, row_labels=)``), but the sheets below were drawn earlier from fused
images of training runs that no longer exist, so they cannot be redrawn.
This script relabels the existing PNGs instead::

    python benchmarks/label_sheets.py [NAME.png ...] [--dry-run]

For each sheet it finds the tiles from the white gaps ``contact_sheet`` left
between them (``GAP`` px; the sheet is refused if any gap, row height or
tile count disagrees with what the producing script drew), cuts the tiles
out unchanged and lays them out again with :func:`fusekit.sheet.contact_sheet`
at their own height (so tiles are not resampled), with the titles below:
the sources, then the methods or runs in the order the producing script drew
them (each entry of ``SHEETS`` names the commit and script it comes from).
Row labels (``dataset/scene``) are added only where the row's source tiles
match the scene that script picked (``fusekit.experiments.suite.SCENES``)
pixel for pixel up to palette noise, which needs the test splits under
``suite.data_root()``; otherwise the sheet gets column titles only.

Output keeps the sheet's format: palette PNGs are re-quantised to 256
colours like the scripts' (``fusekit.experiments.to_palette``); an RGB sheet
stays RGB unless it grows past ``fusekit.experiments.sheets.MAX_SHEET_BYTES``. A
``fusekit-labels`` PNG text chunk records the labels; sheets that have it
are skipped, so running the script again changes nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np

from fusekit.experiments import sheet_titles, suite, to_palette
from fusekit.experiments.sheets import MAX_SHEET_BYTES

REPO = Path(__file__).resolve().parents[1]

DOCS = REPO / "docs"
GAP = 4  #: white px between tiles and between rows (contact_sheet's default)
WHITE = 250  #: a pixel is gap white if all its channels are at least this (palette noise)
MATCH_TOL = 0.02  #: mean absolute difference (0-1) below which a source tile is that scene's image
TEXT_KEY = "fusekit-labels"

_LVF = "learned_vs_fixed.py sheet (sources | start | fixed | learned)"
_CPU = "cpu_budget.py sheet (sources | shipped | runs of the section)"
_FTV = "finetune_variants.py sheet (sources | --baseline, then runs by name, as in the section's list)"

#: sheet -> (task, method/run titles after the sources, where the order comes from)
SHEETS: dict[str, tuple[str, list[str], str]] = {
    # c07af54, refusion_results.py stage_sheet: sources + VARIANTS + best_classic(); best classic by mean
    # rank over the cddfuse tables of that commit's BENCHMARKS.md: ivif max, mif max, mfif focus,
    # meif laplacian-pyramid (10 against exposure 11).
    "refusion_ivif.png": ("ivif", ["refusion-learned", "refusion-fixed", "max"], "c07af54 refusion_results.py"),
    "refusion_mif.png": ("mif", ["refusion-learned", "refusion-fixed", "max"], "c07af54 refusion_results.py"),
    "refusion_mfif.png": ("mfif", ["refusion-learned", "refusion-fixed", "focus"], "c07af54 refusion_results.py"),
    "refusion_meif.png": ("meif", ["refusion-learned", "refusion-fixed", "laplacian-pyramid"],
                          "c07af54 refusion_results.py"),
    "learned_vs_fixed_ivif.png": ("ivif", ["start", "fixed", "learned"], "53c324a " + _LVF),
    "learned_vs_fixed_mif.png": ("mif", ["start", "fixed", "learned"], "53c324a " + _LVF),
    "learned_vs_fixed_mfif.png": ("mfif", ["start", "fixed", "learned"], "22fb4bc " + _LVF),
    "learned_vs_fixed_meif.png": ("meif", ["start", "fixed", "learned"], "e0213d0 " + _LVF),
    "learned_vs_fixed_ivif_seed2.png": ("ivif", ["start", "fixed", "learned"], "a929810 " + _LVF),
    "learned_vs_fixed_mfif_seed2.png": ("mfif", ["start", "fixed", "learned"], "a929810 " + _LVF),
    "learned_vs_fixed_ivif_seed2_800steps.png": ("ivif", ["start", "fixed", "learned"], "45893f7 " + _LVF),
    "learned_vs_fixed_ivif_seed2_intensity_only.png": ("ivif", ["start", "fixed", "learned"], "7a88f20 " + _LVF),
    "learned_vs_fixed_ivif_seed2_mean_rec.png": ("ivif", ["start", "fixed", "learned"], "7a67d00 " + _LVF),
    "learned_vs_fixed_ivif_seed2_intensity_only_mean_rec.png": ("ivif", ["start", "fixed", "learned"],
                                                               "7a67d00 " + _LVF),
    "learned_vs_fixed_ivif_seed2_lg0.5.png": ("ivif", ["start", "fixed", "learned"], "6027406 " + _LVF),
    "learned_vs_fixed_ivif_seed3_intensity_only.png": ("ivif", ["start", "fixed", "learned"], "a91c6e5 " + _LVF),
    # 9eeb667, loss_balance.py: runs_in() = "lambda <g>" heaviest first; the seed-2 runs were 1, 0.5, 0.25
    "loss_balance_ivif.png": ("ivif", ["lambda 1", "lambda 0.5", "lambda 0.25"], "9eeb667 loss_balance.py sheet"),
    # 1757728, finetune_variants.py: the runs as listed in the sections finetune-variants-ivif-<name>
    "finetune_variants_ivif_patchsize.png": ("ivif", ["fixed-lg0.5", "fixed-p128b1", "fixed-p96b2"],
                                             "1757728 " + _FTV),
    "finetune_variants_ivif_longft.png": ("ivif", ["fixed-lg0.5", "fixed-lg0.5-cont1200-seed2",
                                                   "fixed-lg0.5-cont1200-seed3"], "1757728 " + _FTV),
    # cpu_budget.py: the runs listed in the section cpu-budget-<task> of the sheet's commit
    "cpu_budget_ivif.png": ("ivif", ["shipped", "cpu90min"], "ec10ccf " + _CPU),
    "cpu_budget_mif.png": ("mif", ["shipped", "cpu85min"], "28a105d " + _CPU),
    "cpu_budget_mfif.png": ("mfif", ["shipped", "cpu40min"], "342a720 " + _CPU),
    "cpu_budget_meif.png": ("meif", ["shipped", "cpu85min"], "4c63960 " + _CPU),
}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def find_tiles(sheet: np.ndarray) -> tuple[int, list[list[tuple[int, int]]]]:
    """Tile height and, per row, the ``(x, width)`` of each tile of an unlabelled ``contact_sheet``.

    ``sheet``: ``H x W x 3`` uint8. Rows are separated by ``GAP`` all-white pixel rows, tiles within a
    row by ``GAP`` all-white pixel columns; white on the right of a row is padding.

    Raises
    ------
    ValueError
        A gap of another width, or rows of different heights.
    """
    white = sheet.min(axis=2) >= WHITE
    bands, y = [], 0
    for start, length in _runs(white.all(axis=1)) + [(sheet.shape[0], 0)]:
        if start > y:
            bands.append((y, start))
        elif start + length < sheet.shape[0] and start > 0 and length != GAP:
            raise ValueError(f"white band of {length} px between rows at y={start}")
        y = start + length
    heights = {b - a for a, b in bands}
    if len(heights) != 1 or any(bands[k + 1][0] - bands[k][1] != GAP for k in range(len(bands) - 1)):
        raise ValueError(f"rows {bands} are not of one height {GAP} px apart")
    rows = []
    for y0, y1 in bands:
        tiles, x = [], 0
        for start, length in _runs(white[y0:y1].all(axis=0)) + [(sheet.shape[1], 0)]:
            if start > x:
                tiles.append((x, start - x))
            if start + length < sheet.shape[1] and length != GAP:
                raise ValueError(f"white gap of {length} px at x={start} in row y={y0}")
            x = start + length
        rows.append(tiles)
    return heights.pop(), rows


def scene_labels(task: str, sheet: np.ndarray, height: int, rows: list[list[tuple[int, int]]]) -> list[str] | None:
    """``dataset/scene`` per row if every row's source tiles are the scene ``suite.SCENES`` picks, else None.

    The scripts picked ``sorted(sets)[pick]`` (``refusion_results`` the ``pick``-th fused one, the same
    scenes where every pair was fused). Every scene of the row's test split is resized as
    ``contact_sheet`` does and compared with the row's source tiles; the picked scene must be the
    closest of them all and within ``MATCH_TOL`` (mean absolute difference over its source tiles).
    """
    picks = suite.SCENES[task]
    if len(picks) != len(rows):
        return None
    labels = []
    for r, (dataset, pick) in enumerate(picks):
        split = suite.split(dataset)
        sources = split.sources
        try:
            sets = split.sets()
        except (OSError, ValueError) as err:
            print(f"  no row labels: {dataset}: {err}")
            return None
        if not sets:
            print(f"  no row labels: no {dataset} test split under {suite.data_root()}")
            return None
        name = pick if isinstance(pick, str) else sorted(sets)[pick or 0]
        tiles = [sheet_tile(sheet, height, rows, r, k) for k in range(len(sources))]
        errs = {}
        for scene, paths in sets.items():
            shown = [_shown(str(p), height) for p in paths]
            if all(a.shape == b.shape for a, b in zip(shown, tiles)):
                errs[scene] = float(np.mean([np.abs(a - b).mean() for a, b in zip(shown, tiles)]))
        best = sorted(errs, key=errs.get)[:2]
        if not best or best[0] != name or errs[name] > MATCH_TOL:
            print(f"  no row labels: row {r + 1} is not {dataset}/{name} "
                  f"(closest: {[(s, round(errs[s], 4)) for s in best]})")
            return None
        runner_up = f", next {best[1]} {errs[best[1]]:.4f}" if len(best) > 1 else ""
        print(f"  row {r + 1}: {dataset}/{name} (differs by {errs[name]:.4f}{runner_up})")
        labels.append(f"{dataset}/{name}")
    return labels


@functools.lru_cache(maxsize=None)
def _shown(path: str, height: int) -> np.ndarray:
    """Image ``path`` as ``contact_sheet`` draws it ``height`` px high."""
    from skimage.transform import resize

    from fusekit.color import to_rgb
    from fusekit.io import read_image

    rgb = to_rgb(np.clip(read_image(path), 0, 1))
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return resize(rgb, (height, width, 3), order=1, anti_aliasing=True).astype(np.float32)


def sheet_tile(sheet: np.ndarray, height: int, rows: list[list[tuple[int, int]]], r: int, k: int) -> np.ndarray:
    """Tile ``k`` of row ``r`` (``rows`` from :func:`find_tiles`), float in [0, 1]."""
    y = r * (height + GAP)
    x, w = rows[r][k]
    return sheet[y:y + height, x:x + w].astype(np.float32) / 255.0


def label(path: Path, dry_run: bool = False) -> str:
    """Relabel one sheet in place; returns what was done."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from fusekit.io import write_image
    from fusekit.sheet import contact_sheet

    with Image.open(path) as image:
        if TEXT_KEY in getattr(image, "text", {}):
            return "already labelled, skipped"
        mode = image.mode
        sheet = np.asarray(image.convert("RGB"))
    task, methods, origin = SHEETS[path.name]
    height, rows = find_tiles(sheet)
    titles = sheet_titles([suite.split(dataset) for dataset, _ in suite.SCENES[task]], methods)
    if any(len(tiles) != len(titles) for tiles in rows):
        raise ValueError(f"{path.name}: rows of {[len(t) for t in rows]} tiles, {len(titles)} titles {titles}")
    row_labels = scene_labels(task, sheet, height, rows)
    tiles = [[sheet_tile(sheet, height, rows, r, k) for k in range(len(row))] for r, row in enumerate(rows)]
    if dry_run:
        return f"would label {titles} rows {row_labels} ({origin})"
    labelled = contact_sheet(tiles, height=height, gap=GAP, titles=titles, row_labels=row_labels)
    write_image(path, np.asarray(labelled, dtype=np.float32))
    if mode != "RGB" or path.stat().st_size > MAX_SHEET_BYTES:
        to_palette(path)
    info = PngInfo()
    info.add_text(TEXT_KEY, json.dumps({"titles": titles, "row_labels": row_labels, "from": origin}))
    with Image.open(path) as image:
        image.load()
        tmp = path.with_name(path.stem + ".tmp.png")
        image.save(tmp, "PNG", optimize=True, pnginfo=info)
    tmp.replace(path)
    path.chmod(0o644)
    return f"labelled {titles} rows {row_labels} ({path.stat().st_size // 1024} KB)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"sheets in docs/ (default: all {len(SHEETS)} known ones)")
    parser.add_argument("--dry-run", action="store_true", help="print the labels, write nothing")
    args = parser.parse_args(argv)
    for name in args.names or list(SHEETS):
        name = Path(name).name
        if name not in SHEETS:
            raise SystemExit(f"{name}: not a sheet this script knows the columns of")
        print(f"{name}: {label(DOCS / name, args.dry_run)}")


if __name__ == "__main__":
    main()
