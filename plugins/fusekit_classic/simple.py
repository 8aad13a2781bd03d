"""Pixel-wise fusion rules: average, maximum and PCA-weighted average."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusekit.interfaces import TASKS, Fuser

from ._validate import finish, stack_sources


class Average(Fuser):
    """Pixel mean of the sources.

    The simplest baseline: ``F = (1/S) * sum_i I_i``. Keeps low-frequency
    content but lowers the contrast of details present in one source only.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    >>> Average().fuse([a, b])[0, 0]
    0.5
    """

    name = "average"
    tasks = TASKS
    max_sources = None
    summary = "pixel mean of the sources"

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        stack = stack_sources(self.name, sources)
        return finish(stack.mean(axis=0, dtype=np.float32))


class Maximum(Fuser):
    """Per-pixel maximum of the sources.

    ``F(x) = max_i I_i(x)``. Suits infrared-visible and medical pairs, where
    the brighter source usually carries the salient structure (hot targets,
    bone in CT); it is a poor choice for multi-focus or multi-exposure input.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.2, 0.9]], np.float32); b = np.array([[0.5, 0.1]], np.float32)
    >>> Maximum().fuse([a, b]).tolist()
    [[0.5, 0.8999999761581421]]
    """

    name = "max"
    tasks = ("ivif", "mif")
    max_sources = None
    summary = "per-pixel maximum of the sources"

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        stack = stack_sources(self.name, sources)
        return finish(stack.max(axis=0))


class PCA(Fuser):
    """Weighted average with weights from the principal component of the sources.

    Each source image is one variable, each pixel one observation. The
    eigenvector ``v`` of the ``S x S`` covariance matrix with the largest
    eigenvalue gives the weights ``w_i = |v_i| / sum_j |v_j|`` and
    ``F = sum_i w_i I_i`` (Naidu & Raol 2008). The absolute value keeps the
    weights a convex combination when sources are anti-correlated (common
    for infrared vs visible), where the plain normalisation ``v / sum(v)`` of
    the paper can give negative weights. If the sources have no variance
    (constant images) the weights are equal.

    References
    ----------
    V. P. S. Naidu and J. R. Raol, "Pixel-level image fusion using wavelets
    and principal component analysis", Defence Science Journal 58(3),
    338-352, 2008.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((16, 16), dtype=np.float32)
    >>> float(np.abs(PCA().fuse([a, a]) - a).max()) < 1e-6
    True
    """

    name = "pca"
    tasks = TASKS
    max_sources = None
    summary = "weighted mean, weights from the first principal component"

    def weights(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Return the fusion weights, shape ``(S,)``, non-negative, summing to 1."""
        stack = stack_sources(self.name, sources)
        flat = stack.reshape(stack.shape[0], -1).astype(np.float64)
        flat -= flat.mean(axis=1, keepdims=True)
        cov = flat @ flat.T / flat.shape[1]
        if np.trace(cov) <= 1e-12:
            return np.full(stack.shape[0], 1.0 / stack.shape[0])
        _, vectors = np.linalg.eigh(cov)
        v = np.abs(vectors[:, -1])
        return v / v.sum()

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        stack = stack_sources(self.name, sources)
        w = self.weights(stack).astype(np.float32)
        return finish(np.tensordot(w, stack, axes=1))
