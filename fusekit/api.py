"""The Python API: fuse arrays or files with any registered method.

Data flow: read (:mod:`fusekit.io`) -> validate (same size, source count) ->
split colour (:mod:`fusekit.color`) -> ``Fuser.fuse`` on luminance -> merge
colour -> write (atomic).

Examples
--------
>>> import numpy as np, fusekit
>>> a = np.zeros((4, 4), np.float32); b = np.ones((4, 4), np.float32)
>>> fusekit.fuse([a, b], method="average")[0, 0]
0.5
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import color, io
from .contract import check_fused
from .errors import InputError
from .interfaces import Fuser, ProgressCallback, reporting_progress
from .plugins import PluginHost, get_host


def list_fusers(host: PluginHost | None = None) -> list[str]:
    """Names of every registered fusion method."""
    return (host or get_host()).fusers.names()


def get_fuser(name: str, host: PluginHost | None = None, **options: Any) -> Fuser:
    """Create the fuser registered as ``name`` with keyword ``options``.

    Raises
    ------
    UnknownNameError
        No method of that name (the message suggests close names).
    ParameterError
        An option is unknown or out of range.
    """
    cls = (host or get_host()).fusers.get(name)
    return cls.create(**options)


def _as_float_image(image: Any, label: str) -> np.ndarray:
    from skimage.util import img_as_float32

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f"{label}: expected an H x W or H x W x 3 image, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise InputError(f"{label}: float image values must lie in [0, 1]; rescale it")
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind not in "ub":
        raise InputError(f"{label}: unsupported dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    return img_as_float32(arr)


def check_sources(fuser: Fuser, sources: Sequence[np.ndarray], labels: Sequence[str]) -> None:
    """Raise :class:`InputError` unless the sources suit ``fuser``.

    Checks the number of sources against ``fuser.min_sources`` /
    ``max_sources`` and that all share one height and width.
    """
    n = len(sources)
    lo, hi = fuser.min_sources, fuser.max_sources
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if hi == lo else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        raise InputError(f"method {fuser.name!r} takes {want} sources, got {n}; "
                         f"pass {want} images (see 'fusekit methods')")
    h, w = sources[0].shape[:2]
    for src, label in zip(sources, labels):
        if src.shape[0] == 0 or src.shape[1] == 0:
            raise InputError(f"{label}: empty image ({src.shape[1]}x{src.shape[0]} pixels); "
                             "pass images at least 1 pixel high and wide")
    for src, label in zip(sources[1:], labels[1:]):
        if src.shape[:2] != (h, w):
            raise InputError(
                f"{label}: size {src.shape[1]}x{src.shape[0]} differs from {labels[0]} ({w}x{h}); "
                "sources must be registered images of one size: resize or crop one of them to match"
            )


def fuse_images(fuser: Fuser, sources: Sequence[np.ndarray],
                labels: Sequence[str] | None = None, *, progress: ProgressCallback | None = None) -> np.ndarray:
    """Fuse float32 [0, 1] images with a fuser instance, applying the colour pipeline.

    Parameters
    ----------
    fuser : Fuser
    sources : sequence of ndarray
        float32 in [0, 1], ``H x W`` or ``H x W x 3``, all one size.
    labels : sequence of str, optional
        Names used in error messages (file names).
    progress : callable, optional
        ``progress(done, total)``, called whenever the fuser reports how
        far it is (:func:`fusekit.interfaces.report_progress`; ``total`` may
        be ``None``). Methods that report nothing never call it.

    Returns
    -------
    ndarray
        float32 in [0, 1]; ``H x W x 3`` if any source is in colour (or the
        fuser works in colour), else ``H x W``.

    Raises
    ------
    InputError
        Wrong number of sources, an empty image, or sources of different sizes.
    PluginError
        The fuser broke its output contract (wrong shape or dtype, NaN or
        inf, values outside [0, 1]); the message names the method and plugin
        (:func:`fusekit.contract.check_fused`).
    """
    labels = list(labels) if labels is not None else [f"source {i + 1}" for i in range(len(sources))]
    check_sources(fuser, sources, labels)
    if progress is not None:
        with reporting_progress(progress):
            return _fuse_checked(fuser, sources)
    return _fuse_checked(fuser, sources)


def _fuse_checked(fuser: Fuser, sources: Sequence[np.ndarray]) -> np.ndarray:
    """The colour pipeline around ``fuser.fuse`` for sources :func:`check_sources` accepted."""
    height, width = sources[0].shape[:2]
    if fuser.needs_color:
        # check_fused gives float32 clipped to [0, 1]: only the luminance needs clipping again
        fused = check_fused(fuser, fuser.fuse([color.to_rgb(s) for s in sources]), (height, width, 3))
        if all(np.ndim(s) == 2 for s in sources):
            fused = np.clip(color.luminance(fused), 0.0, 1.0).astype(np.float32, copy=False)
        return fused
    lumas = [color.luminance(s) for s in sources]
    fused_y = check_fused(fuser, fuser.fuse(lumas), (height, width))
    return color.merge(fused_y, color.fuse_chroma(sources))


def fuse(sources: Sequence[Any], method: str | Fuser = "average", *,
         host: PluginHost | None = None, **options: Any) -> np.ndarray:
    """Fuse registered images given as arrays.

    Parameters
    ----------
    sources : sequence of array-like
        Two or more images of one size: ``H x W`` grey or ``H x W x 3`` RGB
        (RGBA: alpha ignored), uint8, uint16, or float in [0, 1]. Order
        matters for methods trained on an order (ReFusion: infrared then
        visible, CT/PET/SPECT then MRI, near then far focus, under then over
        exposure).
    method : str or Fuser
        A registered method name (see :func:`list_fusers`) or a fuser instance.
    host : PluginHost, optional
        Plugin host to look the method up in (default: the global one).
    **options
        Method options, e.g. ``task="mif"`` for ReFusion.

    Returns
    -------
    ndarray
        float32 in [0, 1]: ``H x W x 3`` if any source is in colour, else
        ``H x W``.
    """
    if len(sources) == 0:
        raise InputError("no sources given; pass two or more images")
    fuser = method if isinstance(method, Fuser) else get_fuser(method, host=host, **options)
    labels = [f"source {i + 1}" for i in range(len(sources))]
    arrays = [_as_float_image(s, label) for s, label in zip(sources, labels)]
    return fuse_images(fuser, arrays, labels)


def fuse_files(fuser: Fuser, paths: Sequence[str | os.PathLike], output: str | os.PathLike,
               bit_depth: int | None = None, *, progress: ProgressCallback | None = None) -> Path:
    """Read ``paths``, fuse them with ``fuser`` and write ``output`` atomically.

    Parameters
    ----------
    fuser : Fuser
    paths : sequence of path-like
        Source image files.
    output : path-like
        Output file; nothing is written if any step fails.
    bit_depth : {8, 16}, optional
        Output depth; default: 16 if any source is 16-bit, else 8.
    progress : callable, optional
        ``progress(done, total)`` while the fuser reports (see :func:`fuse_images`).

    Returns
    -------
    Path
        The written file.
    """
    loaded = [io.load_image(p) for p in paths]
    fused = fuse_images(fuser, [im.data for im in loaded], [str(p) for p in paths], progress=progress)
    depth = bit_depth or max(im.bit_depth for im in loaded)
    return io.write_image(output, fused, bit_depth=depth)
