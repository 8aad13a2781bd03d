"""Training data: source pairs from dataset folders, random patches, augmentation.

A data folder has the layout used by ``fusekit eval`` (:mod:`fusekit.datasets`
knows it): one sub-folder per source, under any folder name the task's slot
accepts, the two images of a pair having the same file name::

    DATA_DIR/ir/0001.png   DATA_DIR/vi/0001.png
    DATA_DIR/ir/0002.png   DATA_DIR/vi/0002.png

Images are read with :func:`fusekit.io.read_image` and reduced to luminance
with :func:`fusekit.color.luminance` (float32 in [0, 1]). Sources are stacked
in the task's slot order (:data:`fusekit.datasets.LAYOUTS`), the order the
published ReFusion networks expect.

For fast runs (a GPU that would otherwise wait for image decoding) patches can
be extracted once into a ``.npz`` file holding ``patches``, a uint8 array
``N x S x P x P`` (``S`` sources) (see ``benchmarks/make_patches.py``), and sampled with
:func:`load_patch_file`.

This module imports numpy only; :class:`Batches` makes the tensors the
training steps take.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..datasets import TASKS, pair_by_stem, source_folders
from ..errors import InputError, ParameterError

__all__ = [
    "find_pairs", "load_pairs", "load_patch_file",
    "PatchSampler", "swap_augment", "Batches",
]


def find_pairs(data_dirs: Sequence[str | Path], task: str) -> list[tuple[Path, ...]]:
    """List the source pairs of one or more data folders, in canonical order.

    Parameters
    ----------
    data_dirs : sequence of path
        Folders with one sub-folder per source, named as
        :data:`fusekit.datasets.LAYOUTS` accepts (``ir`` or ``infrared``,
        ``vi``, ``vis`` or ``visible``, ...; see the module docstring).
    task : {"ivif", "mif", "mfif", "meif"}
        Decides the source folders and their order (the task's slots).

    Returns
    -------
    list of tuple of Path
        One path per source slot per set, e.g. ``(ir, vi)``.

    Raises
    ------
    InputError
        A folder is missing, lacks a source sub-folder, holds no pair, or
        holds images without a partner of the same name.
    """
    if task not in TASKS:
        raise ParameterError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if not data_dirs:
        raise InputError("no data folder given; pass at least one DATA_DIR")
    pairs: list[tuple[Path, ...]] = []
    for raw in data_dirs:
        data_dir = Path(raw)
        folders = source_folders(data_dir, task)
        shown = [f"{f.name}/" for f in folders]
        sets, problems = pair_by_stem(folders, shown)
        if problems:
            raise InputError(
                f"{data_dir}: {len(problems)} image name(s) make no pair ({'; '.join(list(problems.values())[:3])}); "
                f"each name must appear once, with any extension, in each of {' and '.join(shown)}")
        if not sets:
            raise InputError(f"{data_dir}: no images in {' and '.join(shown)}; expected matching files "
                             f"such as {shown[0]}0001.png and {shown[1]}0001.png")
        pairs.extend(sets.values())  # type: ignore[arg-type]
    return pairs


def _read_luminance(path: Path) -> np.ndarray:
    from ..color import luminance
    from ..io import read_image

    return luminance(read_image(path))


def load_pairs(pairs: Sequence[tuple[Path, ...]], patch_size: int) -> list[np.ndarray]:
    """Read every set of sources as an ``S x H x W`` float32 luminance stack.

    Parameters
    ----------
    pairs : sequence of (Path, Path, ...)
        From :func:`find_pairs`: one path per source.
    patch_size : int
        Side of the training patches in pixels; every image must be at least
        this large.

    Returns
    -------
    list of ndarray
        ``S x H x W`` float32 in [0, 1] per set (``S`` sources).

    Raises
    ------
    InputError
        The two images of a pair differ in size, or an image is smaller than
        ``patch_size``.
    """
    stacks = []
    for pair in pairs:
        layers = [_read_luminance(path) for path in pair]
        pa, a = pair[0], layers[0]
        for pb, b in zip(pair[1:], layers[1:]):
            if a.shape != b.shape:
                raise InputError(f"{pa.name}: the two sources differ in size ({a.shape[1]}x{a.shape[0]} in "
                                 f"{pa.parent.name}/, {b.shape[1]}x{b.shape[0]} in {pb.parent.name}/); "
                                 f"register and crop the pair to one size")
        if min(a.shape) < patch_size:
            raise InputError(f"{pa}: image is {a.shape[1]}x{a.shape[0]} pixels, smaller than the "
                             f"{patch_size}-pixel patch size; use a smaller --patch-size or remove it")
        stacks.append(np.stack(layers).astype(np.float32, copy=False))
    return stacks


def load_patch_file(path: str | Path, patch_size: int) -> np.ndarray:
    """Load pre-extracted training patches.

    Parameters
    ----------
    path : path
        ``.npz`` file whose array ``patches`` is uint8 ``N x S x P x P``
        (sources in canonical order, 0..255 meaning [0, 1]).
    patch_size : int
        Training patch side; must not exceed ``P`` (smaller patches are
        random crops).

    Returns
    -------
    ndarray
        The uint8 ``N x S x P x P`` array.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"patch file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "patches" not in npz.files:
                raise InputError(f"{path}: no array named 'patches' (found {', '.join(npz.files) or 'none'}); "
                                 f"create it with benchmarks/make_patches.py")
            patches = npz["patches"]
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
    if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[1] < 2 or patches.shape[2] != patches.shape[3]:
        raise InputError(f"{path}: expected uint8 patches of shape N x S x P x P (S >= 2 sources), got {patches.dtype} "
                         f"{tuple(patches.shape)}")
    if len(patches) == 0:
        raise InputError(f"{path}: holds no patches")
    if patches.shape[2] < patch_size:
        raise InputError(f"{path}: patches are {patches.shape[2]} pixels, smaller than --patch-size "
                         f"{patch_size}; use --patch-size {patches.shape[2]} or less")
    return patches


@dataclass
class PatchSampler:
    """Draws random patches from ``S x H x W`` image stacks (``S`` sources).

    A patch is taken from an image chosen with probability proportional to
    its number of patch positions (so every position is equally likely), at
    a uniform random position, then flipped / rotated by a random multiple
    of 90 degrees (both sources alike) when ``augment`` is set. Patches in
    which *both* sources are nearly flat (standard deviation below
    ``min_std``) are skipped: they carry no information to fuse.

    Parameters
    ----------
    images : sequence of ndarray
        ``S x H x W`` stacks, float32 in [0, 1] or uint8 (0..255); a uint8
        array ``N x S x P x P`` works too.
    patch_size : int
        Patch side in pixels.
    seed : int
        Seed of the sampler's own :class:`numpy.random.Generator`.
    min_std : float
        Contrast threshold on [0, 1] intensities.
    augment : bool
        Random flips and 90-degree rotations.
    """

    images: Sequence[np.ndarray]
    patch_size: int
    seed: int = 0
    min_std: float = 0.02
    augment: bool = True
    max_rejections: int = 1000

    def __post_init__(self) -> None:
        if self.patch_size < 8:
            raise ParameterError(f"patch size must be at least 8 pixels, got {self.patch_size}")
        if len(self.images) == 0:
            raise InputError("no training images to sample patches from")
        p = self.patch_size
        counts = []
        for i in range(len(self.images)):
            h, w = self.images[i].shape[-2:]
            if h < p or w < p:
                raise InputError(f"training image {i} is {w}x{h} pixels, smaller than the {p}-pixel patch size; "
                                 f"use a smaller --patch-size")
            counts.append((h - p + 1) * (w - p + 1))
        counts = np.asarray(counts, dtype=np.float64)
        self._cdf = np.cumsum(counts) / counts.sum()
        self.rng = np.random.default_rng(self.seed)

    def _one(self) -> np.ndarray:
        p = self.patch_size
        for _ in range(self.max_rejections):
            i = min(int(np.searchsorted(self._cdf, self.rng.random(), side="right")), len(self._cdf) - 1)
            img = self.images[i]
            h, w = img.shape[-2:]
            y = int(self.rng.integers(0, h - p + 1))
            x = int(self.rng.integers(0, w - p + 1))
            patch = np.asarray(img[:, y:y + p, x:x + p])
            patch = patch.astype(np.float32) / 255.0 if patch.dtype == np.uint8 else patch.astype(np.float32)
            if patch.reshape(len(patch), -1).std(axis=1).max() >= self.min_std:
                break
        else:
            raise InputError(f"found no patch with contrast (standard deviation >= {self.min_std}) in "
                             f"{self.max_rejections} tries; the training images look flat")
        if self.augment:
            k = int(self.rng.integers(0, 4))
            patch = np.rot90(patch, k, axes=(1, 2))
            if self.rng.random() < 0.5:
                patch = patch[:, :, ::-1]
        return np.ascontiguousarray(patch)

    def sample(self, batch_size: int) -> np.ndarray:
        """Return ``batch_size x S x P x P`` float32 patches in [0, 1]."""
        return np.stack([self._one() for _ in range(batch_size)])

    # -- state for checkpoints ------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-serialisable state of the random generator."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state`."""
        self.rng.bit_generator.state = state


def swap_augment(patches: np.ndarray, swap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Feed every set in given and reversed source order, keeping reconstruction targets in source order.

    Parameters
    ----------
    patches : ndarray
        ``N x S x P x P`` in canonical source order.
    swap : bool
        If false, return the batch unchanged (inputs and targets alike).

    Returns
    -------
    inputs : ndarray
        ``2N x S x P x P``: the sets as given, then the same sets with the
        sources in reverse order. These go into the fuser and the loss proposer.
    targets : ndarray
        ``2N x S x P x P``: the sets in canonical order, twice. The
        reconstructor must rebuild source 0 in channel 0 whatever the order
        the fuser saw, so it learns what each modality looks like.
    """
    if not swap:
        return patches, patches
    inputs = np.concatenate([patches, patches[:, ::-1]])
    targets = np.concatenate([patches, patches])
    return np.ascontiguousarray(inputs), targets


class Batches:
    """The training steps' batches: patches drawn, swapped (:func:`swap_augment`), as tensors on ``device``.

    Parameters
    ----------
    sampler : PatchSampler
        Draws ``N x S x P x P`` patch stacks: the fusion steps' and the
        warm-up's stream (and the meta steps', unless ``meta_seed`` is given).
    batch_size, swap, device : int, bool, torch.device
        ``N``; whether to feed every stack in both source orders
        (:func:`swap_augment`); where the tensors go.
    meta_seed : sequence of int, optional
        Seed of the meta steps' own stream (a copy of ``sampler`` with its
        own ``rng``); ignored for a sampler without ``rng``.
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, swap: bool, device: Any,
                 meta_seed: Sequence[int] | None = None) -> None:
        self.sampler, self.batch_size, self.swap, self.device = sampler, batch_size, swap, device
        self.meta_sampler = None
        if meta_seed is not None and hasattr(sampler, "rng"):
            self.meta_sampler = copy.copy(sampler)
            self.meta_sampler.rng = np.random.default_rng(list(meta_seed))

    def draw(self, meta: bool = False) -> tuple[Any, Any]:
        """Inputs and reconstruction targets, float32 tensors ``2N x S x P x P`` each (``N x ...`` without swap).

        ``meta`` draws from the meta steps' stream where there is one.
        """
        import torch

        sampler = self.meta_sampler if meta and self.meta_sampler is not None else self.sampler
        inputs, targets = swap_augment(sampler.sample(self.batch_size), self.swap)
        return (torch.from_numpy(np.ascontiguousarray(inputs)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(targets)).to(self.device))

    def states(self) -> tuple[Any, Any]:
        """Copies of the two streams' states (``None`` for a sampler without state or no meta stream)."""
        return (copy.deepcopy(self.sampler.state()) if hasattr(self.sampler, "state") else None,
                copy.deepcopy(self.meta_sampler.state()) if self.meta_sampler is not None else None)

    def set_states(self, states: tuple[Any, Any]) -> None:
        """Put the streams back where :meth:`states` saw them."""
        main, meta = states
        if main is not None:
            self.sampler.set_state(main)
        if meta is not None and self.meta_sampler is not None:
            self.meta_sampler.set_state(meta)
