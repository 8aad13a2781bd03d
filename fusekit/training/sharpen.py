"""Sharpen a loss proposer's weights towards a selection (``--proposer-temperature``).

ReFusion's proposer ends in a softmax over the sources. Trained by
meta-learning on a short schedule, its order-equivariant form stays within a
few per cent of an even split (``benchmarks/meta_diagnostic.py``): whatever
it learns about which source to keep barely reaches the loss. Dividing its
log-weights by a temperature ``T < 1`` before renormalising turns a small
preference into a near-selection (0.55 / 0.45 becomes 0.88 / 0.12 at
``T = 0.1``) while keeping the weights positive, summing to 1, and
differentiable, so the meta-gradient reaches P as before.
"""

from __future__ import annotations

import torch
from torch import nn

from .proposals import Proposal, map_proposal

__all__ = ["Sharpened"]


class Sharpened(nn.Module):
    """``w_s -> w_s^(1/T) / sum_k w_k^(1/T)`` for every weight map of a proposer.

    Parameters
    ----------
    inner : nn.Module
        A loss proposal network mapping ``N x S x H x W`` sources to a
        proposal (:mod:`~fusekit.training.proposals`: term name -> weights, or
        ``(w_int, w_grad)``), each ``N x S x H x W``, positive and summing to 1
        over ``S``; the answer has the same form.
    temperature : float
        ``T > 0``; 1 leaves the weights unchanged, smaller sharpens.

    Examples
    --------
    >>> class Fixed(nn.Module):
    ...     def forward(self, x):
    ...         w = torch.stack([torch.full_like(x[:, 0], 0.55), torch.full_like(x[:, 0], 0.45)], 1)
    ...         return w, w
    >>> w_int, _ = Sharpened(Fixed(), 0.1)(torch.rand(1, 2, 2, 2))
    >>> round(float(w_int[0, 0, 0, 0]), 3)
    0.881
    """

    def __init__(self, inner: nn.Module, temperature: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.inner = inner
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> Proposal:
        return map_proposal(self.inner(x), self._sharpen)

    def _sharpen(self, w: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.log(w.clamp_min(1e-12)) / self.temperature, dim=1)
