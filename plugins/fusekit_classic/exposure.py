"""Exposure fusion (Mertens, Kautz & Van Reeth 2007) on colour exposure brackets."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from fusekit.interfaces import Fuser, Option

from ._validate import check_float, check_int, check_sources, stack_sources
from .pyramid import _SMALL, _reduce_axis, max_levels

#: BT.601 luma weights for R, G, B (the ``Y`` of :mod:`fusekit.color`).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: Added to every weight so pixels where all measures vanish fall back to equal weights.
_EPS = np.float32(1e-12)
#: Rows per band in the per-pixel weight terms (cache-sized temporaries).
_BAND = 64
#: Images with fewer pixels are fused in the calling thread (see ``benchmarks/exposure.py``).
_THREAD_PIXELS = 512 * 512
#: Pyramid levels up to this many pixels are blended as one stack of all planes.
_STACKED = 128 * 128
#: Buffers for up to this many source pixels (all sources) are kept between calls (~40 float32 bytes each).
_KEEP_PIXELS = 2 ** 21


class Exposure(Fuser):
    """Exposure fusion of a bracket: quality-weighted blending in a Laplacian pyramid.

    For every source ``k`` and pixel, three quality measures are computed
    (Mertens et al. 2007, section 3.1):

    * contrast ``C``: absolute response of the 3x3 Laplacian filter
      ``[[0,1,0],[1,-4,1],[0,1,0]]`` on the BT.601 luminance;
    * saturation ``S``: standard deviation of R, G and B (left out when
      every source is grey, R = G = B, where it would be 0 everywhere);
    * well-exposedness ``E = prod_c exp(-(I_c - 0.5)^2 / (2 sigma^2))``.

    The weight ``W_k = C^wc * S^ws * E^we + 1e-12`` is normalised over the
    sources. The sources' Laplacian pyramids are blended with the Gaussian
    pyramids of the weights and the result collapsed (section 3.2), then
    clipped to [0, 1]. Since the weights sum to 1 at every level, the blend
    is computed relative to the last source ``r``:
    ``I_r + collapse(sum_{k != r} G(W_k) L(I_k - I_r))``, the same sum with
    one source fewer (for a pair, one Gaussian pyramid of 4 planes instead
    of 8 and 2 EXPANDs per channel and level instead of 3); it equals the
    textbook sum up to float32 rounding (below 1e-6). The pyramid goes
    down to 1-2 pixels (``floor(log2(min(H, W)))`` levels, the depth
    OpenCV uses) unless ``levels`` is given; see ``BENCHMARKS.md`` for the
    agreement with ``cv2.createMergeMertens``.

    Parameters
    ----------
    contrast_weight : float, default 1.0
        Exponent ``wc`` of the contrast measure, >= 0 (0 switches it off).
    saturation_weight : float, default 1.0
        Exponent ``ws`` of the saturation measure, >= 0.
    exposure_weight : float, default 1.0
        Exponent ``we`` of the well-exposedness measure, >= 0.
    sigma : float, default 0.2
        Width of the well-exposedness Gaussian around 0.5, > 0.
    levels : int or None, default None
        Pyramid depth (REDUCE steps), >= 1; ``None`` for the full depth.
        Capped at the full depth for small images.
    workers : int or None, default None
        Threads that compute the sources' weights, build the Gaussian
        pyramids of the planes and blend and collapse the R, G and B
        pyramids in parallel (images of 512 x 512 pixels or more), >= 1;
        ``None`` uses one per CPU (at most 3). Not part of the method: the
        result is the same for any value.

    Notes
    -----
    ``needs_color`` is set: :meth:`fuse` receives ``H x W x 3`` RGB float32
    in [0, 1] (the core replicates grey sources) and returns ``H x W x 3``.

    The result matches OpenCV's ``cv2.createMergeMertens(1, 1, 1)`` (OpenCV's
    own default sets the exposedness exponent to 0, unlike the paper) to
    40-100 dB PSNR on the MEFB pairs. The differences are in pixels where
    every source's weight is below about 1e-6, where float32 rounding picks
    the winner; here the Laplacian and the saturation are computed so that
    they are exactly 0 on flat and on grey pixels.

    The work buffers of a call (the sources as planes, the stack of
    differences and weights, its Gaussian pyramid and per-channel
    temporaries, about 41 bytes per source pixel for a pair) and its
    threads are kept on the instance for the next call when the sources
    have up to 2**21 pixels in all, so a folder of brackets does not pay the
    kernel's page zeroing, nor thread start-up, on every image; larger calls
    free the buffers. Concurrent calls on one instance are safe (the second
    uses buffers of its own). A pickled instance (a process pool, Dask)
    arrives without them and makes its own.

    References
    ----------
    T. Mertens, J. Kautz and F. Van Reeth, "Exposure fusion", Pacific
    Graphics 2007, 382-390; extended in Computer Graphics Forum 28(1),
    161-171, 2009.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> dark = rng.random((32, 32, 3), dtype=np.float32) * 0.3
    >>> fused = Exposure().fuse([dark, np.clip(dark * 3, 0, 1)])
    >>> fused.shape, fused.dtype
    ((32, 32, 3), dtype('float32'))
    """

    name = "exposure"
    tasks = ("meif",)
    max_sources = None
    needs_color = True
    summary = "exposure fusion: contrast/saturation/exposedness weights in a pyramid (Mertens)"
    options = (
        Option("contrast_weight", float, 1.0, "Exponent wc of the contrast measure (|Laplacian| of the luminance), "
               ">= 0; 0 switches it off"),
        Option("saturation_weight", float, 1.0, "Exponent ws of the saturation measure (std of R, G, B), >= 0; "
               "0 switches it off"),
        Option("exposure_weight", float, 1.0, "Exponent we of the well-exposedness measure, >= 0; 0 switches "
               "it off"),
        Option("sigma", float, 0.2, "Width of the well-exposedness Gaussian around 0.5, in intensity units "
               "(image range 0-1), > 0"),
        Option("levels", int, None, "Pyramid depth (REDUCE steps, each halves the size), in [1, 30]; None: down to "
               "1-2 pixels, floor(log2(min(H, W)))"),
        Option("workers", int, None, "Threads weighing, filtering and blending in parallel (images of "
               "512x512 pixels or more), >= 1; None: one per CPU (at most 3); same result for any value"),
    )

    def __init__(self, *, contrast_weight: float = 1.0, saturation_weight: float = 1.0,
                 exposure_weight: float = 1.0, sigma: float = 0.2, levels: int | None = None,
                 workers: int | None = None) -> None:
        super().__init__()
        m = self.name
        self.contrast_weight = check_float(m, "contrast_weight", contrast_weight, minimum=0.0)
        self.saturation_weight = check_float(m, "saturation_weight", saturation_weight, minimum=0.0)
        self.exposure_weight = check_float(m, "exposure_weight", exposure_weight, minimum=0.0)
        self.sigma = check_float(m, "sigma", sigma, minimum=0.0, min_inclusive=False)
        self.levels = None if levels is None else check_int(m, "levels", levels, minimum=1, maximum=30)
        self.workers = (os.cpu_count() or 1) if workers is None else check_int(m, "workers", workers, minimum=1)
        self._lock = threading.Lock()
        self._workspace = _Workspace()
        self._pool: Any = None

    def __getstate__(self) -> dict:
        # the lock, buffers and threads stay behind: a copy in another process makes its own
        state = self.__dict__.copy()
        for key in ("_lock", "_workspace", "_pool"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._workspace = _Workspace()
        self._pool = None

    def _threads(self, pixels: int) -> Any:
        """The instance's thread pool for an image of ``pixels``, or ``None`` to stay in this thread."""
        threads = min(3, self.workers)
        if threads < 2 or pixels < _THREAD_PIXELS:
            return None
        if self._pool is None:
            self._pool = _Threads(threads)
        return self._pool

    def quality(self, colour: np.ndarray, *, saturation: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Unnormalised weight ``C^wc * S^ws * E^we`` of one source.

        Parameters
        ----------
        colour : ndarray
            ``3 x H x W`` float32 RGB planes in [0, 1].
        saturation : bool
            Include the saturation term (off for grey brackets).
        out : ndarray, optional
            ``H x W`` float32 array to write the weight to.

        Returns
        -------
        ndarray
            ``H x W`` float32, >= 0 (``out`` when given).
        """
        red, green, blue = colour[0], colour[1], colour[2]
        gray = np.multiply(red, _LUMA[0])
        part = np.multiply(green, _LUMA[1])
        gray += part
        np.multiply(blue, _LUMA[2], out=part)
        gray += part
        if min(gray.shape) < 2:
            contrast = laplacian(gray[None])[0]
            if out is not None:
                out[...] = contrast
                contrast = out
        else:
            contrast = _laplacian_plane(gray, np.empty_like(gray) if out is None else out, part)
        weight = _power(np.abs(contrast, out=contrast), self.contrast_weight, inplace=True)
        # the per-pixel colour terms, a band of rows at a time so that the
        # temporaries stay in the CPU cache (about 1.5x faster than whole planes)
        for top in range(0, weight.shape[0], _BAND):
            rows = slice(top, top + _BAND)
            self._colour_terms(weight[rows], colour[:, rows], saturation)
        return weight

    def _colour_terms(self, weight: np.ndarray, colour: np.ndarray, saturation: bool) -> None:
        """Multiply ``weight`` (``h x W``) in place by ``S^ws * E^we`` of ``colour`` (``3 x h x W``)."""
        red, green, blue = colour[0], colour[1], colour[2]
        if saturation and self.saturation_weight != 0.0:
            # population variance of (R, G, B) from pairwise differences:
            # exactly 0 for grey pixels, where ``mean = (R+G+B)/3`` leaves
            # float32 rounding noise (~1e-8) that would outweigh the 1e-12
            # floor and hand such pixels to the wrong source
            var = red - green
            var *= var
            diff = green - blue
            diff *= diff
            var += diff
            np.subtract(blue, red, out=diff)
            diff *= diff
            var += diff
            var *= np.float32(1.0 / 9.0)
            weight *= _power(np.sqrt(var, out=var), self.saturation_weight, inplace=True)
        if self.exposure_weight != 0.0:
            half = np.float32(0.5)
            dist = red - half
            dist *= dist
            diff = green - half
            diff *= diff
            dist += diff
            np.subtract(blue, half, out=diff)
            diff *= diff
            dist += diff
            dist *= np.float32(-self.exposure_weight / (2.0 * self.sigma ** 2))
            weight *= np.exp(dist, out=dist)   # (prod_c E_c) ** we

    def weights(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Normalised weight maps ``S x H x W`` of ``S`` RGB sources ``H x W x 3``."""
        stack = stack_sources(self.name, sources, ndim=3)
        colour = np.ascontiguousarray(stack.transpose(0, 3, 1, 2))
        saturation = not _all_grey(colour)
        weight = np.stack([self.quality(c, saturation=saturation) for c in colour])
        weight += _EPS
        weight /= weight.sum(axis=0, keepdims=True)
        return weight

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        check_sources(self.name, sources, ndim=3)
        n = len(sources)
        h, w, _ = np.shape(sources[0])
        # the large buffers are kept on the fuser between calls (up to
        # _KEEP_PIXELS): freeing and re-allocating them made the kernel zero
        # fresh pages on every call, a third of the CPU time of a 0.2 MP fusion
        if not self._lock.acquire(blocking=False):   # another thread is fusing with this instance
            return self._fuse(sources, n, h, w, _Workspace(), None)
        try:
            if n * h * w > _KEEP_PIXELS:
                self._workspace.buffers.clear()
            return self._fuse(sources, n, h, w, self._workspace, self._threads(h * w))
        finally:
            if n * h * w > _KEEP_PIXELS:
                self._workspace.buffers.clear()
            self._lock.release()

    def _fuse(self, sources: Sequence[np.ndarray], n: int, h: int, w: int, space: "_Workspace",
              pool: Any) -> np.ndarray:
        """Fuse with the buffers of ``space`` and the threads of ``pool`` (``None``: this thread only).

        Threads only split work whose pieces are independent (sources,
        planes, channels), each piece computed as without them, so the
        result does not depend on ``pool``.
        """
        # The blend is computed relative to the last source ("ref"): the weights
        # sum to 1 at every pyramid level (normalised, then filtered by REDUCE,
        # whose taps sum to 1), so
        #     sum_k W_k L_k = L_ref + sum_{k < ref} W_k L(I_k - I_ref)
        # for Laplacian pyramids L, and collapsing gives
        #     fused = I_ref + collapse(sum_{k < ref} W_k L(I_k - I_ref)).
        # For a pair this builds one Gaussian pyramid of 4 planes (the colour
        # difference and the first source's weight) instead of 8, and expands 2
        # planes per channel and level instead of 3; the values are the
        # textbook blend's up to float32 rounding (below 1e-6).
        m = n - 1
        # plane c of difference k is stack[c, k]: R, G, B of source k (then
        # I_k - I_ref, in place) and its weight W_k, so one Gaussian pyramid
        # serves differences and weights alike; the reference source's planes
        # and weight have buffers of their own
        stack = space.take("stack", (4, m, h, w))
        ref = space.take("ref", (3, h, w))

        def fill(k: int) -> None:
            (ref if k == m else stack[:3, k])[...] = np.asarray(sources[k]).transpose(2, 0, 1)

        _each(pool, fill, range(n))
        if m == 0:   # one source: its own blend
            return np.clip(ref.transpose(1, 2, 0), 0.0, 1.0, out=np.empty((h, w, 3), dtype=np.float32))
        saturation = not (_all_grey(ref[None]) and _all_grey(stack[:3].swapaxes(0, 1)))
        depth = max_levels(h, w)
        if self.levels is not None:
            depth = min(depth, self.levels)
        last = space.take("weight-ref", (h, w))

        def weigh(k: int) -> None:
            if k == m:
                self.quality(ref, saturation=saturation, out=last)
            else:
                self.quality(stack[:3, k], saturation=saturation, out=stack[3, k])
                np.subtract(stack[:3, k], ref, out=stack[:3, k])

        _each(pool, weigh, range(n))
        wsum = stack[3].sum(axis=0)
        wsum += last
        wsum += n * _EPS
        stack[3] += _EPS
        stack[3] /= wsum
        gauss = _gaussian_pyramid(stack, depth, space, pool)
        fused = np.empty((h, w, 3), dtype=np.float32)
        planes = fused.transpose(2, 0, 1)
        # coarse levels (few pixels, where the cost is the number of numpy
        # calls): all channels and differences as one stack, as the collapse of
        # the blended pyramid of those levels
        top = depth
        while top > 0 and gauss[top - 1].shape[2] * gauss[top - 1].shape[3] <= _STACKED:
            top -= 1
        image = _blend_coarse(gauss, top, depth)
        if top == 0:
            np.add(image, ref, out=planes)
            return np.clip(fused, 0.0, 1.0, out=fused)
        # fine levels: one colour plane at a time, every step of a level fused
        # while the plane is in the CPU cache (expand, difference, weight, sum)
        # and the buffers reused across channels and differences; channels are
        # independent, so they go to the threads

        def channel(c: int) -> None:
            r = image[c]
            for level in range(top - 1, -1, -1):
                g = gauss[level]
                shape = g.shape[2:]
                below = gauss[level + 1].shape[2:]
                col = space.take(("col", c), (below[0], shape[1]))
                scratch = space.take(("scratch", c), (2 * below[0] * below[1],))
                term = space.take(("term", c), shape)
                acc = space.take(("acc", c, level % 2), shape)   # not the one holding r
                total = acc
                for k in range(m):
                    dest = total if k == 0 else term
                    _expand_plane(gauss[level + 1][c, k], shape, col, dest, scratch)
                    np.subtract(g[c, k], dest, out=dest)
                    dest *= g[3, k]
                    if k:
                        total += term
                _expand_plane(r, shape, col, term, scratch)
                np.add(total, term, out=acc)
                r = acc
            np.add(r, ref[c], out=planes[c])

        _each(pool, channel, range(3))
        return np.clip(fused, 0.0, 1.0, out=fused)


class _Workspace:
    """Float32 buffers by name, kept for the next call; a larger request replaces a buffer."""

    def __init__(self) -> None:
        self.buffers: dict = {}

    def take(self, key: object, shape: tuple) -> np.ndarray:
        """A C-contiguous float32 array of ``shape`` (contents undefined)."""
        size = 1
        for dim in shape:
            size *= int(dim)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = self.buffers[key] = np.empty(size, dtype=np.float32)
        return buf[:size].reshape(shape)


class _Threads:
    """A pool of ``count`` threads, started on first use and kept by the fuser."""

    def __init__(self, count: int) -> None:
        from concurrent.futures import ThreadPoolExecutor  # only here: ~4 ms to import

        self.count = count
        self.executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="fusekit-exposure")


