"""Fast, memory-bounded inference for :class:`~fusekit_refusion.network.ReFusionNet`.

The engine computes exactly what :meth:`ReFusionNet.forward` computes (equal
to float rounding, about 1e-6), but

* keeps features channels-last (``H x W x C`` in memory), so every 1x1
  convolution is one matrix product, depthwise convolutions use the fast
  channels-last kernels, and the per-pixel layer norm's two reductions over
  the channels are matrix-vector products (:func:`_ln`);
* folds constants into the weights once per network: the layer-norm scale
  and shift into the following 1x1 convolution, and each head's small
  ``(C/h) x (C/h)`` attention matrix together with the output projection into
  one ``C x C`` matrix, so ``softmax(q k^T) v`` followed by the projection is a
  single matrix product added in place to the residual;
* never forms the L2-normalised q and k: the ``q k^T`` Gram matrix and the
  squared norms are sums over pixels, accumulated and divided afterwards;
* processes the image in tiles of about ``chunk_pixels`` pixels (squares of
  128 x 128 by default, full-width strips on narrow images) with a halo of
  two pixels, so every temporary stays a few MiB: the allocator reuses them
  instead of mapping fresh pages (page faults are most of the cost of the
  plain implementation) and they stay in cache. Memory is one ``H x W x 32``
  feature buffer, updated in place, plus the tiles;
* on large images (feature buffer over :data:`STREAM_BYTES`, about 4
  megapixels, on CPU) keeps that buffer, and the attention values between
  a block's two passes, in an unnamed temporary file (:class:`_Spill`)
  and streams it through in bands of rows, so memory is a few bands, not
  ``128 x H x W`` bytes (4096 x 3072: 1.3-1.6 GiB peak for the whole
  process instead of 2.4-2.8 GiB, BENCHMARKS.md ``refusion-large``).
  Same arithmetic in the same order: the result equals the in-memory
  engine's bit for bit;
* on CPU runs the tiles of a band on ``torch.get_num_threads()`` worker
  threads with one intra-op thread each, instead of paying an OpenMP
  fork/join per small operation.

Why tiles are exact: apart from the attention matrices every operation is
local (1x1 and 3x3 convolutions, pointwise functions), and a 3x3 convolution
with zero padding reads one pixel beyond its output. A transformer block
(attention then feed-forward, two depthwise 3x3 deep) therefore needs two
pixels of input beyond the box it writes; tiles are cut with that halo,
clipped at the image border, where the zero padding of the tile is the
image's own padding. The attention matrix of each block is global: ``q k^T``
and the norms of q and k are sums over all pixels. When the image has several
tiles a first pass accumulates those sums over the tiles (computing only q and
k; tile sums are added in a fixed order, in float64), the softmax matrix is
formed from the totals, and a second pass applies the block. On images up
to about two megapixels the first pass also keeps the values ``v``
(:data:`V_CACHE_BYTES`), so the second needs only the mixing product and the
feed-forward, with a one-pixel halo. The result
therefore does not depend on the tile size beyond float rounding (tested).
Mirrored border (``border > 0``, what :meth:`ReFusionNet.infer` uses): the
sources are mirrored by ``border`` pixels, the network runs on the larger
image and the result is cropped, so no pixel of the result depends on the
zero padding. The attention sums are kept those of the unpadded image: the
mirrored run contributes only pixels at least :data:`RECEPTIVE_RADIUS` inside
the image (there its features equal the unpadded network's), and the outer
ring comes from four strips of the unpadded image run alongside. Output
pixels farther than ``RECEPTIVE_RADIUS`` from the border therefore equal the
plain forward's to float rounding.
In-place update: bands of tiles go top to bottom; a band's input rows
(with halo) are copied before its tiles write, and the original rows the next
band needs above it are kept from that copy. A streamed buffer is read one
band at a time (its upper halo from that kept copy), and the band's updated
rows are written back once its tiles are done.

Progress: every tile of every pass calls
:func:`fusekit.interfaces.report_progress` (``done`` of ``total``, tiles x
passes, counted over all the engine calls of one fuse: see ``progress`` of
:func:`infer`).

Examples
--------
>>> import torch
>>> from fusekit_refusion.network import ReFusionNet
>>> from fusekit_refusion.engine import infer
>>> net = ReFusionNet().eval()
>>> x = torch.rand(1, 2, 24, 20)
>>> with torch.no_grad():
...     ref = net(x)
>>> bool((infer(net, x, chunk_pixels=100) - ref).abs().max() < 1e-5)
True
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fusekit.errors import InputError, ParameterError
from fusekit.interfaces import report_progress

from .network import LN_EPS, ReFusionNet, TransformerBlock

__all__ = ["DEFAULT_CHUNK_PIXELS", "RECEPTIVE_RADIUS", "STREAM_BYTES", "infer", "prepare", "reflect_pad"]

#: Default pixels per tile: 128 x 128 tiles keep the largest temporary (128
#: channels) at 8 MiB, below glibc's largest mmap threshold, so it is reused;
#: the two-pixel halo adds about 6 %. Measured faster than 2**15..2**18.
DEFAULT_CHUNK_PIXELS = 1 << 14

#: Pixels of context a tile needs on each side (two 3x3 convolutions deep).
HALO = 2

#: ``F.normalize``'s epsilon: norms are clamped to at least this value.
NORM_EPS = 1e-12

#: Reach of :class:`ReFusionNet`'s local operations: 13 chained 3x3 convolutions
#: (stem 1, four transformer blocks 2 each, fusion block 2, head 2). An output
#: pixel reads no input farther than this (the attention matrices aside), so a
#: reflected margin this wide keeps every image pixel away from the zero padding.
RECEPTIVE_RADIUS = 13


def _reflect_index(n: int, margin: int, device) -> torch.Tensor:
    """Indices ``-margin .. n + margin - 1`` folded into ``0 .. n - 1`` by mirroring (edge not repeated)."""
    idx = torch.arange(-margin, n + margin, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx < n, idx, period - idx)


def reflect_pad(x: torch.Tensor, margin: int) -> torch.Tensor:
    """Mirror ``margin`` pixels onto every side of ``... x H x W`` (edge pixel not repeated).

    Same as ``F.pad(x, (margin,) * 4, mode="reflect")`` where that is defined
    (``margin < H`` and ``margin < W``), and mirrors again (periodically) on
    images smaller than the margin; a side of length 1 is replicated.

    Parameters
    ----------
    x : Tensor
        ``... x H x W``.
    margin : int
        Pixels added on each side, ``>= 0``.

    Returns
    -------
    Tensor
        ``... x (H + 2 margin) x (W + 2 margin)``.

    Examples
    --------
    >>> reflect_pad(torch.arange(3.).view(1, 3), 2)
    tensor([[2., 1., 0., 1., 2., 1., 0.],
            [2., 1., 0., 1., 2., 1., 0.],
            [2., 1., 0., 1., 2., 1., 0.],
            [2., 1., 0., 1., 2., 1., 0.],
            [2., 1., 0., 1., 2., 1., 0.]])
    """
    if margin == 0:
        return x
    rows = _reflect_index(x.shape[-2], margin, x.device)
    cols = _reflect_index(x.shape[-1], margin, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


# --------------------------------------------------------------------------
# Weights prepared once per network
# --------------------------------------------------------------------------
@dataclass
class _Block:
    """A transformer block with the layer norms folded into the 1x1 convs.

    Matrices are stored transposed (``C_in x C_out``) for ``pixels @ W``.
    """

    dim: int
    heads: int
    qkv_w: torch.Tensor  # C x 3C  (LN1 scale folded)
    qkv_b: torch.Tensor  # 3C      (LN1 shift through qkv)
    qkv_dw: torch.Tensor  # 3C x 1 x 3 x 3
    temperature: torch.Tensor  # heads
    proj_w: torch.Tensor  # C x C (out projection, not transposed: C_out x C_in)
    ffn_a_w: torch.Tensor  # C x H, gate half (LN2 scale folded)
    ffn_a_b: torch.Tensor  # H
    ffn_a_dw: torch.Tensor  # H x 1 x 3 x 3
    ffn_b_w: torch.Tensor  # C x H, value half
    ffn_b_b: torch.Tensor
    ffn_b_dw: torch.Tensor
    ffn_out_w: torch.Tensor  # H x C


@dataclass
class _Fusion:
    """The cross-attention fusion block (authors' ``FM``), weights transposed."""

    dim: int
    heads: int
    qkv1_w: torch.Tensor
    qkv1_dw: torch.Tensor
    qkv2_w: torch.Tensor
    qkv2_dw: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    mid1: torch.Tensor  # C_out x C_in
    mid2: torch.Tensor
    g1_w: torch.Tensor  # 2C x 4C (first half of project_E)
    g1_dw: torch.Tensor
    g2_w: torch.Tensor  # 2C x 4C (second half)
    g2_dw: torch.Tensor
    e1_w: torch.Tensor  # C x 4C
    e1_dw: torch.Tensor
    e2_w: torch.Tensor
    e2_dw: torch.Tensor
    out1_w: torch.Tensor  # 4C x 2C
    out2_w: torch.Tensor


@dataclass
class _Prepared:
    dim: int
    stem_w: torch.Tensor  # 2C x 1 x 3 x 3 (both stems, grouped conv)
    enc1: list
    enc2: list
    fusion: _Fusion
    dec: list
    head0: torch.Tensor
    head1: torch.Tensor


def _pw(conv: torch.nn.Conv2d) -> torch.Tensor:
    """1x1 conv weight ``C_out x C_in x 1 x 1`` -> ``C_in x C_out`` (contiguous)."""
    return conv.weight.detach()[:, :, 0, 0].t().contiguous()


def _prep_block(blk: TransformerBlock) -> _Block:
    attn, ffn = blk.attn, blk.ffn
    w1, b1 = blk.norm1.weight.detach(), blk.norm1.bias.detach()
    w2, b2 = blk.norm2.weight.detach(), blk.norm2.bias.detach()
    qkv = attn.qkv.weight.detach()[:, :, 0, 0]  # 3C x C
    fin = ffn.project_in.weight.detach()[:, :, 0, 0]  # 2H x C
    hid = fin.shape[0] // 2
    fdw = ffn.dwconv.weight.detach()
    return _Block(
        dim=qkv.shape[1],
        heads=attn.heads,
        qkv_w=(qkv * w1).t().contiguous(),
        qkv_b=qkv @ b1,
        qkv_dw=attn.qkv_dwconv.weight.detach(),
        temperature=attn.temperature.detach().reshape(-1),
        proj_w=attn.project_out.weight.detach()[:, :, 0, 0],
        ffn_a_w=(fin[:hid] * w2).t().contiguous(),
        ffn_a_b=fin[:hid] @ b2,
        ffn_a_dw=fdw[:hid],
        ffn_b_w=(fin[hid:] * w2).t().contiguous(),
        ffn_b_b=fin[hid:] @ b2,
        ffn_b_dw=fdw[hid:],
        ffn_out_w=_pw(ffn.project_out),
    )


def prepare(net: ReFusionNet) -> _Prepared:
    """Fold and transpose the weights of ``net`` for the engine (cheap, no copies kept in ``net``)."""
    fm = net.FM
    e_w, e_dw = _pw(fm.project_E), fm.project_E_d.weight.detach()
    half = e_w.shape[1] // 2
    fusion = _Fusion(
        dim=net.dim, heads=fm.heads,
        qkv1_w=_pw(fm.qkv1), qkv1_dw=fm.qkv1_dwconv.weight.detach(),
        qkv2_w=_pw(fm.qkv2), qkv2_dw=fm.qkv2_dwconv.weight.detach(),
        t1=fm.temperature1.detach().reshape(-1), t2=fm.temperature2.detach().reshape(-1),
        mid1=fm.project_mid1.weight.detach()[:, :, 0, 0], mid2=fm.project_mid2.weight.detach()[:, :, 0, 0],
        g1_w=e_w[:, :half].contiguous(), g1_dw=e_dw[:half],
        g2_w=e_w[:, half:].contiguous(), g2_dw=e_dw[half:],
        e1_w=_pw(fm.project_E1), e1_dw=fm.project_E1_d.weight.detach(),
        e2_w=_pw(fm.project_E2), e2_dw=fm.project_E2_d.weight.detach(),
        out1_w=_pw(fm.project_out1), out2_w=_pw(fm.project_out2),
    )
    return _Prepared(
        dim=net.dim,
        stem_w=torch.cat([net.project_in_1.weight.detach(), net.project_in_2.weight.detach()], 0),
        enc1=[_prep_block(b) for b in net.encoder1],
        enc2=[_prep_block(b) for b in net.encoder2],
        fusion=fusion,
        dec=[_prep_block(b) for b in net.decoder],
        head0=net.project_out_0.weight.detach(),
        head1=net.project_out_1.weight.detach(),
    )


# --------------------------------------------------------------------------
# Small helpers on channels-last pixel matrices (P x C, P = rows * W)
# --------------------------------------------------------------------------
def _dw(x: torch.Tensor, rows: int, width: int, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise 3x3 (zero padding 1) of a ``P x C`` channels-last tile (``rows x width``) -> ``P x C``."""
    c = x.shape[1]
    img = x.view(1, rows, width, c).permute(0, 3, 1, 2)  # NCHW view, channels-last memory
    out = F.conv2d(img, weight, padding=1, groups=c)
    return out.permute(0, 2, 3, 1).reshape(rows * width, c)


def _conv3x3(x: torch.Tensor, rows: int, width: int, weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Dense (or grouped) 3x3 conv, zero padding 1, ``P x C_in`` -> ``P x C_out``."""
    img = x.view(1, rows, width, x.shape[1]).permute(0, 3, 1, 2)
    out = F.conv2d(img, weight, padding=1, groups=groups)
    return out.permute(0, 2, 3, 1).reshape(rows * width, weight.shape[0])


_MEAN_VECTORS: dict = {}


def _mean_vector(c: int, device) -> torch.Tensor:
    """The vector ``(1/c, ..., 1/c)`` (cached): ``x @ it`` is the per-pixel channel mean."""
    key = (c, str(device))
    vec = _MEAN_VECTORS.get(key)
    if vec is None:
        vec = _MEAN_VECTORS[key] = torch.full((c,), 1.0 / c, dtype=torch.float32, device=device)
    return vec


def _ln(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel standardisation over channels (layer norm without affine), ``P x C`` -> new ``P x C``.

    Same two-pass arithmetic as :func:`torch.nn.functional.layer_norm` (mean,
    then the variance of the centred values, biased, ``LN_EPS`` inside the
    root), but the two per-pixel reductions over the 16 or 32 channels are
    matrix-vector products: aten's layer norm pays a fixed cost per row that
    dominates at so few channels (measured 0.46 ms vs 0.14 ms for a 132 x 132
    x 16 tile, 0.75 vs 0.22 ms at 32 channels; max difference 1e-6).
    """
    w = _mean_vector(x.shape[1], x.device)
    xc = x - torch.mv(x, w)[:, None]
    rstd = torch.mv(xc * xc, w).add_(LN_EPS).rsqrt_()
    return xc.mul_(rstd[:, None])


class _Stats:
    """Sums over pixels that define one transposed attention: ``q^T k`` and squared norms."""

    def __init__(self) -> None:
        self.gram = None
        self.qq = None
        self.kk = None

    @staticmethod
    def partial(q: torch.Tensor, k: torch.Tensor) -> tuple:
        """The sums of one tile: ``(q^T k, |q|^2, |k|^2)`` in float64 (``q, k``: ``P x C``)."""
        g = (q.t() @ k).double()
        # squared norms as Gram diagonals: a GEMM is much faster than a strided column reduction
        qq = torch.diagonal(q.t() @ q).double()
        kk = torch.diagonal(k.t() @ k).double()
        return g, qq, kk

    def add(self, q: torch.Tensor, k: torch.Tensor) -> None:
        """Accumulate pixels ``q, k`` (``P x C`` each)."""
        self.merge(self.partial(q, k))

    def merge(self, part: tuple) -> None:
        """Add the sums of one tile (tiles are merged in a fixed order: deterministic)."""
        g, qq, kk = part
        if self.gram is None:
            self.gram, self.qq, self.kk = g, qq, kk
        else:
            self.gram += g
            self.qq += qq
            self.kk += kk

    def mixing(self, temperature: torch.Tensor, heads: int, proj: torch.Tensor) -> torch.Tensor:
        """Return ``M^T`` with ``M = proj @ blockdiag(softmax per head)``, ``C x C``.

        Adding ``v @ M^T`` to the residual equals the authors'
        ``project_out(softmax(norm(q) norm(k)^T * t) @ v)``.
        """
        c = self.gram.shape[0]
        ch = c // heads
        nq = self.qq.sqrt().clamp_min(NORM_EPS)
        nk = self.kk.sqrt().clamp_min(NORM_EPS)
        corr = (self.gram / nq[:, None] / nk[None, :]).float()
        idx = torch.arange(c, device=corr.device).view(heads, ch)
        blocks = corr[idx[:, :, None], idx[:, None, :]]  # heads x ch x ch diagonal blocks
        mix = torch.block_diag(*torch.softmax(blocks * temperature.view(heads, 1, 1), dim=-1))
        return (proj @ mix).t().contiguous()


# --------------------------------------------------------------------------
# Per-tile computations
# --------------------------------------------------------------------------
def _block_qk(p: _Block, x: torch.Tensor, rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k (``P x C`` each) of a block's attention on a tile."""
    c = p.dim
    qk = torch.addmm(p.qkv_b[: 2 * c], _ln(x), p.qkv_w[:, : 2 * c])
    qk = _dw(qk, rows, width, p.qkv_dw[: 2 * c])
    return qk[:, :c], qk[:, c:]


def _sums_over(t: torch.Tensor, rows: int, width: int, valid) -> torch.Tensor:
    """``t`` (``rows*width x C``) itself, or its pixels inside ``valid`` when that is not the whole tile."""
    return t if valid is None or valid == (0, rows, 0, width) else _interior(t, rows, width, valid)


def _block_apply(p: _Block, x: torch.Tensor, rows: int, width: int, mix_t: torch.Tensor | None,
                 valid=None) -> None:
    """Apply a transformer block in place to tile ``x`` (``P x C`` contiguous).

    ``mix_t`` is the block's attention-and-projection matrix from the sums
    over the whole image (:meth:`_Stats.mixing`); ``None`` means the tile is
    the whole image and the sums are taken from this tile's q and k, over
    the box ``valid = (y0, y1, x0, x1)`` (default: every pixel).
    """
    c = p.dim
    qkv = _block_qkv(p, x, rows, width)
    if mix_t is None:
        stats = _Stats()
        stats.add(_sums_over(qkv[:, :c], rows, width, valid), _sums_over(qkv[:, c: 2 * c], rows, width, valid))
        mix_t = stats.mixing(p.temperature, p.heads, p.proj_w)
    x.addmm_(qkv[:, 2 * c:], mix_t)
    del qkv
    _block_ffn(p, x, rows, width)


def _block_qkv(p: _Block, x: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """q | k | v (``P x 3C``) of a block's attention on a tile."""
    return _dw(torch.addmm(p.qkv_b, _ln(x), p.qkv_w), rows, width, p.qkv_dw)


def _block_ffn(p: _Block, x: torch.Tensor, rows: int, width: int) -> None:
    """The feed-forward half of a block, added in place to ``x`` (``P x C``)."""
    # the two halves as separate contiguous tensors: GELU on a strided half is ~4x slower
    xhat = _ln(x)
    gated = F.gelu(_dw(torch.addmm(p.ffn_a_b, xhat, p.ffn_a_w), rows, width, p.ffn_a_dw))
    gated.mul_(_dw(torch.addmm(p.ffn_b_b, xhat, p.ffn_b_w), rows, width, p.ffn_b_dw))
    del xhat
    x.addmm_(gated, p.ffn_out_w)


def _fusion_qkv(f: _Fusion, x: torch.Tensor, rows: int, width: int):
    c = f.dim
    qkv1 = _dw(x[:, :c] @ f.qkv1_w, rows, width, f.qkv1_dw)
    qkv2 = _dw(x[:, c:] @ f.qkv2_w, rows, width, f.qkv2_dw)
    return qkv1, qkv2


def _fusion_apply(f: _Fusion, x: torch.Tensor, rows: int, width: int,
                  mixes: tuple[torch.Tensor, torch.Tensor] | None, valid=None) -> None:
    """Apply the fusion block in place to tile ``x`` (``P x 2C``: stream 1 | stream 2).

    ``mixes`` are the two attention-and-projection matrices from whole-image
    sums; ``None`` means the tile is the whole image (sums over the box
    ``valid``, default every pixel).
    """
    c = f.dim
    qkv1, qkv2 = _fusion_qkv(f, x, rows, width)
    if mixes is None:
        s1, s2 = _Stats(), _Stats()
        q1, q2 = _sums_over(qkv1, rows, width, valid), _sums_over(qkv2, rows, width, valid)
        s1.add(q2[:, :c], q1[:, c: 2 * c])  # queries of stream 2, keys of stream 1
        s2.add(q1[:, :c], q2[:, c: 2 * c])  # queries of stream 1, keys of stream 2
        mixes = (s1.mixing(f.t1, f.heads, f.mid1), s2.mixing(f.t2, f.heads, f.mid2))
    m1, m2 = mixes
    x[:, :c].addmm_(qkv1[:, 2 * c:], m1)
    x[:, c:].addmm_(qkv2[:, 2 * c:], m2)
    del qkv1, qkv2
    _fusion_rest(f, x, rows, width)


def _fusion_rest(f: _Fusion, x: torch.Tensor, rows: int, width: int) -> None:
    """The fusion block after its two attentions: the gated projections, added in place to ``x``."""
    c = f.dim
    x1, x2 = x[:, :c], x[:, c:]
    t1 = F.gelu(_dw(x @ f.g1_w, rows, width, f.g1_dw)).mul_(_dw(x1 @ f.e1_w, rows, width, f.e1_dw))
    t2 = F.gelu(_dw(x @ f.g2_w, rows, width, f.g2_dw)).mul_(_dw(x2 @ f.e2_w, rows, width, f.e2_dw))
    x.addmm_(t1, f.out1_w)
    del t1
    x.addmm_(t2, f.out2_w)


# --------------------------------------------------------------------------
# Tile scheduling over a full H x W x C buffer
# --------------------------------------------------------------------------
@dataclass
class _Grid:
    """How the image is cut: row bands ``rows`` and, within a band, column tiles ``cols``.

    ``valid = (y0, y1, x0, x1)`` is the box of real image pixels (the rest is
    a mirrored margin); the attention sums are taken over it only.
    """

    height: int
    width: int
    rows: list
    cols: list
    valid: tuple = None

    def __post_init__(self) -> None:
        if self.valid is None:
            self.valid = (0, self.height, 0, self.width)

    @property
    def single(self) -> bool:
        return len(self.rows) == 1 and len(self.cols) == 1

    def tiles(self, halo: int):
        """Yield ``(r0, r1, c0, c1, a, b, ca, cb)``: output box and its input box with halo."""
        for r0, r1 in self.rows:
            yield from self.band(r0, r1, halo)

    def band(self, r0: int, r1: int, halo: int) -> list:
        """The tiles of the band of rows ``r0 .. r1`` (as :meth:`tiles` yields them)."""
        a, b = max(0, r0 - halo), min(self.height, r1 + halo)
        return [(r0, r1, c0, c1, a, b, max(0, c0 - halo), min(self.width, c1 + halo)) for c0, c1 in self.cols]

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)


def _split(length: int, size: int) -> list[tuple[int, int]]:
    n = math.ceil(length / max(1, min(size, length)))
    size = math.ceil(length / n)  # balanced pieces
    return [(i, min(length, i + size)) for i in range(0, length, size)]


def _grid(height: int, width: int, chunk_pixels: int, workers: int = 1, valid: tuple | None = None) -> _Grid:
    """Tiles of about ``chunk_pixels`` pixels, about square, at least ``workers`` per band.

    Bands of rows are processed one after the other; the tiles of a band run
    concurrently, so a band is cut into at least ``workers`` columns when the
    image is wide enough (32 pixels or more per column).
    """
    side = max(1, math.isqrt(chunk_pixels))
    n_cols = max(math.ceil(width / side), min(workers, width // 32) or 1)
    tile_w = math.ceil(width / n_cols)
    tile_h = max(1, chunk_pixels // tile_w)
    return _Grid(height, width, _split(height, tile_h), _split(width, tile_w), valid)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``h x w x C`` -> contiguous ``(h w) x C``."""
    return t.reshape(-1, t.shape[-1]) if t.is_contiguous() else t.contiguous().view(-1, t.shape[-1])


def _interior(t: torch.Tensor, rows: int, cols: int, box) -> torch.Tensor:
    """Pixels of ``t`` (``rows*cols x C``) inside ``box = (y0, y1, x0, x1)``, as ``P' x C``."""
    y0, y1, x0, x1 = box
    return _flat(t.view(rows, cols, -1)[y0:y1, x0:x1])


class _Runner:
    """Runs independent tiles, on a pool of single-threaded workers or in sequence.

    On a CPU with several threads, tiles run concurrently, each with one
    intra-op thread: small tiles otherwise pay an OpenMP fork/join per
    operation, which is slow, and very slow on shared, oversubscribed cores.
    Results come back in input order, so the output is deterministic.

    Every item run by :meth:`map` is one tile and one progress step: after
    each, ``report_progress(done, total)`` is called (under a lock, so the
    counts a listener sees increase even when workers finish out of order).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        self.done = 0
        self.total = None
        self._lock = threading.Lock()
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))

    def tick(self) -> None:
        """One tile finished: count it and tell the progress listener (if any)."""
        with self._lock:
            self.done += 1
            report_progress(self.done, self.total)

    def map(self, fn, items) -> list:
        items = list(items)

        def counted(item):
            out = fn(item)
            self.tick()
            return out

        if self.pool is None or len(items) < 2:
            return [counted(item) for item in items]
        return list(self.pool.map(_in_inference_mode(counted), items))

    def close(self) -> None:
        if self.pool is not None:  # on Ctrl-C, tiles not yet started are dropped
            self.pool.shutdown(cancel_futures=True)


def _in_inference_mode(fn):
    """Wrap ``fn`` to run under inference mode (a thread-local setting) in a worker thread."""
    def wrapped(item):
        with torch.inference_mode():
            return fn(item)

    return wrapped


#: Feature buffers (``H x W x 2C`` float32, mirrored margin included) larger
#: than this are kept in a temporary file instead of memory (:class:`_Spill`)
#: and streamed through in bands of rows, so the engine's memory is a few
#: bands, set by the image width and ``chunk_pixels``, not by the image size.
#: 512 MiB is about 4 megapixels; smaller images keep the whole buffer in
#: memory (no file traffic, and the attention values cached between passes).
STREAM_BYTES = 512 << 20


class _Spill:
    """An ``H x W x C`` float32 feature buffer in an unnamed temporary file, read and written by bands of rows.

    The file is made in :func:`tempfile.gettempdir` (``TMPDIR``) by
    :func:`tempfile.TemporaryFile`, which unlinks it at once on POSIX (and
    deletes it on close elsewhere): it disappears when the process ends,
    however it ends (Ctrl-C, a kill), and :meth:`close` frees its space at
    once. Rows are contiguous in the file, so a band is one ``preadv`` /
    ``pwritev``. The kernel's page cache keeps the file in RAM while there is
    room, but that memory is not the process's and is written out and given
    back under memory pressure. Band buffers (:meth:`scratch`) are allocated
    once and reused: a fresh band-sized allocation would be mapped and
    faulted in anew for every band.
    """

    def __init__(self, height: int, width: int, channels: int, max_rows: int) -> None:
        self.height, self.width, self.capacity, self.max_rows = height, width, channels, max_rows
        self.set_channels(channels)
        self.file = tempfile.TemporaryFile(prefix="fusekit-refusion-")
        self._values = None
        size = height * self.row_bytes
        try:
            try:  # reserve the blocks now: faster first writes, and a full disk fails here, not mid-way
                os.posix_fallocate(self.file.fileno(), 0, size)
            except (AttributeError, OSError) as exc:
                if getattr(exc, "errno", None) == 28:  # ENOSPC
                    raise
                self.file.truncate(size)
        except BaseException:
            self.file.close()
            raise
        self._scratch: dict = {}

    def set_channels(self, channels: int) -> None:
        """Lay the file out as ``H x W x channels`` from now on (at most the channels it was made for)."""
        if channels > self.capacity:
            raise ValueError(f"{channels} channels in a file made for {self.capacity}")
        self.channels, self.row_bytes = channels, self.width * channels * 4

    def values(self, channels: int) -> "_Spill":
        """A second file of this shape for a block's attention values, ``H x W x channels``.

        Made once and reused by every block (rewriting cached pages is several
        times faster than filling fresh ones); closed with this one.
        """
        if self._values is None:
            self._values = _Spill(self.height, self.width, self.capacity, self.max_rows)
        self._values.set_channels(channels)
        return self._values

    def scratch(self, name: str, rows: int) -> torch.Tensor:
        """A reusable ``rows x W x C`` buffer (contiguous, contents undefined); one per ``name``."""
        buf = self._scratch.get(name)
        if buf is None:
            buf = self._scratch[name] = torch.empty(self.max_rows * self.width * self.capacity, dtype=torch.float32)
        return buf[: rows * self.width * self.channels].view(rows, self.width, self.channels)

    def _io(self, write: bool, tensor: torch.Tensor, row: int) -> None:
        view = memoryview(tensor.numpy()).cast("B")
        offset, done = row * self.row_bytes, 0
        fd = self.file.fileno()
        while done < len(view):
            if hasattr(os, "preadv"):
                n = (os.pwritev if write else os.preadv)(fd, [view[done:]], offset + done)
            else:  # pragma: no cover - platforms without preadv (Windows)
                self.file.seek(offset + done)
                n = self.file.write(view[done:]) if write else self.file.readinto(view[done:])
                if write:
                    self.file.flush()
            if not n:
                raise OSError(f"short {'write to' if write else 'read from'} the engine's temporary file")
            done += n

    def read(self, r0: int, r1: int, into: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``r0 .. r1`` as ``(r1 - r0) x W x C``, into ``into`` (default: the ``"in"`` scratch buffer)."""
        into = self.scratch("in", r1 - r0) if into is None else into
        self._io(False, into, r0)
        return into

    def write(self, r0: int, rows: torch.Tensor) -> None:
        """Store ``rows`` (``n x W x C``, contiguous) at rows ``r0 .. r0 + n``."""
        self._io(True, rows, r0)

    def close(self) -> None:
        if self._values is not None:
            self._values.close()
            self._values = None
        self._scratch.clear()
        self.file.close()


def _spill_or_none(height: int, width: int, channels: int, grid) -> _Spill | None:
    """A :class:`_Spill` for a buffer over :data:`STREAM_BYTES`, else ``None`` (keep it in memory).

    Where no temporary file can be made (read-only or full temporary
    directory) the buffer stays in memory, as below the threshold, with a warning.
    """
    if height * width * channels * 4 <= STREAM_BYTES:
        return None
    try:
        return _Spill(height, width, channels, max(r1 - r0 for r0, r1 in grid.rows) + 2 * HALO)
    except OSError as exc:
        import warnings

        warnings.warn(f"refusion: cannot keep the {height * width * channels * 4 / 2**30:.1f} GiB feature buffer "
                      f"in a temporary file in {tempfile.gettempdir()} ({exc}); keeping it in memory. Set TMPDIR "
                      f"to a directory with room.", RuntimeWarning, stacklevel=3)
        return None


def _accumulate(run: _Runner, buf, ch: slice, grid: _Grid, fn, sink=None) -> list:
    """``[fn(tile_pixels, rows, cols, box, tile, sink, top)]`` over tiles of ``buf[..., ch]`` (halo 1), in order.

    ``box`` is the part of the tile's interior inside ``grid.valid``, in tile
    coordinates (possibly empty): the pixels whose sums the tile contributes.
    ``tile = (r0, r1, c0, c1, a, b, ca, cb)``: the tile's interior and its
    input box in image coordinates. ``sink`` (``None``, an ``H x W x C``
    tensor or a :class:`_Spill`) is where ``fn`` may store per-pixel results
    of the tile's interior (rows ``r0 - top .. r1 - top`` of what it gets);
    a :class:`_Spill` gets them band by band.
    """
    vy0, vy1, vx0, vx1 = grid.valid

    def one(tile, src=buf, top=0, out=sink, out_top=0):  # src: the buffer, or a band of it from row top
        r0, r1, c0, c1, a, b, ca, cb = tile
        y0, x0 = max(r0, vy0), max(c0, vx0)
        y1, x1 = max(y0, min(r1, vy1)), max(x0, min(c1, vx1))
        return fn(_flat(src[a - top:b - top, ca:cb, ch]), b - a, cb - ca, (y0 - a, y1 - a, x0 - ca, x1 - ca), tile,
                  out, out_top)

    if not isinstance(buf, _Spill):
        return run.map(one, grid.tiles(1))
    out = []
    for r0, r1 in grid.rows:
        tiles = grid.band(r0, r1, 1)
        a, b = tiles[0][4], tiles[0][5]
        band = buf.read(a, b)
        vband = sink.scratch("out", r1 - r0) if isinstance(sink, _Spill) else sink
        vtop = r0 if isinstance(sink, _Spill) else 0
        out += run.map(lambda tile, band=band, a=a, vband=vband, vtop=vtop: one(tile, band, a, vband, vtop), tiles)
        if isinstance(sink, _Spill):
            sink.write(r0, vband)
    return out


def _inplace(run: _Runner, buf, ch: slice, grid: _Grid, fn, halo: int = HALO, aux=None) -> None:
    """Run ``fn(tile_pixels, rows, cols, (a, b, ca, cb))`` on every tile and write its interior back.

    With ``aux`` (an ``H x W x C'`` tensor, or a :class:`_Spill` when ``buf``
    is one), ``fn`` gets two more arguments, ``aux_rows, top``: ``aux`` itself
    and 0, or the band of it that covers the tile's input rows, from row ``top``.

    ``(a, b, ca, cb)`` is the tile's input box (interior plus ``halo``,
    clipped) in image coordinates. Bands go top to bottom; each band's input
    (with halo rows) is copied before any of its tiles is written, and the
    original rows the next band needs as its upper halo are kept from that
    copy. Tiles of a band are independent and may run concurrently (they
    write disjoint boxes).
    """
    height, width = grid.height, grid.width
    if isinstance(buf, _Spill):
        _inplace_spilled(run, buf, ch, grid, fn, halo, aux)
        return
    if aux is not None:
        fn = (lambda f: lambda t, rows, cols, box: f(t, rows, cols, box, aux, 0))(fn)
    if grid.single:  # whole image: work on the buffer itself when possible
        view = buf[:, :, ch]
        flat = _flat(view)
        fn(flat, height, width, (0, height, 0, width))
        if flat.data_ptr() != view.data_ptr():
            buf[:, :, ch] = flat.view(height, width, -1)
        run.tick()
        return
    carry = None  # original content of rows [max(0, r0 - halo), r0)
    for r0, r1 in grid.rows:
        a, b = max(0, r0 - halo), min(height, r1 + halo)
        below = buf[r0:b, :, ch]
        band = below.clone(memory_format=torch.contiguous_format) if carry is None else torch.cat([carry, below], 0)
        carry = band[max(0, r1 - halo) - a: r1 - a].clone() if r1 < height else None

        def one(cols, band=band, r0=r0, r1=r1, a=a, b=b):
            c0, c1 = cols
            ca, cb = max(0, c0 - halo), min(width, c1 + halo)
            if len(grid.cols) == 1:
                tile = band.view((b - a) * width, -1)
            else:  # a copy even where tile and halo span the whole width: the band's other tiles read it
                part = band[:, ca:cb]
                tile = part.reshape(-1, part.shape[-1]).clone() if part.is_contiguous() else _flat(part)
            fn(tile, b - a, cb - ca, (a, b, ca, cb))
            buf[r0:r1, c0:c1, ch] = tile.view(b - a, cb - ca, -1)[r0 - a: r1 - a, c0 - ca: c1 - ca]

        run.map(one, grid.cols)


def _inplace_spilled(run: _Runner, store: _Spill, ch: slice, grid: _Grid, fn, halo: int, aux=None) -> None:
    """:func:`_inplace` on a buffer kept in a file: each band is read (its upper halo from the carry), its
    tiles write into an output band, and that is written back over the band's rows."""
    height, width = grid.height, grid.width
    carry = None  # original content of rows [max(0, r0 - halo), r0)
    for r0, r1 in grid.rows:
        a, b = max(0, r0 - halo), min(height, r1 + halo)
        band = store.scratch("in", b - a)
        k = 0 if carry is None else carry.shape[0]
        if k:
            band[:k] = carry
        store.read(a + k, b, into=band[k:])
        carry = band[max(0, r1 - halo) - a: r1 - a].clone() if r1 < height else None
        out = store.scratch("out", r1 - r0)
        if ch != slice(None):  # the channels this pass leaves alone
            out.copy_(band[r0 - a: r1 - a])
        extra = () if aux is None else (aux.read(a, b), a)

        def one(cols, band=band, out=out, r0=r0, r1=r1, a=a, b=b, extra=extra):
            c0, c1 = cols
            ca, cb = max(0, c0 - halo), min(width, c1 + halo)
            part = band[:, ca:cb, ch]
            tile = part.reshape(-1, part.shape[-1]).clone() if part.is_contiguous() else _flat(part)
            fn(tile, b - a, cb - ca, (a, b, ca, cb), *extra)
            out[:, c0:c1, ch] = tile.view(b - a, cb - ca, -1)[r0 - a: r1 - a, c0 - ca: c1 - ca]

        run.map(one, grid.cols)
        store.write(r0, out)


#: Keep the attention values ``v`` of a block between its two passes when they
#: take at most this many bytes (all in-memory parts together): the second
#: pass then needs neither the layer norm nor the q/k/v projection and
#: convolution again, and a halo of one pixel instead of two (about 20 % of
#: the work of a multi-tile image). Larger in-memory images recompute ``v`` so
#: that memory stays one feature buffer. 256 MiB is 2 megapixels at 32 channels.
V_CACHE_BYTES = 256 << 20

#: When the features stream through a temporary file (:data:`STREAM_BYTES`),
#: keep ``v`` in one too (written in the first pass, read in the second):
#: moving the bytes costs less than recomputing them.
SPILL_V = True


def _v_cache(parts: list, channels: int) -> list | None:
    """Per part, where its values ``v`` (``H x W x channels``) are kept between the passes, or ``None``.

    A :class:`_Spill` for a streamed part (when :data:`SPILL_V`), an
    in-memory buffer for the others while they take at most
    :data:`V_CACHE_BYTES` together; ``None`` (recompute) otherwise. Returns
    ``None`` when no part keeps them.
    """
    in_memory = sum(g.height * g.width for b, g in parts if not isinstance(b, _Spill)) * channels * 4
    out = []
    for b, g in parts:
        if isinstance(b, _Spill):
            try:
                out.append(b.values(channels) if SPILL_V else None)
            except OSError:  # no room for it: recompute
                out.append(None)
        else:
            out.append(torch.empty(g.height, g.width, channels, dtype=torch.float32, device=b.device)
                       if in_memory <= V_CACHE_BYTES else None)
    return out if any(v is not None for v in out) else None


def _store(vbuf: torch.Tensor, v: torch.Tensor, rows: int, cols: int, tile: tuple, top: int = 0) -> None:
    """Write the interior of tile ``v`` (``rows*cols x C``) into ``vbuf`` (whose first row is ``top``)."""
    r0, r1, c0, c1, a, _, ca, _ = tile
    vbuf[r0 - top:r1 - top, c0:c1] = v.view(rows, cols, -1)[r0 - a: r1 - a, c0 - ca: c1 - ca]


def _run_block(run: _Runner, p: _Block, parts: list, ch: slice) -> None:
    """Apply a transformer block to every ``(buf, grid)`` part, with attention sums over all of them."""
    if len(parts) == 1 and parts[0][1].single:
        buf, grid = parts[0]
        _inplace(run, buf, ch, grid, lambda t, rows, cols, _: _block_apply(p, t, rows, cols, None, grid.valid))
        return
    c = p.dim
    vbufs = _v_cache(parts, c)

    def acc(t, rows, cols, box, tile, vbuf, top):
        if vbuf is None:
            q, k = _block_qk(p, t, rows, cols)
        else:
            qkv = _block_qkv(p, t, rows, cols)
            q, k = qkv[:, :c], qkv[:, c: 2 * c]
            _store(vbuf, qkv[:, 2 * c:], rows, cols, tile, top)
        return _Stats.partial(_interior(q, rows, cols, box), _interior(k, rows, cols, box))

    stats = _Stats()
    for i, (buf, grid) in enumerate(parts):
        for part in _accumulate(run, buf, ch, grid, acc, None if vbufs is None else vbufs[i]):
            stats.merge(part)
    mix_t = stats.mixing(p.temperature, p.heads, p.proj_w)

    def cached(t, rows, cols, box, vbuf, top):
        a, b, ca, cb = box
        t.addmm_(_flat(vbuf[a - top:b - top, ca:cb]), mix_t)
        _block_ffn(p, t, rows, cols)

    for i, (buf, grid) in enumerate(parts):
        if vbufs is None or vbufs[i] is None:
            _inplace(run, buf, ch, grid, lambda t, rows, cols, _: _block_apply(p, t, rows, cols, mix_t))
        else:  # only the feed-forward's 3x3 reads beyond the tile
            _inplace(run, buf, ch, grid, cached, halo=1, aux=vbufs[i])


def _run_fusion(run: _Runner, f: _Fusion, parts: list) -> None:
    """Apply the fusion block to every ``(buf, grid)`` part, with attention sums over all of them."""
    ch = slice(None)
    if len(parts) == 1 and parts[0][1].single:
        buf, grid = parts[0]
        _inplace(run, buf, ch, grid, lambda t, rows, cols, _: _fusion_apply(f, t, rows, cols, None, grid.valid))
        return
    c = f.dim
    vbufs = _v_cache(parts, 2 * c)

    def acc(t, rows, cols, box, tile, vbuf, top):
        qkv1, qkv2 = _fusion_qkv(f, t, rows, cols)
        if vbuf is not None:
            _store(vbuf[..., :c], qkv1[:, 2 * c:], rows, cols, tile, top)
            _store(vbuf[..., c:], qkv2[:, 2 * c:], rows, cols, tile, top)
        qkv1, qkv2 = _interior(qkv1, rows, cols, box), _interior(qkv2, rows, cols, box)
        return (_Stats.partial(qkv2[:, :c], qkv1[:, c: 2 * c]),  # queries of stream 2, keys of stream 1
                _Stats.partial(qkv1[:, :c], qkv2[:, c: 2 * c]))  # queries of stream 1, keys of stream 2

    s1, s2 = _Stats(), _Stats()
    for i, (buf, grid) in enumerate(parts):
        for p1, p2 in _accumulate(run, buf, ch, grid, acc, None if vbufs is None else vbufs[i]):
            s1.merge(p1)
            s2.merge(p2)
    mixes = (s1.mixing(f.t1, f.heads, f.mid1), s2.mixing(f.t2, f.heads, f.mid2))

    def cached(t, rows, cols, box, vbuf, top):
        a, b, ca, cb = box
        v = _flat(vbuf[a - top:b - top, ca:cb])
        t[:, :c].addmm_(v[:, :c], mixes[0])
        t[:, c:].addmm_(v[:, c:], mixes[1])
        _fusion_rest(f, t, rows, cols)

    for i, (buf, grid) in enumerate(parts):
        if vbufs is None or vbufs[i] is None:
            _inplace(run, buf, ch, grid, lambda t, rows, cols, _: _fusion_apply(f, t, rows, cols, mixes))
        else:  # only the gated projections' 3x3 read beyond the tile
            _inplace(run, buf, ch, grid, cached, halo=1, aux=vbufs[i])


def _layout(h: int, w: int, border: int) -> list[tuple]:
    """``(height, width, valid, crop)`` of each image one inference runs on (see :func:`_pieces`).

    ``crop`` is ``None`` for the image mirrored by ``border`` (the image itself
    when ``border == 0``), else the ``(rows, cols)`` slices of the unpadded
    image that the piece is.
    """
    if border == 0:
        return [(h, w, None, None)]
    r, s = RECEPTIVE_RADIUS, 2 * RECEPTIVE_RADIUS
    hp, wp = h + 2 * border, w + 2 * border
    every = slice(None)
    if min(h, w) <= 2 * s:
        return [(hp, wp, (0, 0, 0, 0), None), (h, w, None, (every, every))]
    return [(hp, wp, (border + r, border + h - r, border + r, border + w - r), None),
            (s, w, (0, r, 0, w), (slice(0, s), every)),                  # top ring
            (s, w, (s - r, s, 0, w), (slice(h - s, h), every)),          # bottom ring
            (h, s, (r, h - r, 0, r), (every, slice(0, s))),              # left ring, without the corners
            (h, s, (r, h - r, s - r, s), (every, slice(w - s, w)))]      # right ring


def _pieces(src: torch.Tensor, border: int) -> list[tuple[torch.Tensor, tuple]]:
    """The images one inference runs on, each with the box its attention sums come from.

    ``border == 0``: the image itself, every pixel. Otherwise first the image
    mirrored by ``border`` (it gives the output), summed only at least
    :data:`RECEPTIVE_RADIUS` (``R``) pixels inside the real image, where its
    features equal the unpadded network's; then the unpadded image's outer
    ring of width ``R``, taken from four strips ``2 R`` wide (the features of
    a strip's outer half do not see the cut). The attention sums, and so every
    output pixel farther than ``R`` from the border, are then those of the
    plain zero-padded network, to float rounding. Images with a side of
    ``4 R`` or less are summed whole instead of in strips.
    """
    _, h, w = src.shape
    return [(reflect_pad(src, border) if crop is None else src[:, crop[0], crop[1]], valid)
            for _, _, valid, crop in _layout(h, w, border)]


def _grids(h: int, w: int, chunk_pixels: int, workers: int, border: int) -> list[_Grid]:
    """The tiling of every piece of :func:`_layout`."""
    return [_grid(ph, pw, chunk_pixels, workers, valid) for ph, pw, valid, _ in _layout(h, w, border)]


def _steps(p: _Prepared, grids: list[_Grid]) -> int:
    """Tiles one image's inference runs (its progress total): the stems, every pass of every attention
    block (one pass when the image is a single tile, else the sums then the update), the head."""
    tiles = [g.n_tiles for g in grids]
    passes = 1 if len(grids) == 1 and grids[0].single else 2
    blocks = len(p.enc1) + len(p.enc2) + 1 + len(p.dec)
    return sum(tiles) * (1 + passes * blocks) + tiles[0]


def _stem(p: _Prepared, src: torch.Tensor, grid: _Grid, run: _Runner) -> tuple:
    """Both 3x3 stems of ``2 x H x W`` ``src`` into a new ``H x W x 2C`` buffer; returns ``(buf, grid)``.

    The buffer is a :class:`_Spill` (a temporary file) above :data:`STREAM_BYTES` on CPU.
    """
    _, height, width = src.shape
    c2 = 2 * p.dim
    src_cl = src.permute(1, 2, 0)  # H x W x 2 view
    store = _spill_or_none(height, width, c2, grid) if src.device.type == "cpu" else None
    buf = store or torch.empty(height, width, c2, dtype=torch.float32, device=src.device)

    def stem(box, out=buf, top=0):  # both 3x3 stems as one grouped conv; out: the buffer or a band of it
        r0, r1, c0, c1, a, b, ca, cb = box
        y = _conv3x3(_flat(src_cl[a:b, ca:cb]), b - a, cb - ca, p.stem_w, groups=2)
        out[r0 - top:r1 - top, c0:c1] = y.view(b - a, cb - ca, c2)[r0 - a: r1 - a, c0 - ca: c1 - ca]

    if store is None:
        run.map(stem, grid.tiles(1))
        return buf, grid
    try:
        for r0, r1 in grid.rows:
            band = store.scratch("out", r1 - r0)
            run.map(lambda box, band=band, r0=r0: stem(box, band, r0), grid.band(r0, r1, 1))
            store.write(r0, band)
    except BaseException:
        store.close()
        raise
    return store, grid


def _infer_one(p: _Prepared, src: torch.Tensor, grids: list[_Grid], run: _Runner, border: int = 0) -> torch.Tensor:
    """``2 x H x W`` -> ``H x W`` for one image (run on it mirrored by ``border`` pixels, then cropped)."""
    _, h0, w0 = src.shape
    parts = []
    try:
        for (piece, _), grid in zip(_pieces(src, border), grids):
            parts.append(_stem(p, piece, grid, run))
        c2 = 2 * p.dim
        s1, s2 = slice(0, p.dim), slice(p.dim, c2)
        for blk in p.enc1:
            _run_block(run, blk, parts, s1)
        for blk in p.enc2:
            _run_block(run, blk, parts, s2)
        _run_fusion(run, p.fusion, parts)
        for blk in p.dec:
            _run_block(run, blk, parts, slice(None))
        buf, grid = parts[0]
        for extra, _ in parts[1:]:
            if isinstance(extra, _Spill):
                extra.close()
        del parts[1:]
        out = torch.empty(grid.height, grid.width, dtype=torch.float32, device=src.device)

        def head(box, src=buf, top=0):  # 3x3 conv, LeakyReLU, 3x3 conv, sigmoid; src: buffer, or band from row top
            r0, r1, c0, c1, a, b, ca, cb = box
            h = F.leaky_relu_(_conv3x3(_flat(src[a - top:b - top, ca:cb]), b - a, cb - ca, p.head0), 0.01)
            y = _conv3x3(h, b - a, cb - ca, p.head1)
            out[r0:r1, c0:c1] = torch.sigmoid_(y.view(b - a, cb - ca)[r0 - a: r1 - a, c0 - ca: c1 - ca])

        if not isinstance(buf, _Spill):
            run.map(head, grid.tiles(HALO))
        else:
            for r0, r1 in grid.rows:
                tiles = grid.band(r0, r1, HALO)
                band = buf.read(tiles[0][4], tiles[0][5])
                run.map(lambda box, band=band, a=tiles[0][4]: head(box, band, a), tiles)
    finally:
        for buf, _ in parts:
            if isinstance(buf, _Spill):
                buf.close()
    return out[border: border + h0, border: border + w0] if border else out


def infer(net: ReFusionNet, x: torch.Tensor, *, chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
          border: int = 0, progress: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Run ``net`` on ``x`` (``N x 2 x H x W``) -> ``N x 1 x H x W``, without autograd.

    Parameters
    ----------
    net : ReFusionNet
        The network (any device; ``x`` must be on the same device).
    x : Tensor
        ``N x 2 x H x W`` float32 sources in [0, 1].
    chunk_pixels : int
        Approximate pixels per tile (squares, or full-width strips on narrow
        images). The result does not depend on it. The default keeps every
        temporary small enough to be reused by the allocator instead of
        being mapped fresh (page faults dominate otherwise).
    border : int
        Mirror the sources by this many pixels on every side
        (:func:`reflect_pad`), run the network on the larger image and crop
        the result back; the attention sums are taken over the real pixels
        only. ``0`` (default) is the published inference, ``net(x)`` exactly.
        With ``border >=`` :data:`RECEPTIVE_RADIUS` no output pixel depends on
        the convolutions' zero padding: weights that learnt to react to it
        (fusekit's MEIF weights stripe the outer ~6 pixels) then see image
        content there instead. Pixels farther than ``RECEPTIVE_RADIUS`` from
        the border change only through the attention sums (well under one
        grey level on real images). Costs ``2 border (H + W)`` more pixels.
    progress : (int, int)
        ``(k, n)``: this call is run ``k`` (from 0) of ``n`` equal calls that
        make up one fuse (a fuser running the network once per source pair).
        After every tile the engine calls
        :func:`fusekit.interfaces.report_progress` with ``done`` counted
        from the start of the first of those calls and ``total = n`` times
        the tiles of one call (tiles x passes, over the batch).

    Notes
    -----
    On CPU, tiles run concurrently on ``torch.get_num_threads()`` worker
    threads with one intra-op thread each; the calling thread also uses one
    intra-op thread during the call (restored afterwards).

    Memory: on CPU, a feature buffer over :data:`STREAM_BYTES` (about 4
    megapixels) is kept in an unnamed temporary file in
    :func:`tempfile.gettempdir` (``TMPDIR``; removed when the call ends,
    however it ends) and streamed in bands of rows, so the engine's own
    memory is a few bands (about ``tile rows x W x 128`` bytes each) instead
    of ``128 x H x W`` bytes. The result is the same, bit for bit.

    Returns
    -------
    Tensor
        ``N x 1 x H x W`` float32 in (0, 1), equal to ``net(x)`` up to float
        rounding when ``border == 0``.
    """
    if x.ndim != 4 or x.shape[1] != 2:
        raise InputError(f"expected sources of shape N x 2 x H x W, got {tuple(x.shape)}; stack two images")
    if chunk_pixels < 1:
        raise ParameterError(f"chunk_pixels must be a positive integer, got {chunk_pixels}")
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise ParameterError(f"border must be a non-negative integer, got {border!r}")
    k, n = progress
    if not 0 <= k < n:
        raise ParameterError(f"progress must be (k, n) with 0 <= k < n, got {progress!r}")
    threads = torch.get_num_threads()
    run = _Runner(threads if x.device.type == "cpu" else 1)
    if run.workers > 1:  # the calling thread too: no OpenMP fork/join for its small ops
        torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            p = prepare(net)
            x = x.float()
            grids = _grids(x.shape[2], x.shape[3], chunk_pixels, run.workers, border)
            steps = _steps(p, grids) * x.shape[0]
            run.done, run.total = k * steps, n * steps
            return torch.stack([_infer_one(p, x[i], grids, run, border) for i in range(x.shape[0])])[:, None]
    finally:
        run.close()
        torch.set_num_threads(threads)
