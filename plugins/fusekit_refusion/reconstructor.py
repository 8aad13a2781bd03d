"""ReFusion's reconstruction module, registered as reconstructor ``refusion``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fusekit.interfaces import Reconstructor

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ReFusionReconstructor"]


class ReFusionReconstructor(Reconstructor):
    """Rebuilds both sources from the fused image (the meta-objective of ReFusion).

    Builds :class:`~fusekit_refusion.meta_networks.ReconstructionNet`
    (H. Bai et al., ReFusion, IJCV 2024, arXiv:2312.07943).

    Examples
    --------
    >>> net = ReFusionReconstructor().build_network()   # doctest: +SKIP
    >>> net(fused).shape   # N x 2 x H x W              # doctest: +SKIP
    """

    name: ClassVar[str] = "refusion"
    summary: ClassVar[str] = "ReFusion reconstruction network (rebuilds both sources from the fused image)"

    def build_network(self) -> "torch.nn.Module":
        from .meta_networks import ReconstructionNet

        return ReconstructionNet()
