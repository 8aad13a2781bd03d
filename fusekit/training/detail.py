"""Detail terms of the proposer's meta-objective (``--meta-detail W --meta-detail-target T``).

ReFusion's meta-objective asks only that the sources can be rebuilt from
the fused image. fusekit can add a detail term that scores the fused image
itself (a design change, issue 21). Two targets:

``max``
    The hand-made max-gradient term (:meth:`~fusekit.training.meta.MetaStep.detail_loss`): the fused
    image's Sobel magnitude against, at each pixel, the larger of the sources'. No image reaches it
    where the sources differ (switching between them pixel by pixel adds
    gradient energy), so it rewards switching, not focus.
``focus``
    A target image the fused image *can* equal: at each pixel the source
    whose local gradient energy (mean squared Sobel magnitude over a
    ``window x window`` neighbourhood) is larger: a spatial-domain focus rule
    in the manner of Li, Kwok & Wang (Information Fusion 2001), with gradient
    energy per pixel in place of their blocks' spatial frequency. The fused image's
    signed Sobel components are compared with the target's, so pixel-wise
    switching is penalised rather than rewarded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .losses import _SOBEL_X, _SOBEL_Y, sobel_gradient

__all__ = ["DETAIL_TARGETS", "FOCUS_WINDOW", "focus_target", "signed_gradient_loss"]

#: Values of ``TrainConfig.meta_detail_target``.
DETAIL_TARGETS = ("max", "focus")

#: Side, in pixels, of the neighbourhood over which ``focus`` averages gradient energy.
FOCUS_WINDOW = 7


def focus_target(sources: torch.Tensor, window: int = FOCUS_WINDOW) -> torch.Tensor:
    """The source with the larger local gradient energy, pixel by pixel.

    Parameters
    ----------
    sources : Tensor
        ``N x S x H x W`` in [0, 1].
    window : int
        Odd side in pixels of the box over which squared Sobel magnitudes are averaged
        (replicate padding at the borders).

    Returns
    -------
    Tensor
        ``N x 1 x H x W``: at each pixel the intensity of the source whose local energy is largest
        (the first source on ties); no gradient flows back into ``sources``.
    """
    with torch.no_grad():
        radius = window // 2
        energy = sobel_gradient(sources) ** 2
        energy = F.avg_pool2d(F.pad(energy, (radius,) * 4, mode="replicate"), window, stride=1)
        choice = F.one_hot(energy.argmax(dim=1), sources.shape[1]).permute(0, 3, 1, 2).to(sources.dtype)
        return (choice * sources).sum(dim=1, keepdim=True)


def signed_gradient_loss(fused: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((Sx F - Sx T)^2 + (Sy F - Sy T)^2)`` with the 3x3 Sobel kernels, zero padding.

    Parameters
    ----------
    fused, target : Tensor
        ``N x 1 x H x W``.

    Returns
    -------
    Tensor
        Scalar; zero exactly when the two images differ by nothing but a constant away from the border.
    """
    diff = fused - target
    kx = _SOBEL_X.to(diff.device, diff.dtype).view(1, 1, 3, 3)
    ky = _SOBEL_Y.to(diff.device, diff.dtype).view(1, 1, 3, 3)
    return (F.conv2d(diff, kx, padding=1) ** 2 + F.conv2d(diff, ky, padding=1) ** 2).mean()
