"""The ReFusion fusion network and its reusable building blocks.

This is the fusion module F of ReFusion, layer for layer as published by the
authors (59,856 parameters), written as plain, differentiable PyTorch. The
building blocks (:class:`LayerNorm2d`, :class:`Attention`, :class:`FeedForward`,
:class:`TransformerBlock`, :func:`stem_conv`, :func:`head_conv`) are shared with
the loss-proposal and reconstruction modules.

:meth:`ReFusionNet.forward` is the readable, trainable definition (works with
autograd and :func:`torch.func.functional_call`). Inference goes through
:func:`fusekit_refusion.engine.infer`, the same arithmetic in a faster,
memory-bounded tiled engine; the fuser runs it on the sources mirrored by 13
pixels at their borders (its ``border``). This module imports nothing from
the engine, so the two do not import each other.

References
----------
.. [1] H. Bai, Z. Zhao, J. Zhang, Y. Wu, L. Deng, Y. Cui, B. Jiang, S. Xu,
   "ReFusion: Learning Image Fusion from Reconstruction with Learnable Loss
   via Meta-Learning", International Journal of Computer Vision, 2024,
   arXiv:2312.07943.
.. [2] S. W. Zamir, A. Arora, S. Khan, M. Hayat, F. S. Khan, M.-H. Yang,
   "Restormer: Efficient Transformer for High-Resolution Image Restoration",
   CVPR 2022 (the transposed attention and gated feed-forward blocks).

Examples
--------
>>> import torch
>>> from fusekit_refusion.network import ReFusionNet
>>> net = ReFusionNet()
>>> sum(p.numel() for p in net.parameters())
59856
>>> net(torch.rand(1, 2, 32, 40)).shape
torch.Size([1, 1, 32, 40])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fusekit.errors import InputError, ParameterError

__all__ = [
    "LayerNorm2d",
    "Attention",
    "FeedForward",
    "TransformerBlock",
    "CrossAttentionFusion",
    "ReFusionNet",
    "stem_conv",
    "head_conv",
    "pointwise_conv",
    "depthwise_conv",
    "PARAMETER_COUNT",
]

#: Number of parameters of the published fusion network.
PARAMETER_COUNT = 59_856

#: Epsilon of the channel layer norm (as published).
LN_EPS = 1e-5


def pointwise_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """1x1 convolution without bias, ``N x c_in x H x W -> N x c_out x H x W``."""
    return nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)


def depthwise_conv(channels: int) -> nn.Conv2d:
    """Depthwise 3x3 convolution without bias, zero padding 1 (shape preserving)."""
    return nn.Conv2d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=False)


def stem_conv(c_in: int = 1, c_out: int = 16) -> nn.Conv2d:
    """3x3 stem convolution without bias, zero padding 1: ``c_in -> c_out`` channels."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)


def head_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 output-head convolution without bias, zero padding 1 (same as :func:`stem_conv`)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of every pixel, on ``N x C x H x W`` directly.

    Equivalent to permuting to ``N x (H W) x C``, applying
    :class:`torch.nn.LayerNorm` (biased variance, ``eps = 1e-5``) with a
    per-channel weight and bias, and permuting back, but without the two
    permuted copies.

    Parameters
    ----------
    channels : int
        ``C``, the number of channels normalised together.
    eps : float
        Added to the variance before the square root.

    Examples
    --------
    >>> ln = LayerNorm2d(4)
    >>> y = ln(torch.randn(2, 4, 5, 6))
    >>> bool(torch.allclose(y.mean(1), torch.zeros(2, 5, 6), atol=1e-6))
    True
    """

    def __init__(self, channels: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
        xhat = (x - mean) * torch.rsqrt(var + self.eps)
        return xhat * self.weight[:, None, None] + self.bias[:, None, None]


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x heads x (C/heads) x (H W)`` (a view when contiguous)."""
    n, c, h, w = t.shape
    return t.reshape(n, heads, c // heads, h * w)


def transposed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         temperature: torch.Tensor, heads: int) -> torch.Tensor:
    """Channel ("transposed") attention of Restormer [2]_, global over the image.

    Each head's queries and keys are L2-normalised along the pixels, the
    ``(C/heads) x (C/heads)`` matrix ``softmax(q k^T * temperature)`` is
    formed and applied to the values.

    Parameters
    ----------
    q, k, v : Tensor
        ``N x C x H x W`` each.
    temperature : Tensor
        ``heads x 1 x 1``, a learnt scale per head.
    heads : int
        Number of heads; must divide ``C``.

    Returns
    -------
    Tensor
        ``N x C x H x W``.
    """
    n, c, h, w = v.shape
    qh = F.normalize(_split_heads(q, heads), dim=-1)
    kh = F.normalize(_split_heads(k, heads), dim=-1)
    attn = torch.softmax(qh @ kh.transpose(-2, -1) * temperature, dim=-1)
    return (attn @ _split_heads(v, heads)).reshape(n, c, h, w)


