"""Loss functions of the meta-learning trainer (ReFusion, Bai et al., IJCV 2024).

All functions take and return ``torch`` tensors and are differentiable in
every argument, including the proposed weights, so the meta-gradient of the
loss proposer can flow through them. ``L_fuse`` sums the terms a loss
proposer proposes weights for, from the table :data:`LOSS_TERMS` (term name
-> how it compares the fused image to the weighted sources); a plugin adds
a term with :func:`register_loss_term`.

References
----------
H. Bai, Z. Zhao, J. Zhang, Y. Wu, L. Deng, Y. Cui, B. Jiang, S. Xu,
"ReFusion: Learning Image Fusion from Reconstruction with Learnable Loss via
Meta-Learning", International Journal of Computer Vision, 2024.
arXiv:2312.07943.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import InputError, ParameterError
from .proposals import Proposal, proposal_terms

__all__ = ["sobel_gradient", "fusion_loss", "reconstruction_loss", "REC_REDUCTIONS", "REC_ERRORS", "LOSS_TERMS", "LossTerm",
           "register_loss_term", "intensity_term", "gradient_term"]

#: Ways :func:`reconstruction_loss` combines the sources' errors at a pixel.
REC_REDUCTIONS = ("max", "mean")

#: How :func:`reconstruction_loss` measures one error: squared (ReFusion) or absolute.
REC_ERRORS = ("squared", "absolute")

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = _SOBEL_X.t().contiguous()


def sobel_gradient(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude ``|Sobel_x I| + |Sobel_y I|`` of every channel.

    Parameters
    ----------
    images : Tensor
        ``N x C x H x W``, any real dtype (intensities in [0, 1] in practice).

    Returns
    -------
    Tensor
        ``N x C x H x W``, the L1 gradient magnitude of each channel with the
        3x3 Sobel kernels and zero padding of one pixel (same size as the
        input). For images in [0, 1] values lie in [0, 8].

    Examples
    --------
    >>> import torch
    >>> step = torch.zeros(1, 1, 4, 4); step[..., 2:] = 1.0
    >>> sobel_gradient(step)[0, 0, 1].tolist()  # the zero padding makes an edge at the border too
    [0.0, 4.0, 4.0, 4.0]
    """
    if images.dim() != 4:
        raise InputError(f"sobel_gradient expects an N x C x H x W tensor, got shape {tuple(images.shape)}")
    c = images.shape[1]
    kx = _SOBEL_X.to(images.device, images.dtype).expand(c, 1, 3, 3)
    ky = _SOBEL_Y.to(images.device, images.dtype).expand(c, 1, 3, 3)
    gx = F.conv2d(images, kx, padding=1, groups=c)
    gy = F.conv2d(images, ky, padding=1, groups=c)
    return gx.abs() + gy.abs()


