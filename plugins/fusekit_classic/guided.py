"""Guided filtering (He et al.) and guided-filtering fusion, GFF (Li et al. 2013)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusekit.interfaces import TASKS, Fuser, Option

from ._validate import check_float, check_int, finish, stack_sources


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a ``(2r+1) x (2r+1)`` window on axes 1 and 2 of a stack.

    Borders are mirrored (``reflect``); the cost does not depend on ``radius``.
    """
    from scipy import ndimage
    size = 2 * radius + 1
    return ndimage.uniform_filter(x, size=size, mode="reflect", axes=(1, 2))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` steered by ``guide`` (He, Sun & Tang 2010).

    In every ``(2r+1)^2`` window ``src`` is modelled as ``a * guide + b``;
    ``a = cov(guide, src) / (var(guide) + eps)``, ``b = mean(src) - a * mean(guide)``,
    and the output averages the coefficients of all windows covering a pixel.

    Parameters
    ----------
    guide, src : ndarray
        Stacks ``S x H x W``. Computed in float64 when ``eps < 1e-3``: the
        window variance ``mean(I^2) - mean(I)^2`` loses about 1e-7 to float32
        cancellation, which matters against an ``eps`` of 1e-6 but not
        against 0.3.
    radius : int
        Window radius ``r`` in pixels.
    eps : float
        Regularisation; larger values smooth more across edges.

    Returns
    -------
    ndarray
        ``S x H x W``, float64 or float32 (see above).

    References
    ----------
    K. He, J. Sun and X. Tang, "Guided image filtering", ECCV 2010; IEEE
    TPAMI 35(6), 1397-1409, 2013.
    """
    dtype = np.float64 if eps < 1e-3 else np.float32
    guide = guide.astype(dtype, copy=False)
    src = src.astype(dtype, copy=False)
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


class GuidedFilter(Fuser):
    """GFF: two-scale fusion with saliency weights refined by guided filtering.

    Following Li, Kang & Hu (2013):

    1. Two-scale split: base ``B_n = I_n * Z`` (mean filter, ``base_size``
       pixels square), detail ``D_n = I_n - B_n``.
    2. Saliency ``S_n = |I_n * L| * g``: absolute 3x3 Laplacian, then a
       Gaussian low-pass of radius ``saliency_radius`` and standard deviation
       ``saliency_sigma``.
    3. Binary weights ``P_n = 1`` where ``S_n`` is the largest over the
       sources (ties share the weight equally, so identical sources give
       themselves back).
    4. Refinement ``W^B_n = G_{r1, eps1}(P_n, I_n)`` and
       ``W^D_n = G_{r2, eps2}(P_n, I_n)`` with the guided filter ``G`` and
       the source as guide; negative overshoots are clipped to 0 and each
       set normalised to sum to 1 per pixel.
    5. ``F = sum_n W^B_n B_n + sum_n W^D_n D_n``, clipped to [0, 1].

    Parameters
    ----------
    r1 : int, default 45
        Guided-filter radius for the base-layer weights, >= 1.
    eps1 : float, default 0.3
        Guided-filter regularisation for the base-layer weights, > 0.
    r2 : int, default 7
        Guided-filter radius for the detail-layer weights, >= 1.
    eps2 : float, default 1e-6
        Guided-filter regularisation for the detail-layer weights, > 0.
    base_size : int, default 31
        Side of the mean filter that gives the base layer, odd, >= 3.
    saliency_radius : int, default 5
        Radius of the Gaussian smoothing of the Laplacian saliency, >= 1.
    saliency_sigma : float, default 5.0
        Standard deviation (pixels) of that Gaussian, > 0.

    References
    ----------
    S. Li, X. Kang and J. Hu, "Image fusion with guided filtering", IEEE
    Transactions on Image Processing 22(7), 2864-2875, 2013.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).random((40, 40), dtype=np.float32)
    >>> float(np.abs(GuidedFilter().fuse([a, a]) - a).max()) < 1e-5
    True
    """

    name = "guided-filter"
    tasks = TASKS
    max_sources = None
    summary = "GFF: two-scale, saliency weights refined by guided filtering (Li et al. 2013)"
    options = (
        Option("r1", int, 45, "Guided-filter radius for the base-layer weights in pixels, >= 1"),
        Option("eps1", float, 0.3, "Guided-filter regularisation for the base-layer weights (intensity^2, "
               "image range 0-1), > 0"),
        Option("r2", int, 7, "Guided-filter radius for the detail-layer weights in pixels, >= 1"),
        Option("eps2", float, 1e-6, "Guided-filter regularisation for the detail-layer weights (intensity^2, "
               "image range 0-1), > 0"),
        Option("base_size", int, 31, "Side of the mean filter giving the base layer in pixels, odd, >= 3"),
        Option("saliency_radius", int, 5, "Radius of the Gaussian smoothing of the Laplacian saliency in "
               "pixels, >= 1"),
        Option("saliency_sigma", float, 5.0, "Standard deviation of that Gaussian in pixels, > 0"),
    )

    def __init__(self, *, r1: int = 45, eps1: float = 0.3, r2: int = 7, eps2: float = 1e-6,
                 base_size: int = 31, saliency_radius: int = 5, saliency_sigma: float = 5.0) -> None:
        super().__init__()
        m = self.name
        self.r1 = check_int(m, "r1", r1, minimum=1)
        self.eps1 = check_float(m, "eps1", eps1, minimum=0.0, min_inclusive=False)
        self.r2 = check_int(m, "r2", r2, minimum=1)
        self.eps2 = check_float(m, "eps2", eps2, minimum=0.0, min_inclusive=False)
        self.base_size = check_int(m, "base_size", base_size, minimum=3, odd=True)
        self.saliency_radius = check_int(m, "saliency_radius", saliency_radius, minimum=1)
        self.saliency_sigma = check_float(m, "saliency_sigma", saliency_sigma, minimum=0.0,
                                          min_inclusive=False)

    def saliency(self, stack: np.ndarray) -> np.ndarray:
        """Saliency maps ``S x H x W``: smoothed absolute Laplacian of each source."""
        from scipy import ndimage
        lap = np.abs(ndimage.laplace(stack, mode="reflect", axes=(1, 2)))
        return ndimage.gaussian_filter(lap, sigma=self.saliency_sigma, mode="reflect", axes=(1, 2),
                                       truncate=self.saliency_radius / self.saliency_sigma)

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        from scipy import ndimage
        stack = stack_sources(self.name, sources)
        base = ndimage.uniform_filter(stack, size=self.base_size, mode="reflect", axes=(1, 2))
        detail = stack - base
        sal = self.saliency(stack)
        winners = (sal == sal.max(axis=0, keepdims=True)).astype(np.float32)
        winners /= winners.sum(axis=0, keepdims=True)
        w_base = _normalise(guided_filter(stack, winners, self.r1, self.eps1))
        w_detail = _normalise(guided_filter(stack, winners, self.r2, self.eps2))
        fused = (w_base * base).sum(axis=0) + (w_detail * detail).sum(axis=0)
        return finish(fused)


def _normalise(weights: np.ndarray) -> np.ndarray:
    """Clip weights at 0 and scale them to sum to 1 over axis 0 (equal where all vanish)."""
    w = np.clip(weights, 0.0, None)
    total = w.sum(axis=0, keepdims=True)
    empty = total <= 1e-12
    w = np.where(empty, 1.0 / w.shape[0], w / np.where(empty, 1.0, total))
    return w.astype(np.float32)
