"""Multi-focus fusion by a focus measure and a cleaned decision map."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusekit.interfaces import Fuser, Option

from ._validate import check_choice, check_float, check_int, finish, stack_sources

MEASURES = ("sml", "sf")
#: BT.601 luma weights for R, G, B (the ``Y`` of :mod:`fusekit.color`).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sum_modified_laplacian(stack: np.ndarray, window: int) -> np.ndarray:
    """Sum-modified Laplacian (Nayar & Nakagawa 1994) over a sliding window.

    ``ML = |2I(x,y) - I(x-1,y) - I(x+1,y)| + |2I(x,y) - I(x,y-1) - I(x,y+1)|``,
    averaged over a ``window x window`` neighbourhood (the mean instead of
    the sum: same ranking, window-independent scale).

    Parameters
    ----------
    stack : ndarray
        ``S x H x W`` float32.
    window : int
        Odd window side in pixels.

    Returns
    -------
    ndarray
        ``S x H x W`` float32 focus measure (larger is sharper).
    """
    from scipy import ndimage
    p = np.pad(stack, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    centre = 2 * p[:, 1:-1, 1:-1]
    ml = np.abs(centre - p[:, :-2, 1:-1] - p[:, 2:, 1:-1])
    ml += np.abs(centre - p[:, 1:-1, :-2] - p[:, 1:-1, 2:])
    return ndimage.uniform_filter(ml, size=window, mode="reflect", axes=(1, 2))


def spatial_frequency(stack: np.ndarray, window: int) -> np.ndarray:
    """Local spatial frequency (Li, Kwok & Wang 2001) over a sliding window.

    ``SF = sqrt(RF^2 + CF^2)`` with ``RF^2`` and ``CF^2`` the window means of
    the squared horizontal and vertical first differences.

    Parameters
    ----------
    stack : ndarray
        ``S x H x W`` float32.
    window : int
        Odd window side in pixels.

    Returns
    -------
    ndarray
        ``S x H x W`` float32 focus measure (larger is sharper).
    """
    from scipy import ndimage
    dx = np.zeros_like(stack)
    dy = np.zeros_like(stack)
    dx[:, :, 1:] = np.diff(stack, axis=2)
    dy[:, 1:, :] = np.diff(stack, axis=1)
    energy = dx * dx + dy * dy
    return np.sqrt(ndimage.uniform_filter(energy, size=window, mode="reflect", axes=(1, 2)))


class Focus(Fuser):
    """Multi-focus fusion: pick the sharpest source per pixel, then clean the choice.

    1. Focus measure per source and pixel over a sliding ``window``:
       sum-modified Laplacian (``"sml"``, Nayar & Nakagawa 1994; the best
       performer in Huang & Jing 2007) or spatial frequency (``"sf"``, Li,
       Kwok & Wang 2001).
    2. Decision map: index of the source with the largest measure.
    3. Consistency verification (Li, Manjunath & Mitra 1995): a majority
       vote over a ``consistency x consistency`` window.
    4. Small-region removal (as in Liu et al. 2017): connected regions
       smaller than ``min_region`` times the image area take the label of
       the nearest larger region.
    5. Smooth boundaries: the one-hot decision maps are blurred with a
       Gaussian of standard deviation ``blend_sigma`` pixels and used as
       weights, so seams blend over a few pixels while region interiors
       copy the chosen source exactly.

    Ties (identical sources) go to the first source, so fusing an image with
    itself returns it. The method works in colour (``needs_color``): the
    decision is made on luminance and applied to whole RGB pixels, so the
    colour of a region comes from the source that is sharp there.

    Parameters
    ----------
    measure : {"sml", "sf"}, default "sml"
        Focus measure.
    window : int, default 7
        Odd side (pixels) of the focus-measure window, >= 3.
    consistency : int, default 21
        Odd side (pixels) of the majority-vote window, >= 1 (1 switches the
        vote off).
    min_region : float, default 0.01
        Smallest region kept, as a fraction of the image area, in [0, 1)
        (0 keeps every region).
    blend_sigma : float, default 2.0
        Boundary blur in pixels, >= 0 (0: hard seams).

    References
    ----------
    S. K. Nayar and Y. Nakagawa, "Shape from focus", IEEE TPAMI 16(8),
    824-831, 1994.
    S. Li, J. T. Kwok and Y. Wang, "Combination of images with diverse focuses
    using the spatial frequency", Information Fusion 2(3), 169-176, 2001.
    W. Huang and Z. Jing, "Evaluation of focus measures in multi-focus image
    fusion", Pattern Recognition Letters 28(4), 493-500, 2007.
    H. Li, B. S. Manjunath and S. K. Mitra, "Multisensor image fusion using
    the wavelet transform", Graphical Models and Image Processing 57(3),
    235-245, 1995.
    Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a
    deep convolutional neural network", Information Fusion 36, 191-207, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> sharp = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    >>> blurred = ndimage.gaussian_filter(sharp, 3)
    >>> near = np.where(np.arange(64) < 32, sharp, blurred).astype(np.float32)
    >>> far = np.where(np.arange(64) < 32, blurred, sharp).astype(np.float32)
    >>> float(np.abs(Focus().fuse([near, far]) - sharp)[:, 8:-8].mean()) < 0.05
    True
    """

    name = "focus"
    tasks = ("mfif",)
    max_sources = None
    needs_color = True
    summary = "multi-focus: focus-measure decision map, consistency check, soft seams"
    options = (
        Option("measure", str, "sml", "Focus measure: sml (sum-modified Laplacian) or sf (spatial frequency)",
               choices=MEASURES),
        Option("window", int, 7, "Side of the focus-measure window in pixels, odd, >= 3"),
        Option("consistency", int, 21, "Side of the majority-vote window in pixels, odd, >= 1 (1: no vote)"),
        Option("min_region", float, 0.01, "Smallest region kept, as a fraction of the image area, in [0, 1) "
               "(0 keeps every region)"),
        Option("blend_sigma", float, 2.0, "Standard deviation of the seam blur in pixels, >= 0 (0: hard seams)"),
    )

    def __init__(self, *, measure: str = "sml", window: int = 7, consistency: int = 21,
                 min_region: float = 0.01, blend_sigma: float = 2.0) -> None:
        super().__init__()
        m = self.name
        self.measure = check_choice(m, "measure", measure, MEASURES)
        self.window = check_int(m, "window", window, minimum=3, odd=True)
        self.consistency = check_int(m, "consistency", consistency, minimum=1, odd=True)
        self.min_region = check_float(m, "min_region", min_region, minimum=0.0, maximum=1.0,
                                      max_inclusive=False)
        self.blend_sigma = check_float(m, "blend_sigma", blend_sigma, minimum=0.0)

    def focus_measure(self, stack: np.ndarray) -> np.ndarray:
        """Focus measure maps ``S x H x W`` of a luminance stack (larger is sharper)."""
        if self.measure == "sml":
            return sum_modified_laplacian(stack, self.window)
        return spatial_frequency(stack, self.window)

    def decision_map(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Cleaned decision map ``H x W`` of int source indices (before blending).

        ``sources``: ``H x W`` luminance or ``H x W x 3`` RGB images (their
        BT.601 luminance is used).
        """
        from scipy import ndimage
        stack = _luminance_stack(self.name, sources)
        n = stack.shape[0]
        labels = np.argmax(self.focus_measure(stack), axis=0)
        if self.consistency > 1:
            votes = ndimage.uniform_filter((labels[None] == np.arange(n)[:, None, None]).astype(np.float32),
                                           size=self.consistency, mode="reflect", axes=(1, 2))
            labels = np.argmax(votes, axis=0)
        min_area = int(self.min_region * labels.size)
        if min_area > 1:
            labels = _remove_small_regions(labels, n, min_area)
        return labels

    def weights(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Per-source blending weights ``S x H x W``: the decision map with soft seams."""
        from scipy import ndimage
        labels = self.decision_map(sources)
        n = len(sources)
        onehot = (labels[None] == np.arange(n)[:, None, None]).astype(np.float32)
        if self.blend_sigma > 0:
            onehot = ndimage.gaussian_filter(onehot, sigma=self.blend_sigma, mode="reflect", axes=(1, 2))
            onehot /= onehot.sum(axis=0, keepdims=True)
        return onehot

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Fuse ``H x W x 3`` RGB sources (``H x W`` grey ones work too).

        The weights apply to whole pixels, all channels alike, so colour comes
        from the sharp source too (a chroma blend would leak the colour of
        blurred objects into the sharp regions).
        """
        weights = self.weights(sources)
        ndim = np.ndim(sources[0])
        stack = stack_sources(self.name, sources, ndim=ndim)
        if ndim == 3:
            weights = weights[..., None]
        return finish((weights * stack).sum(axis=0))


def _luminance_stack(method: str, sources: Sequence[np.ndarray]) -> np.ndarray:
    """``S x H x W`` float32 luminance of grey (``H x W``) or RGB (``H x W x 3``) sources."""
    ndim = np.ndim(sources[0]) if len(sources) else 2
    stack = stack_sources(method, sources, ndim=3 if ndim == 3 else 2)
    if stack.ndim == 4:
        stack = stack @ _LUMA
    return stack


def _remove_small_regions(labels: np.ndarray, n: int, min_area: int) -> np.ndarray:
    """Relabel connected regions smaller than ``min_area`` pixels by their nearest larger region."""
    from scipy import ndimage
    small = np.zeros(labels.shape, dtype=bool)
    for k in range(n):
        comps, count = ndimage.label(labels == k)
        if count == 0:
            continue
        sizes = np.bincount(comps.ravel())
        tiny = sizes < min_area
        tiny[0] = False
        small |= tiny[comps]
    if not small.any() or small.all():
        return labels
    _, (rows, cols) = ndimage.distance_transform_edt(small, return_indices=True)
    return labels[rows, cols]