def _check_same(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise InputError(f"{name}: expected matching shapes, got {tuple(a.shape)} and {tuple(b.shape)}")


def _weighted_squares(weights: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """``sum_s mean((w_s * e_s)^2)``: the mean over ``N, H, W`` of each source's weighted square, summed."""
    return ((weights * error) ** 2).mean(dim=(0, 2, 3)).sum()


def intensity_term(sources: torch.Tensor, fused: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_s mean((w_s * (I_s - F))^2)``: the fused image keeps the weighted sources' intensities.

    Parameters
    ----------
    sources : Tensor
        ``N x S x H x W`` in [0, 1].
    fused : Tensor
        ``N x 1 x H x W`` in [0, 1].
    weights : Tensor
        ``N x S x H x W`` per-source, per-pixel weights.

    Returns
    -------
    Tensor
        Scalar.
    """
    return _weighted_squares(weights, sources - fused)


def gradient_term(sources: torch.Tensor, fused: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_s mean((w_s * (grad I_s - grad F))^2)``, ``grad`` the Sobel magnitude of :func:`sobel_gradient`.

    Shapes as in :func:`intensity_term`; returns a scalar.
    """
    return _weighted_squares(weights, sobel_gradient(sources) - sobel_gradient(fused))


@dataclass(frozen=True)
class LossTerm:
    """One term of ``L_fuse``, named by the key a loss proposer proposes weights under.

    Attributes
    ----------
    compare : callable
        ``compare(sources, fused, weights) -> scalar Tensor``: sources
        ``N x S x H x W``, fused ``N x 1 x H x W``, weights ``N x S x H x W``;
        differentiable in all three.
    log : str
        Its column in the loss log and its key in the step's losses.
    scaled : bool
        Multiplied by the (scheduled) gradient-term weight ``lambda_grad``.
    """

    compare: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    log: str
    scaled: bool = False


#: The terms ``L_fuse`` can hold, by name, in the order they are summed.
LOSS_TERMS: dict[str, LossTerm] = {
    "intensity": LossTerm(intensity_term, "fuse_int"),
    "gradient": LossTerm(gradient_term, "fuse_grad", scaled=True),
}


def register_loss_term(name: str, compare: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], *,
                       scaled: bool = False) -> LossTerm:
    """Add a term a loss proposer may propose weights for (logged as ``fuse_NAME``).

    Parameters
    ----------
    name : str
        The key of the proposal's mapping; not one already registered.
    compare : callable
        ``compare(sources, fused, weights) -> scalar``, see :class:`LossTerm`.
    scaled : bool
        Multiply the term by ``lambda_grad``.

    Returns
    -------
    LossTerm
        The registered term (remove it with ``del LOSS_TERMS[name]``).
    """
    if not name or name in LOSS_TERMS:
        raise ParameterError(f"loss term {name!r} is empty or already registered ({', '.join(LOSS_TERMS)})")
    LOSS_TERMS[name] = LossTerm(compare, f"fuse_{name}", scaled)
    return LOSS_TERMS[name]


def fusion_loss(sources: torch.Tensor, fused: torch.Tensor, weights: Proposal,
                lambda_grad: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The learnable fusion loss ``L_fuse`` that trains the fusion network.

    ``L_fuse = sum_t c_t * compare_t(I, F, w_t)`` over the terms ``t`` the
    proposal names, in :data:`LOSS_TERMS` order, with ``c_t = lambda_grad``
    for scaled terms and 1 otherwise. With the usual two terms,
    ``L_fuse = sum_s mean((w_int_s * (I_s - F))^2)
    + lambda_grad * sum_s mean((w_grad_s * (grad I_s - grad F))^2)``.

    Parameters
    ----------
    sources : Tensor
        ``N x S x H x W`` sources in [0, 1], in the order the fuser saw them.
    fused : Tensor
        ``N x 1 x H x W`` fused image in [0, 1].
    weights : mapping of str to Tensor, or (Tensor, Tensor)
        A loss proposer's proposal: ``N x S x H x W`` pixel-wise weights per
        term name (a pair means ``intensity``, ``gradient``). Not detached by
        this function: gradients flow into them.
    lambda_grad : float
        Weight of the scaled (gradient) terms (dimensionless, >= 0).

    Returns
    -------
    loss : Tensor
        Scalar ``L_fuse``.
    parts : dict of str to Tensor
        Each term's unweighted value (detached), by term name, for logs.
    """
    if sources.dim() != 4 or fused.dim() != 4 or fused.shape[1] != 1:
        raise InputError(f"fusion_loss expects N x S x H x W sources and N x 1 x H x W fused, "
                         f"got {tuple(sources.shape)} and {tuple(fused.shape)}")
    weights = proposal_terms(weights)
    unknown = [name for name in weights if name not in LOSS_TERMS]
    if unknown:
        raise InputError(f"loss proposal names unknown term(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(LOSS_TERMS)} (add one with fusekit.training.losses.register_loss_term)")
    loss = None
    parts: dict[str, torch.Tensor] = {}
    for name, term in LOSS_TERMS.items():
        if name not in weights:
            continue
        _check_same(f"fusion_loss weights {name!r}", sources, weights[name])
        value = term.compare(sources, fused, weights[name])
        parts[name] = value.detach()
        value = lambda_grad * value if term.scaled else value
        loss = value if loss is None else loss + value
    return loss, parts


def reconstruction_loss(targets: torch.Tensor, reconstructed: torch.Tensor,
                        reduction: str = "max", error: str = "squared") -> torch.Tensor:
    """The reconstruction loss ``L_rec`` (trains the reconstructor; meta-objective).

    ``L_rec = mean(max_s |I_s - R_s|^2) + mean(max_s |grad I_s - grad R_s|^2)``:
    at each pixel only the worse-rebuilt source counts, so a fused image scores
    well only if *every* source can be recovered from it. With
    ``reduction="mean"`` the sources' squared errors are averaged instead of
    taking the worse one (an ablation of the meta-objective). With
    ``error="absolute"`` every ``|.|^2`` becomes ``|.|``: with squared errors
    an even blend of two sources that differ by ``d`` costs ``d^2/4`` per
    source while selecting one costs ``d^2`` on the other, so the
    meta-objective favours blends for that reason alone; absolute errors with
    ``reduction="mean"`` cost both ``d/2`` and leave the choice to what the
    reconstructor can predict (e.g. a defocused source from the sharp one).

    Parameters
    ----------
    targets : Tensor
        ``N x S x H x W`` sources in canonical source order (e.g. infrared,
        visible), in [0, 1].
    reconstructed : Tensor
        ``N x S x H x W`` estimates from a reconstructor, same order.
    reduction : {"max", "mean"}
        How the ``S`` sources' errors at a pixel are combined.
    error : {"squared", "absolute"}
        How one error is measured.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    _check_same("reconstruction_loss", targets, reconstructed)
    if reduction not in REC_REDUCTIONS:
        raise InputError(f"reconstruction_loss: reduction must be one of {REC_REDUCTIONS}, got {reduction!r}")
    if error not in REC_ERRORS:
        raise InputError(f"reconstruction_loss: error must be one of {REC_ERRORS}, got {error!r}")
    err_int = targets - reconstructed
    err_grad = sobel_gradient(targets) - sobel_gradient(reconstructed)
    err_int, err_grad = (err_int ** 2, err_grad ** 2) if error == "squared" else (err_int.abs(), err_grad.abs())
    if reduction == "max":
        return err_int.amax(dim=1).mean() + err_grad.amax(dim=1).mean()
    return err_int.mean() + err_grad.mean()
