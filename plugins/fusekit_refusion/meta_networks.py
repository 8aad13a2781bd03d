"""Networks of ReFusion's loss proposal module P and reconstruction module R.

ReFusion (H. Bai et al., "ReFusion: Learning Image Fusion from Reconstruction
with Learnable Loss via Meta-Learning", IJCV 2024, arXiv:2312.07943) trains
its fusion network with a loss whose pixel-wise weights come from P, and
judges a fused image by how well R rebuilds both sources from it. The authors
did not publish P and R; these follow ``shared/REFUSION.md`` (built from the
same blocks as the fusion network, :class:`~fusekit_refusion.network.TransformerBlock`):

* P: per source a 3x3 stem (1 -> 16) and 2 blocks at 16 channels;
  concatenation; 2 blocks at 32 channels; 3x3 conv 32 -> 16, PReLU, 3x3
  conv 16 -> 4; softmax over the two sources for channels (0, 1) (intensity
  weights) and (2, 3) (gradient weights). 44,817 parameters.
* R: one 3x3 stem (1 -> 16), 2 blocks at 16 channels, 1x1 conv 16 -> 32,
  2 blocks at 32 channels, 3x3 conv 32 -> 16, PReLU, 3x3 conv 16 -> 2,
  sigmoid. 37,617 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .network import TransformerBlock, head_conv, pointwise_conv, stem_conv

__all__ = ["LossProposalNet", "ReconstructionNet"]


class LossProposalNet(nn.Module):
    """P: ``N x 2 x H x W`` sources -> ``(w_int, w_grad)``, each ``N x 2 x H x W``.

    The weights are positive and sum to 1 over the two sources at every pixel.

    Parameters
    ----------
    dim : int
        Width of each source stream (the merged stream has ``2 dim``).
    blocks : int
        Transformer blocks per stream and after merging.
    heads : int
        Attention heads.
    ffn_expansion : float
        Feed-forward expansion factor.

    Examples
    --------
    >>> w_int, w_grad = LossProposalNet()(torch.rand(1, 2, 16, 16))
    >>> torch.allclose(w_int.sum(1), torch.ones(1, 16, 16))
    True
    """

    def __init__(self, dim: int = 16, blocks: int = 2, heads: int = 8, ffn_expansion: float = 2) -> None:
        super().__init__()
        self.stem1 = stem_conv(1, dim)
        self.stem2 = stem_conv(1, dim)
        self.encoder1 = nn.Sequential(*(TransformerBlock(dim, heads, ffn_expansion) for _ in range(blocks)))
        self.encoder2 = nn.Sequential(*(TransformerBlock(dim, heads, ffn_expansion) for _ in range(blocks)))
        self.merged = nn.Sequential(*(TransformerBlock(2 * dim, heads, ffn_expansion) for _ in range(blocks)))
        self.head0 = head_conv(2 * dim, dim)
        self.act = nn.PReLU()
        self.head1 = head_conv(dim, 4)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"expected sources of shape N x 2 x H x W, got {tuple(x.shape)}")
        f1 = self.encoder1(self.stem1(x[:, :1]))
        f2 = self.encoder2(self.stem2(x[:, 1:]))
        return self.head1(self.act(self.head0(self.merged(torch.cat([f1, f2], dim=1)))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._logits(x)
        return F.softmax(logits[:, :2], dim=1), F.softmax(logits[:, 2:], dim=1)

    def log_proposal(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logarithms of :meth:`forward`'s weights, computed without underflow (log-softmax).

        Parameters
        ----------
        x : Tensor
            Sources, ``N x 2 x H x W``.

        Returns
        -------
        log_w_int, log_w_grad : Tensor
            ``N x 2 x H x W`` each, ``logsumexp`` over dim 1 equal to 0. Used by the
            order-equivariant wrapper's ``"logit"`` mean, where a saturated softmax would have no
            gradient.
        """
        logits = self._logits(x)
        return F.log_softmax(logits[:, :2], dim=1), F.log_softmax(logits[:, 2:], dim=1)


class ReconstructionNet(nn.Module):
    """R: fused ``N x 1 x H x W`` -> source estimates ``N x 2 x H x W`` in (0, 1).

    Channel ``i`` estimates source ``i`` in the task's canonical order.

    Parameters
    ----------
    dim, blocks, heads, ffn_expansion
        As in :class:`LossProposalNet`.

    Examples
    --------
    >>> ReconstructionNet()(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 2, 16, 16])
    """

    def __init__(self, dim: int = 16, blocks: int = 2, heads: int = 8, ffn_expansion: float = 2) -> None:
        super().__init__()
        self.stem = stem_conv(1, dim)
        self.encoder = nn.Sequential(*(TransformerBlock(dim, heads, ffn_expansion) for _ in range(blocks)))
        self.widen = pointwise_conv(dim, 2 * dim)
        self.decoder = nn.Sequential(*(TransformerBlock(2 * dim, heads, ffn_expansion) for _ in range(blocks)))
        self.head0 = head_conv(2 * dim, dim)
        self.act = nn.PReLU()
        self.head1 = head_conv(dim, 2)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        if fused.ndim != 4 or fused.shape[1] != 1:
            raise ValueError(f"expected a fused image of shape N x 1 x H x W, got {tuple(fused.shape)}")
        y = self.decoder(self.widen(self.encoder(self.stem(fused))))
        return torch.sigmoid(self.head1(self.act(self.head0(y))))
