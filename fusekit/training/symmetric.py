"""Make any loss proposer independent of the order in which the sources are fed.

A loss proposer P sees the sources stacked in one order. Trained by
meta-learning from random weights, ReFusion's P can collapse to a rule about
*slots* instead of content -- "intensity from the first input, gradient from
the second" -- which the swapped-order copies of every batch make harmless for
its objective but useless as a loss (the diagnostic of
``benchmarks/meta_diagnostic.py`` reads it as entropy 0 with chance-level
agreement with brightness and sharpness). :class:`OrderEquivariant` rules
that out by construction: it averages P's weights over every order of the
sources, each reordered back (for two sources: as given and swapped), so
swapping two sources swaps their weights and nothing else. The weights still
sum to 1 over the sources. ``S`` sources cost ``S!`` calls of P; more than
:data:`MAX_SOURCES` are refused.

The average is arithmetic by default. That hides a slot rule rather than
removing it: a P saturated on "everything from the first input" averages to an
exact even split, with no gradient left to move it (what the MFIF runs of
``learned-int-meta`` ended in). The *geometric* mean (``mean="geometric"``:
average the log-weights, i.e. P's softmax logits up to a per-pixel constant,
then renormalise) cancels any preference for a slot exactly and gives it no
gradient, so P can only learn weights that depend on the sources' content.

``mean="geometric"`` takes the logarithm of P's weights, floored at
``1e-30``. A P whose slot preference has drifted past that floor (a softmax
logit gap of ~69, reached within 1-2 epochs in the MFIF and MEIF runs of
``learned-int-geo`` and ``learned-int-abs``) then gets no gradient at all,
content included, and its loss is frozen at an even split. ``mean="logit"``
is the same geometric mean computed from P's log-weights directly (the
proposer network's ``log_proposal`` method, a log-softmax with no floor), so
the content part of P keeps its gradient however far the cancelled slot
preference drifts. A proposer without ``log_proposal`` falls back to the
floored logarithm.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..errors import InputError
from .proposals import Proposal, in_form_of, proposal_terms

__all__ = ["OrderEquivariant", "MAX_SOURCES", "SYMMETRIC_MEANS"]


#: The most sources :class:`OrderEquivariant` averages over (``5! = 120`` calls of P).
MAX_SOURCES = 5

#: How :class:`OrderEquivariant` averages over the orders.
SYMMETRIC_MEANS = ("arithmetic", "geometric", "logit")

#: Weights are clamped to this before their logarithm (geometric mean); well above float32's tiny.
_LOG_FLOOR = 1e-30


class OrderEquivariant(nn.Module):
    """``P_sym(x) = mean over orders pi of pi^-1(P(pi(x)))`` for a proposer ``P``.

    With two sources, ``(P(x) + rev(P(rev(x)))) / 2``.

    Parameters
    ----------
    inner : nn.Module
        A loss proposal network mapping ``N x S x H x W`` sources to a
        proposal (:mod:`~fusekit.training.proposals`: term name -> weights, or
        ``(w_int, w_grad)``), each ``N x S x H x W`` summing to 1 over ``S``;
        the answer has the same form.
    mean : {"arithmetic", "geometric", "logit"}
        Average the weights (default), or their logarithms and renormalise over the sources (a
        preference for an input slot then cancels exactly); ``"logit"`` takes those logarithms from
        ``inner.log_proposal`` (unfloored log-weights) where the inner network has that method.

    Examples
    --------
    >>> class Slot0(nn.Module):  # always favours the first input
    ...     def forward(self, x):
    ...         w = torch.zeros_like(x); w[:, 0] = 1
    ...         return {"intensity": w}
    >>> w = OrderEquivariant(Slot0())(torch.rand(1, 3, 4, 4))["intensity"]
    >>> round(float(w.min()), 4), round(float(w.max()), 4)
    (0.3333, 0.3333)
    """

    def __init__(self, inner: nn.Module, mean: str = "arithmetic") -> None:
        super().__init__()
        if mean not in SYMMETRIC_MEANS:
            raise ValueError(f"mean must be one of {SYMMETRIC_MEANS}, got {mean!r}")
        self.inner = inner
        self.mean = mean

    def _terms(self, x: torch.Tensor) -> tuple[Proposal, dict[str, torch.Tensor]]:
        """The inner proposal for ``x`` and what is averaged: weights, or log-weights."""
        if self.mean == "logit" and hasattr(self.inner, "log_proposal"):
            proposal = self.inner.log_proposal(x)
            return proposal, proposal_terms(proposal)
        proposal = self.inner(x)
        terms = proposal_terms(proposal)
        if self.mean == "arithmetic":
            return proposal, terms
        return proposal, {name: torch.log(w.clamp_min(_LOG_FLOOR)) for name, w in terms.items()}

    def forward(self, x: torch.Tensor) -> Proposal:
        n = x.shape[1]
        if n > MAX_SOURCES:
            raise InputError(f"an order-equivariant loss proposer averages over all {n}! orders of the sources; "
                             f"at most {MAX_SOURCES} sources are supported, got {n}")
        first, total = self._terms(x)
        for order in list(itertools.permutations(range(n)))[1:]:
            index = torch.tensor(order, device=x.device)
            back = torch.argsort(index)
            other = self._terms(x.index_select(1, index))[1]
            total = {name: w + other[name].index_select(1, back) for name, w in total.items()}
        scale = 1.0 / math.factorial(n)
        if self.mean != "arithmetic":
            return in_form_of(first, {name: torch.softmax(scale * w, dim=1) for name, w in total.items()})
        return in_form_of(first, {name: scale * w for name, w in total.items()})
