"""A learned proposer that sets the intensity weights only (``--learn-weights intensity``).

Trained with ``fusekit train --learn-weights intensity``, a loss proposer's
gradient weights are never used: the trainer takes the hand-made fixed loss's
max-gradient selection instead (:class:`~fusekit.training.fixed_net.FixedWeights`).
:class:`LearnedIntensity` puts the two together again, so that what a user
sees (``fusekit explain``) is the loss the fuser was trained with: P's
intensity weights and the rule's one-hot gradient weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .fixed_net import FixedWeights
from .proposals import Proposal, in_form_of, proposal_terms

__all__ = ["LearnedIntensity"]


class LearnedIntensity(nn.Module):
    """P's proposal with its ``gradient`` weights from the max-gradient rule.

    Parameters
    ----------
    inner : nn.Module
        A loss proposal network mapping ``N x S x H x W`` sources in [0, 1]
        to a proposal (:mod:`~fusekit.training.proposals`: term name ->
        weights, or ``(w_int, w_grad)``), each ``N x S x H x W`` summing to 1
        over ``S``; the answer has the same form.

    Examples
    --------
    >>> class Even(nn.Module):
    ...     def forward(self, x):
    ...         w = torch.full_like(x, 0.5)
    ...         return w, w
    >>> x = torch.zeros(1, 2, 4, 4); x[0, 1, :, 2:] = 1.0   # an edge in source 2 only
    >>> w_int, w_grad = LearnedIntensity(Even())(x)
    >>> float(w_int.max()), float(w_grad[0, 1, 1, 1]), float(w_grad[0, 0, 1, 1])
    (0.5, 1.0, 0.0)
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rule = FixedWeights(intensity="mean")

    def forward(self, x: torch.Tensor) -> Proposal:
        proposal = self.inner(x)
        terms = proposal_terms(proposal)
        terms["gradient"] = proposal_terms(self.rule(x))["gradient"]
        return in_form_of(proposal, terms)
