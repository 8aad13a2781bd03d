"""Loss functions of the meta-learning trainer (ReFusion, Bai et al., IJCV 2024).

All functions take and return ``torch`` tensors and are differentiable in
every argument, including the proposed weights, so the meta-gradient of the
loss proposer can flow through them.

References
----------
H. Bai, Z. Zhao, J. Zhang, Y. Wu, L. Deng, Y. Cui, B. Jiang, S. Xu,
"ReFusion: Learning Image Fusion from Reconstruction with Learnable Loss via
Meta-Learning", International Journal of Computer Vision, 2024.
arXiv:2312.07943.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["sobel_gradient", "fusion_loss", "reconstruction_loss", "REC_REDUCTIONS"]

#: Ways :func:`reconstruction_loss` combines the sources' errors at a pixel.
REC_REDUCTIONS = ("max", "mean")

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
    >>> sobel_gradient(step)[0, 0, 1].tolist()
    [0.0, 4.0, 4.0, 0.0]
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


def fusion_loss(sources: torch.Tensor, fused: torch.Tensor, w_int: torch.Tensor, w_grad: torch.Tensor,
                lambda_grad: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The learnable fusion loss ``L_fuse`` that trains the fusion network.

    ``L_fuse = sum_s mean((w_int_s * (I_s - F))^2)
    + lambda_grad * sum_s mean((w_grad_s * (grad I_s - grad F))^2)``,
    with ``grad`` the Sobel magnitude of :func:`sobel_gradient`.

    Parameters
    ----------
    sources : Tensor
        ``N x S x H x W`` sources in [0, 1], in the order the fuser saw them.
    fused : Tensor
        ``N x 1 x H x W`` fused image in [0, 1].
    w_int, w_grad : Tensor
        ``N x S x H x W`` pixel-wise weights (summing to 1 over ``S``) for the
        intensity and the gradient terms, from a loss proposer. Not detached
        by this function: gradients flow into them.
    lambda_grad : float
        Weight of the gradient terms (dimensionless, >= 0).

    Returns
    -------
    loss : Tensor
        Scalar ``L_fuse``.
    parts : dict of str to Tensor
        ``"int"`` and ``"grad"``: the two unweighted sums (detached), for logs.
    """
    if sources.dim() != 4 or fused.dim() != 4 or fused.shape[1] != 1:
        raise InputError(f"fusion_loss expects N x S x H x W sources and N x 1 x H x W fused, "
                         f"got {tuple(sources.shape)} and {tuple(fused.shape)}")
    _check_same("fusion_loss weights w_int", sources, w_int)
    _check_same("fusion_loss weights w_grad", sources, w_grad)
    term_int = ((w_int * (sources - fused)) ** 2).mean(dim=(0, 2, 3)).sum()
    g_src = sobel_gradient(sources)
    g_fused = sobel_gradient(fused)
    term_grad = ((w_grad * (g_src - g_fused)) ** 2).mean(dim=(0, 2, 3)).sum()
    loss = term_int + lambda_grad * term_grad
    return loss, {"int": term_int.detach(), "grad": term_grad.detach()}


def reconstruction_loss(targets: torch.Tensor, reconstructed: torch.Tensor,
                        reduction: str = "max") -> torch.Tensor:
    """The reconstruction loss ``L_rec`` (trains the reconstructor; meta-objective).

    ``L_rec = mean(max_s |I_s - R_s|^2) + mean(max_s |grad I_s - grad R_s|^2)``:
    at each pixel only the worse-rebuilt source counts, so a fused image scores
    well only if *every* source can be recovered from it. With
    ``reduction="mean"`` the sources' squared errors are averaged instead of
    taking the worse one (an ablation of the meta-objective).

    Parameters
    ----------
    targets : Tensor
        ``N x S x H x W`` sources in canonical source order (e.g. infrared,
        visible), in [0, 1].
    reconstructed : Tensor
        ``N x S x H x W`` estimates from a reconstructor, same order.
    reduction : {"max", "mean"}
        How the ``S`` sources' errors at a pixel are combined.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    _check_same("reconstruction_loss", targets, reconstructed)
    if reduction not in REC_REDUCTIONS:
        raise InputError(f"reconstruction_loss: reduction must be one of {REC_REDUCTIONS}, got {reduction!r}")
    err_int = (targets - reconstructed) ** 2
    err_grad = (sobel_gradient(targets) - sobel_gradient(reconstructed)) ** 2
    if reduction == "max":
        return err_int.amax(dim=1).mean() + err_grad.amax(dim=1).mean()
    return err_int.mean() + err_grad.mean()
