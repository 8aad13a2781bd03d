"""Extract training patches for ``fusekit train --patches`` (fast GPU runs).

Writes ``OUT/<task>.npz`` per task, each holding ``patches``, a uint8 array
``N x 2 x P x P`` (sources in fusekit's canonical order: ir/vi, ct|pet|spect/mri,
near/far, under/over) and ``info``, a JSON string saying where the patches
came from. Only data that may be trained on is used -- never a benchmark
``test`` split that fusekit reports results on:

* ivif: ``ivif/{roadscene,tno,llvip,msrs}/train`` (equal share per dataset).
* mif: ``mif/aanlib_mri_{ct,pet,spect}/train`` (equal share per dataset).
* mfif: half real pairs from ``mfif/mfifb`` (MFIFB scenes *other than* the
  Lytro test set; the folder is called ``test`` in the data layout because
  MFIFB has no split, the issue allows it), half pairs synthesised from sharp
  visible images of ``ivif/{roadscene,tno}/train``: a smooth random region
  mask decides which part of each source is blurred (Gaussian, sigma 1-4 px),
  source ``a`` sharp inside the mask and ``b`` sharp outside.
* meif: a quarter real pairs from ``meif/mefgan`` (MEF-GAN's 5 scenes,
  scaled to a long side of 800 px; never MEFB), three quarters exposure
  brackets synthesised from well-exposed visible images of
  ``ivif/{roadscene,tno}/train`` (mean luminance 0.3-0.75): the image is
  linearised (gamma 2.2), scaled by 2^-k (under) and 2^+k (over) with k in
  [1, 3] stops, clipped, re-encoded, with a little noise on the dark one.

Patches where both sources are nearly flat (std < 0.02) are skipped.

Usage::

    python benchmarks/make_patches.py                 # -> gpu_data/{ivif,mif,mfif,meif}.npz
    (data from --data, default $FUSEKIT_DATA, else ../shared/data, as for the tests)
    python benchmarks/make_patches.py --patch 96 --count ivif=400 --out /tmp/p
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.transform import rescale
from skimage.util import img_as_ubyte

from fusekit.color import luminance
from fusekit.experiments import suite
from fusekit.io import read_image
from fusekit.training.data import PatchSampler, find_pairs, load_pairs

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    """The benchmark data root, found as the tests find it: :func:`fusekit.experiments.suite.data_root`."""
    return suite.data_root()


DEFAULT_COUNT = {"ivif": 880, "mif": 960, "mfif": 720, "meif": 880}
MIN_STD = 0.02


def _quotas(total: int, names: list[str], weights: list[float] | None = None) -> dict[str, int]:
    weights = weights or [1.0] * len(names)
    raw = np.asarray(weights) / np.sum(weights) * total
    counts = np.floor(raw).astype(int)
    counts[: total - counts.sum()] += 1
    return dict(zip(names, counts.tolist()))


def real_pairs(data: Path, task: str, folders: list[str], count: int, patch: int, seed: int,
               max_side: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """Equal share of ``count`` patches from each folder of real pairs."""
    out, info = [], []
    for k, (name, n) in enumerate(_quotas(count, folders).items()):
        stacks = load_pairs(find_pairs([data / name], task), patch)
        if max_side:
            stacks = [_shrink(s, max_side) for s in stacks]
        sampler = PatchSampler(stacks, patch, seed=seed + 101 * k, min_std=MIN_STD, augment=False)
        out.append(sampler.sample(n))
        info.append({"source": name, "pairs": len(stacks), "patches": n, "kind": "real"})
    return np.concatenate(out), info


def _shrink(stack: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(stack.shape[1:])
    if scale >= 1:
        return stack
    return np.stack([rescale(s, scale, anti_aliasing=True, preserve_range=True).astype(np.float32) for s in stack])


def sharp_images(data: Path, folders: list[str], lo: float = 0.0, hi: float = 1.0) -> list[np.ndarray]:
    """Luminance of every image in ``folders`` whose mean lies in [lo, hi]."""
    imgs = []
    for folder in folders:
        for p in sorted((data / folder).iterdir()):
            y = luminance(read_image(p))
            if lo <= float(y.mean()) <= hi:
                imgs.append(y)
    return imgs


def _single_patches(images: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random ``size x size`` crops with contrast (std >= 0.04) from grey images."""
    areas = np.array([(im.shape[0] - size + 1) * (im.shape[1] - size + 1) for im in images], dtype=float)
    areas = np.clip(areas, 0, None)
    cdf = np.cumsum(areas) / areas.sum()
    crops = []
    while len(crops) < count:
        im = images[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(images) - 1)]
        y = int(rng.integers(0, im.shape[0] - size + 1))
        x = int(rng.integers(0, im.shape[1] - size + 1))
        crop = im[y:y + size, x:x + size]
        if crop.std() >= 0.04:
            crops.append(crop)
    return crops


