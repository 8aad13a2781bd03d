"""Make any loss proposer independent of the order in which the sources are fed.

A loss proposer P sees the sources stacked in one order. Trained by
meta-learning from random weights, ReFusion's P can collapse to a rule about
*slots* instead of content -- "intensity from the first input, gradient from
the second" -- which the swapped-order copies of every batch make harmless for
its objective but useless as a loss (the diagnostic of
``benchmarks/meta_diagnostic.py`` reads it as entropy 0 with chance-level
agreement with brightness and sharpness). :class:`OrderEquivariant` rules
that out by construction: it averages P's weights on the sources as given and,
reordered back, on the sources in reverse order, so swapping two sources swaps
their weights and nothing else. The weights still sum to 1 over the sources.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["OrderEquivariant"]


class OrderEquivariant(nn.Module):
    """``P_sym(x) = (P(x) + rev(P(rev(x)))) / 2`` for a proposer ``P``.

    Parameters
    ----------
    inner : nn.Module
        A loss proposal network mapping ``N x S x H x W`` sources to
        ``(w_int, w_grad)``, each ``N x S x H x W`` summing to 1 over ``S``.

    Examples
    --------
    >>> class Slot0(nn.Module):  # always favours the first input
    ...     def forward(self, x):
    ...         w = torch.zeros_like(x); w[:, 0] = 1
    ...         return w, w
    >>> w_int, _ = OrderEquivariant(Slot0())(torch.rand(1, 2, 4, 4))
    >>> float(w_int.min()), float(w_int.max())
    (0.5, 0.5)
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w_int, w_grad = self.inner(x)
        r_int, r_grad = self.inner(x.flip(1))
        return 0.5 * (w_int + r_int.flip(1)), 0.5 * (w_grad + r_grad.flip(1))
