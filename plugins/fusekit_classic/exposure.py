"""Exposure fusion (Mertens, Kautz & Van Reeth 2007) on colour exposure brackets."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from fusekit.interfaces import Fuser, Option

from ._validate import check_float, check_int, check_sources, stack_sources
from .pyramid import expand, gaussian_pyramid, max_levels

#: BT.601 luma weights for R, G, B (the ``Y`` of :mod:`fusekit.color`).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: Added to every weight so pixels where all measures vanish fall back to equal weights.
_EPS = np.float32(1e-12)
#: Rows per band in the per-pixel weight terms (cache-sized temporaries).
_BAND = 32
#: Images with fewer pixels are fused in the calling thread (see ``benchmarks/exposure.py``).
_THREAD_PIXELS = 512 * 512


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
    clipped to [0, 1]. The pyramid goes down to 1-2 pixels
    (``floor(log2(min(H, W)))`` levels) unless ``levels`` is given, the
    depth OpenCV uses; see ``BENCHMARKS.md`` for the agreement with
    ``cv2.createMergeMertens``.

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
        Threads used to process sources in parallel, >= 1; ``None`` uses one
        per CPU (at most one per source). Not part of the method: the result
        is the same for any value.

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
        Option("workers", int, None, "Threads processing sources in parallel, >= 1; None: one per CPU (at "
               "most one per source); same result for any value"),
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

    def quality(self, colour: np.ndarray, *, saturation: bool = True) -> np.ndarray:
        """Unnormalised weight ``C^wc * S^ws * E^we`` of one source.

        Parameters
        ----------
        colour : ndarray
            ``3 x H x W`` float32 RGB planes in [0, 1].
        saturation : bool
            Include the saturation term (off for grey brackets).

        Returns
        -------
        ndarray
            ``H x W`` float32, >= 0.
        """
        red, green, blue = colour[0], colour[1], colour[2]
        gray = red * _LUMA[0]
        gray += green * _LUMA[1]
        gray += blue * _LUMA[2]
        contrast = laplacian(gray[None])[0]
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
        # plane c of source k is stack[c, k]: R, G, B and the weight map, so one
        # Gaussian pyramid serves image and weight alike, and the planes of all
        # sources form one contiguous stack (a copy: inputs stay untouched)
        stack = np.empty((4, n, h, w), dtype=np.float32)
        for k, src in enumerate(sources):
            stack[:3, k] = np.asarray(src).transpose(2, 0, 1)
        saturation = not _all_grey(stack[:3].swapaxes(0, 1))
        depth = max_levels(h, w)
        if self.levels is not None:
            depth = min(depth, self.levels)

        def weigh(k: int) -> None:
            stack[3, k] = self.quality(stack[:3, k], saturation=saturation)

        def normalise() -> None:
            wsum = stack[3].sum(axis=0) + n * _EPS
            stack[3] += _EPS
            stack[3] /= wsum

        # Large sources are independent until the sums, so they run in threads
        # (numpy releases the GIL). Small ones run inline on the stack of all
        # sources at once: fewer numpy calls, the cost that dominates there.
        # Both give the same values (sums in source order, elementwise steps).
        threads = min(n, self.workers) if h * w >= _THREAD_PIXELS else 1
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(weigh, range(n)))
                normalise()
                parts = list(pool.map(lambda k: _weighted_laplacian(stack[:, k], depth), range(n)))
            blended = parts[0]
            for part in parts[1:]:
                for acc, level in zip(blended, part):
                    acc += level
        else:
            for k in range(n):
                weigh(k)
            normalise()
            blended = _blended_laplacian(stack, depth)
        fused = np.empty((h, w, 3), dtype=np.float32)
        # collapse, writing the finest level straight into the H x W x 3 result
        image = blended[-1]
        for detail in reversed(blended[1:-1]):
            image = expand(image, detail.shape[1:3])
            image += detail
        if depth > 0:
            np.add(expand(image, (h, w)), blended[0], out=fused.transpose(2, 0, 1))
        else:
            fused.transpose(2, 0, 1)[...] = image
        return np.clip(fused, 0.0, 1.0, out=fused)


def _all_grey(colour: np.ndarray) -> bool:
    """True if every source has R = G = B everywhere (``S x 3 x H x W``)."""
    sample = colour[:, :, ::8, ::8]   # colour images almost always show it here already
    if not (np.array_equal(sample[:, 0], sample[:, 1]) and np.array_equal(sample[:, 1], sample[:, 2])):
        return False
    return bool(np.array_equal(colour[:, 0], colour[:, 1]) and np.array_equal(colour[:, 1], colour[:, 2]))


def _weighted_laplacian(planes: np.ndarray, depth: int) -> list[np.ndarray]:
    """Laplacian pyramid of RGB planes ``planes[:3]`` times the Gaussian pyramid of ``planes[3]``.

    Returns ``depth + 1`` arrays ``3 x h x w``, finest first.
    """
    gauss = gaussian_pyramid(planes, depth)
    out = []
    for level, g in enumerate(gauss):
        if level < depth:
            lap = expand(gauss[level + 1][:3], g.shape[1:3])
            np.subtract(g[:3], lap, out=lap)
            lap *= g[3]
        else:
            lap = g[:3] * g[3]
        out.append(lap)
    return out


def _blended_laplacian(stack: np.ndarray, depth: int) -> list[np.ndarray]:
    """Sum over sources of :func:`_weighted_laplacian`, all sources in one stack.

    ``stack`` is ``4 x S x H x W`` (R, G, B, normalised weight of each
    source). Returns ``depth + 1`` arrays ``3 x h x w``, finest first; the
    values are those of summing :func:`_weighted_laplacian` of each source
    in source order.
    """
    n = stack.shape[1]
    gauss = gaussian_pyramid(stack.reshape((4 * n,) + stack.shape[2:]), depth)
    out = []
    for level, g in enumerate(gauss):
        colour, weight = g[:3 * n], g[3 * n:]
        if level < depth:
            lap = expand(gauss[level + 1][:3 * n], g.shape[1:3])
            np.subtract(colour, lap, out=lap)
        else:
            lap = colour.copy()
        lap = lap.reshape((3, n) + g.shape[1:3])
        lap *= weight                      # each source's weight, broadcast over R, G, B
        total = lap[:, 0].copy()
        for k in range(1, n):
            total += lap[:, k]
        out.append(total)
    return out


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