def _region_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random binary-ish region mask in [0, 1], covering 25-75 % of the patch."""
    while True:
        field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / rng.uniform(3, 8))
        mask = (field > np.quantile(field, rng.uniform(0.25, 0.75))).astype(np.float32)
        if 0.2 < mask.mean() < 0.8:
            return ndimage.gaussian_filter(mask, sigma=rng.uniform(0.5, 2.0))


def synth_multifocus(images: list[np.ndarray], count: int, patch: int, seed: int) -> np.ndarray:
    """Pairs (a, b): ``a`` sharp where a random mask is 1 and blurred elsewhere, ``b`` the reverse."""
    rng = np.random.default_rng(seed)
    pad = 12
    out = np.empty((count, 2, patch, patch), np.float32)
    for i, crop in enumerate(_single_patches(images, count, patch + 2 * pad, rng)):
        blurred = ndimage.gaussian_filter(crop, sigma=rng.uniform(1.0, 4.0), mode="reflect")
        mask = _region_mask(patch + 2 * pad, rng)
        a = mask * crop + (1 - mask) * blurred
        b = (1 - mask) * crop + mask * blurred
        out[i] = np.stack([a, b])[:, pad:-pad, pad:-pad]
    return np.clip(out, 0, 1)


def synth_exposures(images: list[np.ndarray], count: int, patch: int, seed: int) -> np.ndarray:
    """Pairs (under, over) from well-exposed grey crops (gamma 2.2, +-1..3 stops, clipping)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 2, patch, patch), np.float32)
    for i, crop in enumerate(_single_patches(images, count, patch, rng)):
        linear = np.clip(crop, 0, 1) ** 2.2
        under = np.clip(linear * 2.0 ** -rng.uniform(1.0, 3.0), 0, 1) ** (1 / 2.2)
        under = under + rng.normal(0, 0.004, under.shape)
        over = np.clip(linear * 2.0 ** rng.uniform(1.0, 3.0), 0, 1) ** (1 / 2.2)
        out[i] = np.stack([under, over])
    return np.clip(out, 0, 1)


def build(task: str, data: Path, count: int, patch: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    ivif_train = [f"ivif/{d}/train" for d in ("roadscene", "tno", "llvip", "msrs")]
    vis_train = ["ivif/roadscene/train/vi", "ivif/tno/train/vi"]
    if task == "ivif":
        return real_pairs(data, task, ivif_train, count, patch, seed)
    if task == "mif":
        return real_pairs(data, task, [f"mif/aanlib_mri_{m}/train" for m in ("ct", "pet", "spect")],
                          count, patch, seed)
    if task == "mfif":
        n_real = count // 2
        real, info = real_pairs(data, task, ["mfif/mfifb/test"], n_real, patch, seed)
        synth = synth_multifocus(sharp_images(data, vis_train), count - n_real, patch, seed + 7)
        info.append({"source": " + ".join(vis_train), "patches": count - n_real,
                     "kind": "synthetic multi-focus (random smooth masks, Gaussian blur sigma 1-4)"})
        return np.concatenate([real, synth]), info
    if task == "meif":
        n_real = count // 4
        real, info = real_pairs(data, task, ["meif/mefgan/test"], n_real, patch, seed, max_side=800)
        synth = synth_exposures(sharp_images(data, vis_train, 0.3, 0.75), count - n_real, patch, seed + 7)
        info.append({"source": " + ".join(vis_train), "patches": count - n_real,
                     "kind": "synthetic exposure brackets (gamma 2.2, +-1..3 stops, clipped)"})
        return np.concatenate([real, synth]), info
    raise SystemExit(f"unknown task {task}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="benchmark data root (default: $FUSEKIT_DATA, else ../shared/data)")
    parser.add_argument("--out", type=Path, default=REPO / "gpu_data", help="output folder")
    parser.add_argument("--patch", type=int, default=128, help="patch side in pixels")
    parser.add_argument("--tasks", default="ivif,mif,mfif,meif")
    parser.add_argument("--count", action="append", default=[], metavar="TASK=N",
                        help=f"patches per task (default {DEFAULT_COUNT})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = dict(DEFAULT_COUNT)
    for item in args.count:
        key, _, value = item.partition("=")
        counts[key] = int(value)
    args.out.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        t0 = time.time()
        patches, info = build(task, args.data, counts[task], args.patch, args.seed)
        rng = np.random.default_rng(args.seed)
        patches = img_as_ubyte(patches[rng.permutation(len(patches))])
        target = args.out / f"{task}.npz"
        np.savez_compressed(target, patches=patches, info=json.dumps({"task": task, "patch": args.patch,
                                                                      "seed": args.seed, "parts": info}))
        print(f"{task}: {patches.shape} uint8 -> {target} ({target.stat().st_size / 2**20:.1f} MiB, "
              f"{time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
