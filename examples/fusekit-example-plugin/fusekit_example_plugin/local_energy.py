"""Local-energy weighted fusion."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusekit import Fuser, Option, ParameterError


class LocalEnergy(Fuser):
    """Weighted mean of the sources, weights = local energy of each source.

    Parameters
    ----------
    window : int
        Side of the square window, in pixels (odd, >= 3).

    Examples
    --------
    >>> import numpy as np, fusekit
    >>> a = np.zeros((8, 8), np.float32); b = np.eye(8, dtype=np.float32)
    >>> fusekit.fuse([a, b], method="local-energy").shape
    (8, 8)
    """

    name = "local-energy"
    tasks = ("ivif", "mif", "mfif")
    max_sources = None
    summary = "weighted by local energy (example third-party plugin)"
    options = (Option("window", int, 7, "Side of the square energy window in pixels (odd, >= 3)", flag=True),)

    def __init__(self, *, window: int = 7) -> None:
        super().__init__()
        if not isinstance(window, int) or window < 3 or window % 2 == 0:
            raise ParameterError(f"window must be an odd integer >= 3, got {window!r}")
        self.window = window

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        stack = np.stack(sources).astype(np.float32)              # S x H x W
        size = (1, self.window, self.window)
        mean = uniform_filter(stack, size=size, mode="reflect")
        energy = uniform_filter(stack * stack, size=size, mode="reflect") - mean * mean
        weights = np.maximum(energy, 0.0) + 1e-6
        fused = (weights * stack).sum(axis=0) / weights.sum(axis=0)
        return np.clip(fused, 0.0, 1.0).astype(np.float32)