class Attention(nn.Module):
    """Multi-Dconv head transposed self-attention (MDTA) of Restormer [2]_.

    1x1 conv ``C -> 3C``, depthwise 3x3, split into q, k, v, channel
    attention per head (:func:`transposed_attention`), 1x1 projection.

    Parameters
    ----------
    dim : int
        ``C``, channels in and out.
    heads : int
        Number of heads; must divide ``dim``.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ParameterError(f"heads must divide dim; got dim={dim}, heads={heads}; pick heads dividing dim")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = pointwise_conv(dim, 3 * dim)
        self.qkv_dwconv = depthwise_conv(3 * dim)
        self.project_out = pointwise_conv(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(transposed_attention(q, k, v, self.temperature, self.heads))


class FeedForward(nn.Module):
    """Gated depthwise-conv feed-forward network (GDFN) of Restormer [2]_.

    1x1 conv ``C -> 2 E C``, depthwise 3x3, halves ``a, b``,
    ``GELU(a) * b``, 1x1 conv ``E C -> C`` (``E`` the expansion).

    Parameters
    ----------
    dim : int
        ``C``, channels in and out.
    expansion : float
        ``E``, hidden width factor.
    """

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = pointwise_conv(dim, 2 * hidden)
        self.dwconv = depthwise_conv(2 * hidden)
        self.project_out = pointwise_conv(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """Restormer block: ``x + Attention(LN(x))`` then ``x + FFN(LN(x))``.

    Parameters
    ----------
    dim : int
        Channels ``C`` (shape ``N x C x H x W`` in and out).
    heads : int
        Attention heads.
    ffn_expansion : float
        Hidden width factor of the feed-forward network.

    Examples
    --------
    >>> blk = TransformerBlock(16, 8, 2)
    >>> blk(torch.rand(1, 16, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
    """

    def __init__(self, dim: int, heads: int, ffn_expansion: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = FeedForward(dim, ffn_expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class CrossAttentionFusion(nn.Module):
    """The fusion block joining the two encoder streams (the authors' ``FM``).

    Each stream makes q, k, v (1x1 conv to ``3C`` + depthwise 3x3). Stream 1
    is updated with attention whose queries come from stream 2 and keys and
    values from stream 1 (temperature 1), stream 2 symmetrically (temperature
    2); each result passes a 1x1 projection and is added to its stream. The
    concatenation ``[x1, x2]`` (``2C`` channels) gives two gates
    ``g1, g2`` (1x1 ``2C -> 8C`` + depthwise 3x3, halves), each stream is
    expanded ``C -> 4C`` (1x1 + depthwise 3x3), multiplied by ``GELU`` of its
    gate and projected ``4C -> 2C``; both projections are added to the
    concatenation.

    Parameters
    ----------
    dim : int
        ``C``, channels of each stream. Output has ``2C`` channels.
    heads : int
        Attention heads.
    """

    def __init__(self, dim: int = 16, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.temperature1 = nn.Parameter(torch.ones(heads, 1, 1))
        self.temperature2 = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv1 = pointwise_conv(dim, 3 * dim)
        self.qkv1_dwconv = depthwise_conv(3 * dim)
        self.qkv2 = pointwise_conv(dim, 3 * dim)
        self.qkv2_dwconv = depthwise_conv(3 * dim)
        self.project_mid1 = pointwise_conv(dim, dim)
        self.project_mid2 = pointwise_conv(dim, dim)
        self.project_E = pointwise_conv(2 * dim, 8 * dim)
        self.project_E_d = depthwise_conv(8 * dim)
        self.project_E1 = pointwise_conv(dim, 4 * dim)
        self.project_E1_d = depthwise_conv(4 * dim)
        self.project_E2 = pointwise_conv(dim, 4 * dim)
        self.project_E2_d = depthwise_conv(4 * dim)
        self.project_out1 = pointwise_conv(4 * dim, 2 * dim)
        self.project_out2 = pointwise_conv(4 * dim, 2 * dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        q1, k1, v1 = self.qkv1_dwconv(self.qkv1(x1)).chunk(3, dim=1)
        q2, k2, v2 = self.qkv2_dwconv(self.qkv2(x2)).chunk(3, dim=1)
        x1 = x1 + self.project_mid1(transposed_attention(q2, k1, v1, self.temperature1, self.heads))
        x2 = x2 + self.project_mid2(transposed_attention(q1, k2, v2, self.temperature2, self.heads))
        out = torch.cat([x1, x2], dim=1)
        g1, g2 = self.project_E_d(self.project_E(out)).chunk(2, dim=1)
        e1 = F.gelu(g1) * self.project_E1_d(self.project_E1(x1))
        e2 = F.gelu(g2) * self.project_E2_d(self.project_E2(x2))
        return out + self.project_out1(e1) + self.project_out2(e2)


class ReFusionNet(nn.Module):
    """ReFusion's fusion module F [1]_: two sources in, one fused image out.

    Per source a 3x3 stem (1 -> ``dim``) and an encoder of ``blocks``
    :class:`TransformerBlock`; :class:`CrossAttentionFusion`; a decoder of
    ``blocks`` blocks at ``2 dim`` channels; head 3x3 ``2 dim -> dim``,
    LeakyReLU (slope 0.01), 3x3 ``dim -> 1``, sigmoid. No down-sampling, so
    any ``H x W`` works. The defaults are the published configuration
    (59,856 parameters).

    Parameters
    ----------
    dim : int
        Width of each encoder stream.
    blocks : int
        Transformer blocks per encoder and in the decoder.
    heads : int
        Attention heads in every block.
    ffn_expansion : float
        Feed-forward expansion factor.

    Notes
    -----
    Input ``N x 2 x H x W`` in [0, 1] (luminance of source 1 and source 2,
    in the task's order); output ``N x 1 x H x W`` in (0, 1). The two
    encoders are not tied, so the order of the sources matters. Module names
    follow the authors' code, so their checkpoints map one to one (see
    :mod:`fusekit_refusion.checkpoint`).
    """

    def __init__(self, dim: int = 16, blocks: int = 2, heads: int = 8,
                 ffn_expansion: float = 2) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.project_in_1 = stem_conv(1, dim)
        self.project_in_2 = stem_conv(1, dim)
        self.encoder1 = nn.ModuleList(TransformerBlock(dim, heads, ffn_expansion) for _ in range(blocks))
        self.encoder2 = nn.ModuleList(TransformerBlock(dim, heads, ffn_expansion) for _ in range(blocks))
        self.FM = CrossAttentionFusion(dim, heads)
        self.decoder = nn.ModuleList(TransformerBlock(2 * dim, heads, ffn_expansion) for _ in range(blocks))
        self.project_out_0 = head_conv(2 * dim, dim)
        self.project_out_1 = head_conv(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse ``N x 2 x H x W`` -> ``N x 1 x H x W`` (differentiable reference path)."""
        if x.ndim != 4 or x.shape[1] != 2:
            raise InputError(f"expected sources of shape N x 2 x H x W, got {tuple(x.shape)}; stack two images")
        x1 = self.project_in_1(x[:, :1])
        x2 = self.project_in_2(x[:, 1:])
        for blk in self.encoder1:
            x1 = blk(x1)
        for blk in self.encoder2:
            x2 = blk(x2)
        out = self.FM(x1, x2)
        for blk in self.decoder:
            out = blk(out)
        out = F.leaky_relu(self.project_out_0(out), 0.01)
        return torch.sigmoid(self.project_out_1(out))
