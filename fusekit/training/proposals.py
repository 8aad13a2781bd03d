"""What a loss proposer proposes: pixel-wise weights per named term of ``L_fuse``.

A loss proposal network maps ``N x S x H x W`` sources to a mapping from
a term name (a key of :data:`fusekit.training.losses.LOSS_TERMS`, such as
``"intensity"`` or ``"gradient"``) to that term's ``N x S x H x W`` weights.
The older form, a pair ``(w_int, w_grad)``, still works and means
``{"intensity": w_int, "gradient": w_grad}``. The trainer reads either with
:func:`proposal_terms`; the wrappers that change a proposer's weights
(:mod:`~fusekit.training.symmetric`, :mod:`~fusekit.training.sharpen`,
:mod:`~fusekit.training.partial`) answer in the form their inner network
used (:func:`in_form_of`), so code that unpacks a pair keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Union

import torch

from ..errors import InputError

__all__ = ["PAIR", "Proposal", "proposal_terms", "in_form_of", "map_proposal"]

#: The term names a ``(w_int, w_grad)`` pair stands for, in order.
PAIR = ("intensity", "gradient")

#: A proposal: term name -> ``N x S x H x W`` weights, or the pair ``(w_int, w_grad)``.
Proposal = Union[Mapping[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def proposal_terms(proposal: Proposal) -> dict[str, torch.Tensor]:
    """A proposal as a dict from term name to weights.

    Parameters
    ----------
    proposal : mapping of str to Tensor, or (Tensor, Tensor)
        What a loss proposal network returned.

    Returns
    -------
    dict of str to Tensor
        ``N x S x H x W`` weights per term; a pair becomes
        ``{"intensity": w_int, "gradient": w_grad}``.

    Raises
    ------
    InputError
        Neither a non-empty mapping of tensors nor a pair.

    Examples
    --------
    >>> w = torch.full((1, 2, 4, 4), 0.5)
    >>> list(proposal_terms((w, w))), list(proposal_terms({"intensity": w}))
    (['intensity', 'gradient'], ['intensity'])
    """
    if isinstance(proposal, Mapping):
        terms = dict(proposal)
    elif isinstance(proposal, (tuple, list)) and len(proposal) == len(PAIR):
        terms = dict(zip(PAIR, proposal))
    else:
        raise InputError(f"a loss proposer must return a mapping from term name to N x S x H x W weights, or a "
                         f"pair (w_int, w_grad); got {type(proposal).__name__}")
    if not terms or not all(isinstance(w, torch.Tensor) for w in terms.values()):
        raise InputError(f"a loss proposal must hold at least one term, each an N x S x H x W tensor; got "
                         f"{ {k: type(v).__name__ for k, v in terms.items()} }")
    return terms


def in_form_of(like: Proposal, terms: Mapping[str, torch.Tensor]) -> Proposal:
    """``terms`` in the form of ``like``: a pair if ``like`` was one, else a dict."""
    if isinstance(like, Mapping):
        return dict(terms)
    return tuple(terms[name] for name in PAIR)


def map_proposal(proposal: Proposal, function: Callable[[torch.Tensor], torch.Tensor]) -> Proposal:
    """Apply ``function`` to every term's weights, keeping the proposal's form."""
    return in_form_of(proposal, {name: function(w) for name, w in proposal_terms(proposal).items()})
