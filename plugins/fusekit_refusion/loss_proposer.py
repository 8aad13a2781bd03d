"""ReFusion's learnable loss proposal module, registered as loss proposer ``refusion``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fusekit.interfaces import LossProposer

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ReFusionLossProposer"]


class ReFusionLossProposer(LossProposer):
    """Pixel-wise intensity and gradient weights learned by meta-learning.

    Builds :class:`~fusekit_refusion.meta_networks.LossProposalNet`; the
    trainer (:mod:`fusekit.training.trainer`) updates it so that the fused
    image keeps what the reconstructor needs to rebuild every source
    (H. Bai et al., ReFusion, IJCV 2024, arXiv:2312.07943).

    Examples
    --------
    >>> net = ReFusionLossProposer().build_network()    # doctest: +SKIP
    >>> w_int, w_grad = net(sources)                     # doctest: +SKIP
    """

    name: ClassVar[str] = "refusion"
    learnable: ClassVar[bool] = True
    summary: ClassVar[str] = "ReFusion loss proposal network (meta-learned pixel-wise loss weights)"

    def build_network(self) -> "torch.nn.Module":
        from .meta_networks import LossProposalNet

        return LossProposalNet()
