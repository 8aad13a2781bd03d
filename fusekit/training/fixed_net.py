"""The parameter-free module behind :class:`fusekit.training.fixed.FixedLossProposer`."""

from __future__ import annotations

import torch
from torch import nn

from .losses import sobel_gradient

__all__ = ["FixedWeights"]


def _one_hot_argmax(values: torch.Tensor) -> torch.Tensor:
    """One-hot over dim 1 of the largest value (the first source wins ties)."""
    index = values.argmax(dim=1, keepdim=True)
    return torch.zeros_like(values).scatter_(1, index, 1.0)


class FixedWeights(nn.Module):
    """``N x S x H x W`` sources -> one-hot ``(w_int, w_grad)``, each ``N x S x H x W``.

    Parameters
    ----------
    intensity : {"max", "mean"}
        ``"max"``: intensity weight 1 on the brightest source; ``"mean"``:
        ``1 / S`` on every source. Gradient weights are always 1 on the source
        with the largest Sobel magnitude.
    """

    def __init__(self, intensity: str = "max") -> None:
        super().__init__()
        self.intensity = intensity

    def forward(self, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if self.intensity == "max":
                w_int = _one_hot_argmax(sources)
            else:
                w_int = torch.full_like(sources, 1.0 / sources.shape[1])
            w_grad = _one_hot_argmax(sobel_gradient(sources))
        return w_int, w_grad