def _each(pool: "_Threads | None", function: Callable[[int], None], items: Iterable[int]) -> None:
    """``function(i)`` for every item: on the threads of ``pool``, or here if it is ``None``."""
    if pool is None:
        for item in items:
            function(item)
    else:
        for _ in pool.executor.map(function, items):   # waits for all; re-raises the first error
            pass


def _gaussian_pyramid(stack: np.ndarray, depth: int, space: _Workspace,
                      pool: "_Threads | None") -> list[np.ndarray]:
    """``[stack, REDUCE(stack), ...]`` down ``depth`` levels, in workspace buffers: :func:`pyramid.reduce`'s values.

    ``stack`` is ``4 x S x h x w``. Levels larger than :data:`pyramid._SMALL`
    pixels are reduced one plane at a time, each plane all the way down
    those levels in one task (the planes are shared out among the threads
    of ``pool``); the smaller levels as one stack each.
    """
    gauss = [stack]
    for level in range(depth):
        g = gauss[-1]
        gauss.append(space.take(("gauss", level), g.shape[:2] + ((g.shape[2] + 1) // 2, (g.shape[3] + 1) // 2)))
    big = 0
    while big < depth and gauss[big].shape[2] * gauss[big].shape[3] > _SMALL:
        big += 1
    if big:
        planes = [g.reshape((-1,) + g.shape[2:]) for g in gauss[:big + 1]]
        tasks = 1 if pool is None else pool.count
        rows = [space.take(("rows", t), (planes[1].shape[1], planes[0].shape[2])) for t in range(tasks)]
        scratch = [space.take(("reduce", t), (planes[0].shape[1] * planes[0].shape[2],)) for t in range(tasks)]

        def chain(t: int) -> None:
            for p in range(t, planes[0].shape[0], tasks):
                for level in range(big):
                    src, dst = planes[level][p], planes[level + 1][p]
                    half = rows[t].reshape(-1)[:dst.shape[0] * src.shape[1]].reshape(dst.shape[0], src.shape[1])
                    if min(src.shape) >= 4:
                        _reduce_plane(src, dst, half, scratch[t])
                    else:   # thin images: fewer than 4 rows or columns
                        _reduce_axis(src, 0, out=half)
                        _reduce_axis(half, 1, out=dst)

        _each(pool, chain, range(tasks))
    for level in range(big, depth):
        gauss[level + 1][...] = _reduce_stack(gauss[level])
    return gauss


_SIX, _FOUR = np.float32(6.0), np.float32(4.0)
_EIGHTH, _HALF = np.float32(0.125), np.float32(0.5)


def _reduce_plane(src: np.ndarray, dst: np.ndarray, half: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """REDUCE of a plane (or a stack of planes) into ``dst``: :func:`pyramid._reduce_axis`'s values.

    Parameters
    ----------
    src : ndarray, shape (..., n, w), float32
        ``n, w >= 4``.
    dst : ndarray, shape (..., ceil(n / 2), ceil(w / 2)), float32
        Output.
    half : ndarray, shape (..., ceil(n / 2), w), float32
        Work array (the rows pass).
    scratch : ndarray, float32
        Work array of at least ``src.size`` elements.

    Returns
    -------
    ndarray
        ``dst``.

    Notes
    -----
    The operations of ``_reduce_axis`` along the rows and then the
    columns, in their order, without their temporaries and generic
    indexing, except that the rows pass leaves out its division by 16 and
    the columns pass divides by 256 instead: scaling by a power of 2 is
    exact in float32 (no value here comes near the subnormal range), so the
    result is the same bit for bit.
    """
    *lead, n, w = src.shape
    m = (n + 1) // 2
    flat = scratch.reshape(-1)
    count = 1
    for dim in lead:
        count *= dim
    even = src[..., 0::2, :]                                           # x[2j], m rows
    odd4 = flat[:count * (n // 2) * w].reshape(*lead, n // 2, w)       # 4 x[2j+1]
    np.multiply(src[..., 1::2, :], _FOUR, out=odd4)
    np.multiply(even, _SIX, out=half)
    half[..., 1:, :] += even[..., :-1, :]
    half[..., :-1, :] += even[..., 1:, :]
    half[..., :n // 2, :] += odd4
    half[..., 1:, :] += odd4[..., :m - 1, :]
    half[..., 0, :] += odd4[..., 0, :] + even[..., 1, :]              # x[-1] = x[1], x[-2] = x[2]
    if n % 2:
        half[..., m - 1, :] += odd4[..., m - 2, :] + even[..., m - 2, :]
    else:
        half[..., m - 1, :] += even[..., m - 1, :]
    k = (w + 1) // 2
    ev = flat[:count * m * k].reshape(*lead, m, k)                     # the even columns, contiguous
    od4 = flat[count * m * k:count * m * (k + w // 2)].reshape(*lead, m, w // 2)
    np.copyto(ev, half[..., 0::2])
    np.multiply(half[..., 1::2], _FOUR, out=od4)
    np.multiply(ev, _SIX, out=dst)
    dst[..., 1:] += ev[..., :-1]
    dst[..., :-1] += ev[..., 1:]
    dst[..., :w // 2] += od4
    dst[..., 1:] += od4[..., :k - 1]
    dst[..., 0] += od4[..., 0] + ev[..., 1]
    if w % 2:
        dst[..., k - 1] += od4[..., k - 2] + ev[..., k - 2]
    else:
        dst[..., k - 1] += ev[..., k - 1]
    dst *= np.float32(1.0 / 256.0)
    return dst


def _reduce_stack(stack: np.ndarray) -> np.ndarray:
    """REDUCE of every plane of ``stack`` (``... x n x w``): :func:`pyramid.reduce`'s values."""
    *lead, n, w = stack.shape
    if min(n, w) < 4:
        planes = stack.reshape((-1, n, w))
        return _reduce_axis(_reduce_axis(planes, 1), 2).reshape(*lead, (n + 1) // 2, (w + 1) // 2)
    out = np.empty((*lead, (n + 1) // 2, (w + 1) // 2), dtype=np.float32)
    half = np.empty((*lead, (n + 1) // 2, w), dtype=np.float32)
    return _reduce_plane(stack, out, half, np.empty(stack.size, dtype=np.float32))


def _expand_plane(x: np.ndarray, shape: tuple, col: np.ndarray, out: np.ndarray,
                  scratch: np.ndarray) -> np.ndarray:
    """EXPAND of a plane (or a stack of planes) to ``shape`` into ``out``: :func:`pyramid._expand_axis`'s values.

    Parameters
    ----------
    x : ndarray, shape (..., m, k), float32
    shape : tuple of int
        ``(rows, cols)`` of the result, each ``2 m - 1`` or ``2 m`` (``2 k - 1`` or ``2 k``).
    col : ndarray, shape (..., m, cols), float32
        Holds the column pass.
    out : ndarray, shape (..., rows, cols), float32
        Output.
    scratch : ndarray, float32
        Work array of at least ``2 * x.size`` elements.

    Returns
    -------
    ndarray
        ``out``.
    """
    _expand_cols(x, col, scratch)
    return _expand_rows(col, out)


def _expand_stack(stack: np.ndarray, shape: tuple) -> np.ndarray:
    """EXPAND of every plane of ``stack`` (``... x m x k``) to ``shape``: :func:`pyramid.expand`'s values."""
    lead = stack.shape[:-2]
    col = np.empty((*lead, stack.shape[-2], shape[1]), dtype=np.float32)
    out = np.empty((*lead, *shape), dtype=np.float32)
    return _expand_plane(stack, shape, col, out, np.empty(2 * stack.size, dtype=np.float32))


def _expand_rows(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """EXPAND along the rows (axis -2) of ``x`` (``... x m x W``) into ``out`` (``2m - 1`` or ``2m`` rows).

    The operations of :func:`pyramid._expand_axis` along that axis, in its
    order, without its generic indexing.
    """
    m = x.shape[-2]
    even, odd = out[..., 0::2, :], out[..., 1::2, :]
    if m == 1:
        even[...] = x
        odd[...] = x[..., :odd.shape[-2], :]
        return out
    np.multiply(x, _SIX, out=even)
    even[..., 1:, :] += x[..., :-1, :]
    even[..., :-1, :] += x[..., 1:, :]
    even[..., 0, :] += x[..., 1, :]                 # x[-1] = x[1]
    even[..., m - 1, :] += x[..., m - 1, :]         # x[m] = x[m-1]
    even *= _EIGHTH
    inner = odd[..., :m - 1, :]
    np.add(x[..., :-1, :], x[..., 1:, :], out=inner)
    inner *= _HALF
    if odd.shape[-2] == m:
        odd[..., m - 1, :] = x[..., m - 1, :]
    return out


def _expand_cols(x: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """EXPAND along the columns (axis -1) of ``x`` (``... x H x m``) into ``out`` (``2m - 1`` or ``2m`` columns).

    The operations of :func:`pyramid._expand_axis` along the last axis, in
    its order: even and odd outputs computed in contiguous arrays (in
    ``scratch``, at least ``2 * x.size`` float32) and interleaved once.
    """
    m = x.shape[-1]
    even, odd = out[..., 0::2], out[..., 1::2]
    if m == 1:
        even[...] = x
        odd[...] = x[..., :odd.shape[-1]]
        return out
    flat = scratch.reshape(-1)
    lead = x.shape[:-1]
    te = flat[:x.size].reshape(x.shape)
    np.multiply(x, _SIX, out=te)
    te[..., 1:] += x[..., :-1]
    te[..., :-1] += x[..., 1:]
    te[..., 0] += x[..., 1]
    te[..., m - 1] += x[..., m - 1]
    te *= _EIGHTH
    ti = flat[x.size:x.size + x.size // m * (m - 1)].reshape(*lead, m - 1)
    np.add(x[..., :-1], x[..., 1:], out=ti)
    ti *= _HALF
    even[...] = te
    odd[..., :m - 1] = ti
    if odd.shape[-1] == m:
        odd[..., m - 1] = x[..., m - 1]
    return out


def _blend_coarse(gauss: list, top: int, depth: int) -> np.ndarray:
    """Collapse of the blended pyramid from level ``depth`` up to level ``top``, all channels at once.

    ``gauss[l]`` is ``4 x S x h x w``; returns ``3 x h x w`` at level ``top``.
    """
    n = gauss[0].shape[1]
    g = gauss[depth]
    lap = g[:3] * g[3]
    image = lap[:, 0].copy()
    for k in range(1, n):
        image += lap[:, k]
    for level in range(depth - 1, top - 1, -1):
        g = gauss[level]
        shape = g.shape[2:]
        lap = _expand_stack(gauss[level + 1][:3], shape)
        np.subtract(g[:3], lap, out=lap)
        lap *= g[3]
        total = lap[:, 0].copy()
        for k in range(1, n):
            total += lap[:, k]
        image = _expand_stack(image, shape)
        image += total
    return image


def _all_grey(colour: np.ndarray) -> bool:
    """True if every source has R = G = B everywhere (``S x 3 x H x W``)."""
    sample = colour[:, :, ::8, ::8]   # colour images almost always show it here already
    if not (np.array_equal(sample[:, 0], sample[:, 1]) and np.array_equal(sample[:, 1], sample[:, 2])):
        return False
    return bool(np.array_equal(colour[:, 0], colour[:, 1]) and np.array_equal(colour[:, 1], colour[:, 2]))


def laplacian(stack: np.ndarray) -> np.ndarray:
    """3x3 Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` of a stack ``S x H x W``, reflect-101 borders.

    Summed as ``(x[i-1] + x[i+1]) - 2 x[i]`` per axis, which is exactly 0 on
    flat patches in float32 (``-4 x + x + x + x + x`` is not: ``-3 x``
    rounds). Exposure-fusion weights are products of small numbers, so such
    1e-8 residues would decide which source wins in flat regions.
    """
    if min(stack.shape[1:3]) < 2:
        from scipy import ndimage  # only here: importing it costs ~0.1 s, more than a whole fusion

        return ndimage.laplace(stack, mode="mirror", axes=(1, 2)).astype(np.float32)
    return _second_difference(stack, 1) + _second_difference(stack, 2)


def _laplacian_plane(x: np.ndarray, out: np.ndarray, work: np.ndarray) -> np.ndarray:
    """:func:`laplacian` of one plane (``H x W``, both at least 2) into ``out``, bit for bit.

    The same operations in the same order (rows' second difference plus
    columns'), with the doubled image computed once for both and ``work``
    (``H x W`` float32, overwritten) for it instead of temporaries.
    """
    twice = np.multiply(x, np.float32(2.0), out=work)
    np.add(x[:-2], x[2:], out=out[1:-1])
    out[0] = x[1] * np.float32(2.0)          # x[-1] = x[1]
    out[-1] = x[-2] * np.float32(2.0)        # x[n] = x[n-2]
    out -= twice
    cols = np.empty_like(x)
    np.add(x[:, :-2], x[:, 2:], out=cols[:, 1:-1])
    cols[:, 0] = x[:, 1] * np.float32(2.0)
    cols[:, -1] = x[:, -2] * np.float32(2.0)
    cols -= twice
    out += cols
    return out


def _second_difference(x: np.ndarray, axis: int) -> np.ndarray:
    """``x[i-1] + x[i+1] - 2 x[i]`` along ``axis`` (1 or 2), reflect-101 borders."""
    def at(sl: slice | int) -> tuple:
        return (slice(None),) * axis + (sl,)

    out = np.empty_like(x)
    np.add(x[at(slice(None, -2))], x[at(slice(2, None))], out=out[at(slice(1, -1))])
    out[at(0)] = x[at(1)] * np.float32(2.0)      # x[-1] = x[1]
    out[at(-1)] = x[at(-2)] * np.float32(2.0)    # x[n] = x[n-2]
    out -= x * np.float32(2.0)
    return out


def _power(x: np.ndarray, exponent: float, *, inplace: bool = False) -> np.ndarray:
    """``x ** exponent`` as float32, skipping the power for exponents 1 and 0.

    With ``inplace`` the result may be ``x`` itself (overwritten).
    """
    if exponent == 1.0:
        return x if inplace else x.astype(np.float32, copy=True)
    if exponent == 0.0:
        return np.ones_like(x, dtype=np.float32)
    return np.power(x, np.float32(exponent), out=x if inplace else None, dtype=np.float32)
