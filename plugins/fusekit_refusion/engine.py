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
  single matrix product added to the residual;
* never forms the L2-normalised q and k: the ``q k^T`` Gram matrix and the
  squared norms are sums over pixels, accumulated and divided afterwards;
* runs the two encoders side by side (block ``j`` of each in one stage, on
  their own channels of one ``H x W x 2C`` buffer), so the network is five
  attention stages, each one pass for the attention sums and one for the
  update (:func:`_stages`);
* processes the image in tiles of about ``chunk_pixels`` pixels: bands of
  whole rows on images up to ``chunk_pixels / 16`` pixels wide (1024 by
  default), whose inputs and outputs are plain views of the feature buffer
  (no copies), else tiles four times wider than high. Every temporary stays a
  few MiB and in cache; band buffers come from a pool reused through the
  call (:meth:`_Runner.take`), so pages are not faulted in again and again;
* on large images (feature buffer over :data:`STREAM_BYTES`, about 4
  megapixels, on CPU) keeps that buffer, and the attention values between
  a stage's two passes, in an unnamed temporary file (:class:`_Spill`)
  and streams it through in bands of rows, so memory is a few bands, not
  ``128 x H x W`` bytes. Same arithmetic in the same order, on data at the
  same alignment: the result equals the in-memory engine's bit for bit;
* on CPU runs the tiles on ``torch.get_num_threads()`` worker threads with
  one intra-op thread each, instead of paying an OpenMP fork/join per small
  operation.

Why tiles are exact: apart from the attention matrices every operation is
local (1x1 and 3x3 convolutions, pointwise functions), and a 3x3 convolution
with zero padding reads one pixel beyond its output. The attention matrix of
each block is global: ``q k^T`` and the norms of q and k are sums over all
pixels. A first pass computes q, k and v on each tile with a halo of one
pixel (clipped at the image border, where the zero padding of the tile is the
image's own), adds the tile's sums (in a fixed order, in float64) and keeps
``v``; the softmax matrix is formed from the totals; a second pass adds the
attention to the residual and applies the feed-forward part, whose depthwise
convolution again needs a halo of one pixel (two when ``v`` is not kept and
is recomputed, :data:`V_CACHE_BYTES`). The result therefore does not depend
on the tile size beyond float rounding (tested).
Mirrored border (``border > 0``, what :meth:`ReFusionNet.infer` uses): the
sources are mirrored by ``border`` pixels, the network runs on the larger
image and the result is cropped, so no pixel of the result depends on the
zero padding. The attention sums are kept those of the unpadded image: the
mirrored run contributes only pixels at least :data:`RECEPTIVE_RADIUS` inside
the image (there its features equal the unpadded network's), and the outer
ring comes from four strips of the unpadded image run alongside. Output
pixels farther than ``RECEPTIVE_RADIUS`` from the border therefore equal the
plain forward's to float rounding.
In-place update: bands go top to bottom, a few at a time (enough for every
worker); a band's result is written back over the feature buffer only after
the bands on both sides of it have read their inputs (:func:`_sweep`), so
every tile sees the features as they were before the pass.

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

#: oneDNN's primitive cache, sized before torch builds its first convolution
#: (oneDNN reads the variable once). Left unset, torch 2.13's oneDNN 3.12
#: JIT-compiled ~290 convolution kernels again on every call after the
#: first (seen with strace: 256 KiB Xbyak code mappings, one per kernel, in
#: each warm 640 x 480 call); set to oneDNN's documented default of 1024,
#: a warm call compiles none. A value the user sets is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")

import torch  # noqa: E402  (after the variable above)
import torch.nn.functional as F  # noqa: E402

from fusekit.errors import InputError, ParameterError
from fusekit.interfaces import report_progress

from .network import LN_EPS, ReFusionNet, TransformerBlock

__all__ = ["DEFAULT_CHUNK_PIXELS", "RECEPTIVE_RADIUS", "STREAM_BYTES", "infer", "prepare", "reflect_pad"]

#: Default pixels per tile: the largest temporary (128 channels) stays at
#: 8 MiB, below glibc's largest mmap threshold, so it is reused.
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
# Kernels: oneDNN's fused CPU primitives where torch has them, plain torch otherwise
# --------------------------------------------------------------------------
#: Use oneDNN's matrix products and fused convolutions on CPU (``torch.ops.mkldnn``,
#: the kernels inductor calls, built into torch's x86 CPU wheels; no compiler
#: needed) when torch has them: for the engine's thin products (16-128
#: channels) they run 2-3x faster than ``addmm`` (measured 0.49 vs 1.37 ms
#: for 18k pixels x 32 -> 96 channels, one thread), and the depthwise
#: convolutions take the GELU and the gating product as post-ops. Set
#: ``FUSEKIT_REFUSION_ONEDNN=0`` (or this to ``False``) for the plain torch
#: path; both give the same numbers to float rounding (tested).
ONEDNN = os.environ.get("FUSEKIT_REFUSION_ONEDNN", "1") != "0"

#: oneDNN keeps every primitive it made (one per kernel and tile shape, about
#: 0.5-1 MiB each with its generated code) in a cache of 1024 by default: an
#: image of a new size added 30-50 MiB that stayed (640 x 480 and six sizes
#: near it: 335 -> 490 MiB resident between calls, peak 565 -> 865 MiB).
#: Unless the environment says otherwise, the engine asks for a cache of this
#: many (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, read when oneDNN makes its first
#: primitive, so only when nothing in the process used oneDNN before): making
#: the primitives again costs no measurable time (same 1.2-1.3 s a call).
ONEDNN_CACHE = 32
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE))

_ONEDNN_OK: bool | None = None


def _onednn_ok() -> bool:
    """Whether ``torch.ops.mkldnn``'s fused linear and convolution kernels exist and work here (checked once)."""
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        try:
            mk = torch.ops.mkldnn
            with torch.inference_mode():
                x = torch.rand(6, 3)
                w = torch.rand(4, 3)
                y = mk._linear_pointwise(x, w, torch.zeros(4), "none", [], "")
                z = mk._linear_pointwise.binary(x, y, w, None, "add")
                img = torch.rand(1, 5, 4, 2).permute(0, 3, 1, 2)
                k = torch.rand(2, 1, 3, 3)
                c = mk._convolution_pointwise(img, k, None, [1, 1], [1, 1], [1, 1], 2, "gelu", [], "none")
                d = mk._convolution_pointwise.binary(img, c, k, None, [1, 1], [1, 1], [1, 1], 2, "mul", None, None,
                                                     [], None)
                ref = F.conv2d(img, k, padding=1, groups=2)
                _ONEDNN_OK = bool(torch.allclose(z, 2 * (x @ w.t()), atol=1e-5)
                                  and torch.allclose(d, ref * F.gelu(ref), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _ONEDNN_OK = False
    return _ONEDNN_OK


def _use_onednn(device) -> bool:
    """oneDNN kernels for this call: on CPU, when :data:`ONEDNN` and they work (:func:`_onednn_ok`)."""
    return ONEDNN and torch.device(device).type == "cpu" and _onednn_ok()


def _linear(mk: bool, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w^T (+ b)``: ``P x K`` pixels, ``N x K`` weight (a 1x1 conv's own layout) -> new ``P x N``."""
    if mk:
        return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    return x @ w.t() if b is None else torch.addmm(b, x, w.t())


def _linear_add(mk: bool, x: torch.Tensor, w: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``other + x @ w^T`` (``other``: ``P x N``, the residual) -> new ``P x N``."""
    if mk:
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, w, None, "add")
    return torch.addmm(other, x, w.t())


def _dw(x: torch.Tensor, rows: int, width: int, weight: torch.Tensor, mk: bool = False, gelu: bool = False,
        times: torch.Tensor | None = None) -> torch.Tensor:
    """Depthwise 3x3 (zero padding 1) of a contiguous ``P x C`` channels-last tile (``rows x width``) -> ``P x C``.

    ``gelu``: GELU (erf) of the result; ``times``: the result times ``times``
    (``P x C``, contiguous). With ``mk`` both are post-ops of oneDNN's
    convolution (no second pass over the pixels).
    """
    c = x.shape[1]
    img = x.view(1, rows, width, c).permute(0, 3, 1, 2)  # NCHW view, channels-last memory
    if mk and (gelu or times is not None):
        conv = torch.ops.mkldnn._convolution_pointwise
        if times is None:
            out = conv(img, weight, None, [1, 1], [1, 1], [1, 1], c, "gelu", [], "none")
        else:
            other = times.view(1, rows, width, c).permute(0, 3, 1, 2)
            out = conv.binary(img, other, weight, None, [1, 1], [1, 1], [1, 1], c, "mul", None,
                              "gelu" if gelu else None, [], "none" if gelu else None)
    else:
        out = F.conv2d(img, weight, padding=1, groups=c)
        if gelu:
            out = F.gelu(out)
        if times is not None:
            out = out.mul_(times.view(1, rows, width, c).permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1).reshape(rows * width, c)


# --------------------------------------------------------------------------
# Weights prepared once per network
# --------------------------------------------------------------------------
@dataclass
class _Block:
    """A transformer block with the layer norms folded into the 1x1 convs.

    Matrices are ``C_out x C_in`` (a 1x1 convolution's own layout), applied
    as ``pixels @ W^T`` (:func:`_linear`). ``mk``: use oneDNN's kernels.
    """

    dim: int
    heads: int
    mk: bool
    qkv_w: torch.Tensor  # 3C x C  (LN1 scale folded)
    qkv_b: torch.Tensor  # 3C      (LN1 shift through qkv)
    qkv_dw: torch.Tensor  # 3C x 1 x 3 x 3
    v_w: torch.Tensor  # C x C, the v rows of qkv_w (contiguous, for recomputing v)
    v_b: torch.Tensor
    v_dw: torch.Tensor
    temperature: torch.Tensor  # heads
    proj_w: torch.Tensor  # C x C (out projection, C_out x C_in)
    ffn_a_w: torch.Tensor  # H x C, gate half (LN2 scale folded)
    ffn_a_b: torch.Tensor  # H
    ffn_a_dw: torch.Tensor  # H x 1 x 3 x 3
    ffn_b_w: torch.Tensor  # H x C, value half
    ffn_b_b: torch.Tensor
    ffn_b_dw: torch.Tensor
    ffn_out_w: torch.Tensor  # C x H


@dataclass
class _Fusion:
    """The cross-attention fusion block (authors' ``FM``); matrices ``C_out x C_in``."""

    dim: int
    heads: int
    mk: bool
    qkv1_w: torch.Tensor  # 3C x C
    qkv1_dw: torch.Tensor
    qkv2_w: torch.Tensor
    qkv2_dw: torch.Tensor
    v1_w: torch.Tensor  # C x C, the v rows of qkv1_w (contiguous)
    v1_dw: torch.Tensor
    v2_w: torch.Tensor
    v2_dw: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    mid1: torch.Tensor  # C x C
    mid2: torch.Tensor
    g1_w: torch.Tensor  # 4C x 2C (first half of project_E)
    g1_dw: torch.Tensor
    g2_w: torch.Tensor  # 4C x 2C (second half)
    g2_dw: torch.Tensor
    e1_w: torch.Tensor  # 4C x C
    e1_dw: torch.Tensor
    e2_w: torch.Tensor
    e2_dw: torch.Tensor
    out1_w: torch.Tensor  # 2C x 4C
    out2_w: torch.Tensor


@dataclass
class _Prepared:
    dim: int
    mk: bool
    stem_w: torch.Tensor  # 2C x 1 x 3 x 3 (both stems, grouped conv)
    enc1: list
    enc2: list
    fusion: _Fusion
    dec: list
    head0: torch.Tensor
    head1: torch.Tensor


def _pw(conv: torch.nn.Conv2d) -> torch.Tensor:
    """1x1 conv weight ``C_out x C_in x 1 x 1`` -> ``C_out x C_in`` (contiguous)."""
    return conv.weight.detach()[:, :, 0, 0].contiguous()


def _prep_block(blk: TransformerBlock, mk: bool) -> _Block:
    attn, ffn = blk.attn, blk.ffn
    w1, b1 = blk.norm1.weight.detach(), blk.norm1.bias.detach()
    w2, b2 = blk.norm2.weight.detach(), blk.norm2.bias.detach()
    qkv = attn.qkv.weight.detach()[:, :, 0, 0]  # 3C x C
    fin = ffn.project_in.weight.detach()[:, :, 0, 0]  # 2H x C
    hid = fin.shape[0] // 2
    c = qkv.shape[1]
    fdw = ffn.dwconv.weight.detach()
    qkv_w, qkv_b, qkv_dw = (qkv * w1).contiguous(), qkv @ b1, attn.qkv_dwconv.weight.detach()
    return _Block(
        dim=c,
        heads=attn.heads,
        mk=mk,
        qkv_w=qkv_w,
        qkv_b=qkv_b,
        qkv_dw=qkv_dw,
        v_w=qkv_w[2 * c:].contiguous(),
        v_b=qkv_b[2 * c:].contiguous(),
        v_dw=qkv_dw[2 * c:].contiguous(),
        temperature=attn.temperature.detach().reshape(-1),
        proj_w=attn.project_out.weight.detach()[:, :, 0, 0],
        ffn_a_w=(fin[:hid] * w2).contiguous(),
        ffn_a_b=fin[:hid] @ b2,
        ffn_a_dw=fdw[:hid].contiguous(),
        ffn_b_w=(fin[hid:] * w2).contiguous(),
        ffn_b_b=fin[hid:] @ b2,
        ffn_b_dw=fdw[hid:].contiguous(),
        ffn_out_w=_pw(ffn.project_out),
    )


def prepare(net: ReFusionNet, device=None) -> _Prepared:
    """Fold the weights of ``net`` for the engine (cheap, no copies kept in ``net``).

    ``device`` (default: the network's) decides whether oneDNN's kernels are
    used (:func:`_use_onednn`).
    """
    fm = net.FM
    c = net.dim
    mk = _use_onednn(net.project_in_1.weight.device if device is None else device)
    e_w, e_dw = _pw(fm.project_E), fm.project_E_d.weight.detach()
    half = e_w.shape[0] // 2
    qkv1_w, qkv1_dw = _pw(fm.qkv1), fm.qkv1_dwconv.weight.detach()
    qkv2_w, qkv2_dw = _pw(fm.qkv2), fm.qkv2_dwconv.weight.detach()
    fusion = _Fusion(
        dim=c, heads=fm.heads, mk=mk,
        qkv1_w=qkv1_w, qkv1_dw=qkv1_dw, qkv2_w=qkv2_w, qkv2_dw=qkv2_dw,
        v1_w=qkv1_w[2 * c:].contiguous(), v1_dw=qkv1_dw[2 * c:].contiguous(),
        v2_w=qkv2_w[2 * c:].contiguous(), v2_dw=qkv2_dw[2 * c:].contiguous(),
        t1=fm.temperature1.detach().reshape(-1), t2=fm.temperature2.detach().reshape(-1),
        mid1=fm.project_mid1.weight.detach()[:, :, 0, 0], mid2=fm.project_mid2.weight.detach()[:, :, 0, 0],
        g1_w=e_w[:half].contiguous(), g1_dw=e_dw[:half].contiguous(),
        g2_w=e_w[half:].contiguous(), g2_dw=e_dw[half:].contiguous(),
        e1_w=_pw(fm.project_E1), e1_dw=fm.project_E1_d.weight.detach(),
        e2_w=_pw(fm.project_E2), e2_dw=fm.project_E2_d.weight.detach(),
        out1_w=_pw(fm.project_out1), out2_w=_pw(fm.project_out2),
    )
    return _Prepared(
        dim=c,
        mk=mk,
        stem_w=torch.cat([net.project_in_1.weight.detach(), net.project_in_2.weight.detach()], 0),
        enc1=[_prep_block(b, mk) for b in net.encoder1],
        enc2=[_prep_block(b, mk) for b in net.encoder2],
        fusion=fusion,
        dec=[_prep_block(b, mk) for b in net.decoder],
        head0=net.project_out_0.weight.detach(),
        head1=net.project_out_1.weight.detach(),
    )


# --------------------------------------------------------------------------
# Small helpers on channels-last pixel matrices (P x C, P = rows * W)
# --------------------------------------------------------------------------
def _conv3x3(x: torch.Tensor, rows: int, width: int, weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Dense (or grouped) 3x3 conv, zero padding 1, contiguous ``P x C_in`` -> ``P x C_out``."""
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
    x 16 tile, 0.75 vs 0.22 ms at 32 channels; max difference 1e-6). ``x``
    may be a column slice of a wider matrix (rows strided).
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
        """The sums of one tile: ``(q^T k, |q|^2, |k|^2)`` in float64 (``q, k``: ``P x C``, rows may be strided)."""
        g = (q.t() @ k).double()
        # squared norms as column sums of squares: C flops a pixel instead of the 2 C^2 of a Gram
        # diagonal (measured 2-5x faster on 129 x 113 tiles of 16 and 32 channels)
        qq = (q * q).sum(0).double()
        kk = (k * k).sum(0).double()
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
        """Return ``M = proj @ blockdiag(softmax per head)``, ``C x C`` (``C_out x C_in``).

        Adding ``v @ M^T`` (:func:`_linear_add`) to the residual equals the
        authors' ``project_out(softmax(norm(q) norm(k)^T * t) @ v)``.
        """
        c = self.gram.shape[0]
        ch = c // heads
        nq = self.qq.clamp_min(0).sqrt().clamp_min(NORM_EPS)  # (sums less side columns: never below 0)
        nk = self.kk.clamp_min(0).sqrt().clamp_min(NORM_EPS)
        corr = (self.gram / nq[:, None] / nk[None, :]).float()
        idx = torch.arange(c, device=corr.device).view(heads, ch)
        blocks = corr[idx[:, :, None], idx[:, None, :]]  # heads x ch x ch diagonal blocks
        mix = torch.block_diag(*torch.softmax(blocks * temperature.view(heads, 1, 1), dim=-1))
        return (proj @ mix).contiguous()


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``h x w x C`` -> contiguous ``(h w) x C``."""
    return t.reshape(-1, t.shape[-1]) if t.is_contiguous() else t.contiguous().view(-1, t.shape[-1])


def _interior(t: torch.Tensor, rows: int, cols: int, box) -> torch.Tensor:
    """Pixels of ``t`` (``rows*cols x C``) inside ``box = (y0, y1, x0, x1)``, as ``P' x C``.

    A view (no copy) when the box spans the tile's whole width, else a copy.
    """
    y0, y1, x0, x1 = box
    if x0 == 0 and x1 == cols:
        return t[y0 * cols: y1 * cols]
    return _flat(t.view(rows, cols, -1)[y0:y1, x0:x1])


def _box(t: torch.Tensor, rows: int, cols: int, box) -> torch.Tensor:
    """The pixels of ``t`` (``rows*cols x C``) inside ``box``, as an ``h x w x C`` view."""
    y0, y1, x0, x1 = box
    return t.view(rows, cols, -1)[y0:y1, x0:x1]


# --------------------------------------------------------------------------
# Per-tile computations
# --------------------------------------------------------------------------
@dataclass
class _Tile:
    """One tile of a pass, as the per-tile functions see it.

    ``x`` (``P x Ct``, ``P = rows * cols``, the tile with its halo; a view of
    the feature rows when the tile spans the whole width, else a copy) and,
    in an update pass with cached values, ``v`` (same shape). ``inner`` is the
    box the tile is responsible for and ``valid`` the part of it whose
    attention sums count, both ``(y0, y1, x0, x1)`` in tile coordinates.
    ``dest`` (``h x w x Ct`` view of the band's output) receives the result
    inside ``inner``; ``vdest`` the attention values there. ``full``: the tile
    spans the whole width, so ``inner`` is a contiguous range of rows of ``x``
    and of ``dest``.
    """

    x: torch.Tensor
    rows: int
    cols: int
    inner: tuple
    valid: tuple
    full: bool
    v: torch.Tensor | None = None
    dest: torch.Tensor | None = None
    vdest: torch.Tensor | None = None


def _emit(t: _Tile, sl: slice, mk: bool, base: torch.Tensor, a: torch.Tensor, w: torch.Tensor,
          a2: torch.Tensor | None = None, w2: torch.Tensor | None = None) -> None:
    """Write ``base + a @ w^T (+ a2 @ w2^T)`` inside ``t.inner`` to channels ``sl`` of ``t.dest``.

    On a whole-width tile only the inner rows are multiplied (with plain
    torch, straight into the destination); otherwise the whole tile is, and
    its inner box is copied.
    """
    if t.full:
        i0, i1 = t.inner[0] * t.cols, t.inner[1] * t.cols
        base, a, a2 = base[i0:i1], a[i0:i1], None if a2 is None else a2[i0:i1]
    if t.full and not mk:
        dest = t.dest.view(-1, t.dest.shape[-1])[:, sl]
        torch.addmm(base, a, w.t(), out=dest)
        if a2 is not None:
            dest.addmm_(a2, w2.t())
        return
    r = _linear_add(mk, a, w, base)
    if a2 is not None:
        r = _linear_add(mk, a2, w2, r)
    if t.full:
        t.dest.view(-1, t.dest.shape[-1])[:, sl] = r
    else:
        t.dest[..., sl] = _box(r, t.rows, t.cols, t.inner)


def _block_qkv(p: _Block, x: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """q | k | v (``P x 3C``) of a block's attention on a tile."""
    return _dw(_linear(p.mk, _ln(x), p.qkv_w, p.qkv_b), rows, width, p.qkv_dw)


def _block_v(p: _Block, x: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """v alone (``P x C``), for an update pass that recomputes it."""
    return _dw(_linear(p.mk, _ln(x), p.v_w, p.v_b), rows, width, p.v_dw)


def _tile_sums(q: torch.Tensor, k: torch.Tensor, t: _Tile) -> tuple:
    """The attention sums (:meth:`_Stats.partial`) of tile ``t``'s pixels inside ``t.valid``.

    When the box leaves out only a few columns on the sides of a band's rows
    (the mirrored margin), the sums over whole rows (views) less those over
    the left-out columns (small copies): not a copy of nearly every pixel.
    """
    y0, y1, x0, x1 = t.valid
    if (x0 == 0 and x1 == t.cols) or y1 <= y0 or 2 * (x1 - x0) < t.cols:
        return _Stats.partial(_interior(q, t.rows, t.cols, t.valid), _interior(k, t.rows, t.cols, t.valid))
    whole = (y0, y1, 0, t.cols)
    g, qq, kk = _Stats.partial(_interior(q, t.rows, t.cols, whole), _interior(k, t.rows, t.cols, whole))
    for side in ((y0, y1, 0, x0), (y0, y1, x1, t.cols)):
        if side[3] > side[2]:
            g2, qq2, kk2 = _Stats.partial(_interior(q, t.rows, t.cols, side), _interior(k, t.rows, t.cols, side))
            g, qq, kk = g - g2, qq - qq2, kk - kk2
    return g, qq, kk


def _blocks_sums(units: list, t: _Tile) -> list:
    """First pass of a stage of transformer blocks on one tile: per ``(block, channel slice)``, its
    attention sums over ``t.valid``; the values ``v`` inside ``t.inner`` go to ``t.vdest``."""
    out = []
    for p, sl in units:
        c = p.dim
        qkv = _block_qkv(p, t.x[:, sl], t.rows, t.cols)
        if t.vdest is not None:
            t.vdest[..., sl] = _box(qkv[:, 2 * c:], t.rows, t.cols, t.inner)
        out.append(_tile_sums(qkv[:, :c], qkv[:, c: 2 * c], t))
    return out


def _blocks_update(units: list, mixes: list, t: _Tile) -> None:
    """Second pass of a stage of transformer blocks on one tile: ``x + attention``, then ``+ FFN``.

    ``mixes`` (one ``C x C`` matrix per unit, :meth:`_Stats.mixing`) apply
    the attention with its output projection. Values come from ``t.v`` or,
    when not kept, are recomputed (the tile then has a halo of two).
    """
    for (p, sl), mix in zip(units, mixes):
        xs = t.x[:, sl]
        v = t.v[:, sl] if t.v is not None else _block_v(p, xs, t.rows, t.cols)
        y = _linear_add(p.mk, v, mix, xs)
        del v
        xhat = _ln(y)
        gate = _dw(_linear(p.mk, xhat, p.ffn_a_w, p.ffn_a_b), t.rows, t.cols, p.ffn_a_dw, p.mk, gelu=True)
        gated = _dw(_linear(p.mk, xhat, p.ffn_b_w, p.ffn_b_b), t.rows, t.cols, p.ffn_b_dw, p.mk, times=gate)
        del xhat, gate
        _emit(t, sl, p.mk, y, gated, p.ffn_out_w)


def _fusion_sums(f: _Fusion, t: _Tile) -> list:
    """First pass of the fusion block on one tile: the sums of its two cross attentions; v1 | v2 to ``t.vdest``."""
    c = f.dim
    qkv1 = _dw(_linear(f.mk, t.x[:, :c], f.qkv1_w), t.rows, t.cols, f.qkv1_dw)
    qkv2 = _dw(_linear(f.mk, t.x[:, c:], f.qkv2_w), t.rows, t.cols, f.qkv2_dw)
    if t.vdest is not None:
        t.vdest[..., :c] = _box(qkv1[:, 2 * c:], t.rows, t.cols, t.inner)
        t.vdest[..., c:] = _box(qkv2[:, 2 * c:], t.rows, t.cols, t.inner)
    return [_tile_sums(qkv2[:, :c], qkv1[:, c: 2 * c], t),  # queries of stream 2, keys of stream 1
            _tile_sums(qkv1[:, :c], qkv2[:, c: 2 * c], t)]  # queries of stream 1, keys of stream 2


def _fusion_update(f: _Fusion, mixes: list, t: _Tile) -> None:
    """Second pass of the fusion block on one tile: both attentions, then the gated projections."""
    c, mk = f.dim, f.mk
    x1, x2 = t.x[:, :c], t.x[:, c:]
    if t.v is not None:
        v1, v2 = t.v[:, :c], t.v[:, c:]
    else:
        v1 = _dw(_linear(mk, x1, f.v1_w), t.rows, t.cols, f.v1_dw)
        v2 = _dw(_linear(mk, x2, f.v2_w), t.rows, t.cols, f.v2_dw)
    y = torch.cat([_linear_add(mk, v1, mixes[0], x1), _linear_add(mk, v2, mixes[1], x2)], 1)
    del v1, v2
    y1, y2 = y[:, :c].contiguous(), y[:, c:].contiguous()
    g1 = _dw(_linear(mk, y, f.g1_w), t.rows, t.cols, f.g1_dw, mk, gelu=True)
    t1 = _dw(_linear(mk, y1, f.e1_w), t.rows, t.cols, f.e1_dw, mk, times=g1)
    del g1, y1
    g2 = _dw(_linear(mk, y, f.g2_w), t.rows, t.cols, f.g2_dw, mk, gelu=True)
    t2 = _dw(_linear(mk, y2, f.e2_w), t.rows, t.cols, f.e2_dw, mk, times=g2)
    del g2, y2
    _emit(t, slice(None), mk, y, t1, f.out1_w, t2, f.out2_w)


# --------------------------------------------------------------------------
# Tiling
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

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)


def _split(length: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` cutting ``length`` into pieces of at most ``size``, as few as that allows, their
    lengths differing by at most one (506 rows in 25s: 21 pieces of 24 or 25 rows, not 20 of 25 and one of 6)."""
    n = math.ceil(length / max(1, min(size, length)))
    edges = [length * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


#: Images at most ``chunk_pixels / MIN_BAND_ROWS`` wide are cut into bands of
#: whole rows: a band is then a contiguous block of the feature buffer, read
#: and written without copies (views), at the price of a halo of whole rows.
#: Wider images are cut into tiles of ``TILE_ASPECT`` times as many columns
#: as rows, which are copied out and back, and fewer rows where a band of
#: them would take more than :data:`BAND_BYTES` (at least ``MIN_BAND_ROWS``):
#: a streamed image holds a few bands at a time, so its memory stays about
#: the same at any width (4096 x 3072: bands of 45 rows, 24 MiB).
MIN_BAND_ROWS = 16
TILE_ASPECT = 4
BAND_BYTES = 24 << 20


def _grid(height: int, width: int, chunk_pixels: int, workers: int = 1, valid: tuple | None = None,
          pixel_bytes: int = 128) -> _Grid:
    """Bands of whole rows (about ``chunk_pixels`` pixels each) on images up to
    ``chunk_pixels / MIN_BAND_ROWS`` wide, else tiles of about ``chunk_pixels``
    pixels, ``TILE_ASPECT`` times wider than high, in bands of at most
    :data:`BAND_BYTES` (``pixel_bytes`` a pixel of the feature buffer).

    Several bands, or the tiles of a band, run concurrently on the workers
    (see :func:`_sweep`), so ``workers`` does not change the cut.
    """
    if width * MIN_BAND_ROWS <= chunk_pixels or width == 1:
        bands = max(1, round(height * width / chunk_pixels))  # nearest: a 26-row strip of 16.6k pixels stays one band
        return _Grid(height, width, _split(height, max(HALO, math.ceil(height / bands))), [(0, width)], valid)
    tile_h = max(1, math.isqrt(max(1, chunk_pixels // TILE_ASPECT)))
    tile_h = max(min(tile_h, MIN_BAND_ROWS), min(tile_h, BAND_BYTES // (width * pixel_bytes)))
    n_cols = max(1, math.ceil(width / max(1, chunk_pixels // tile_h)))
    tile_w = math.ceil(width / n_cols)
    # bands of at least HALO rows: the next band's halo then reaches into one band only (see _sweep)
    return _Grid(height, width, _split(height, max(HALO, chunk_pixels // tile_w)), _split(width, tile_w), valid)


# --------------------------------------------------------------------------
# Feature stores: H x W x C buffers in memory or in a temporary file
# --------------------------------------------------------------------------
def _empty(shape: tuple, device) -> torch.Tensor:
    """An uninitialised float32 tensor; on CPU from 8 MiB up, in an anonymous mapping of its own.

    Feature buffers, band buffers and outputs live through a pass or the
    call; made in glibc's heap between bursts of tile temporaries they pin it
    (measured: 1000 x 800 peaked at 980 MiB, of which ~340 MiB free heap).
    A mapping of their own is given back whole when they are freed.
    """
    numel = math.prod(shape)
    if torch.device(device).type == "cpu" and numel >= (1 << 21):
        import mmap

        return torch.frombuffer(mmap.mmap(-1, numel * 4), dtype=torch.float32).view(shape)
    return torch.empty(shape, dtype=torch.float32, device=device)


class _Memory:
    """An ``H x W x C`` float32 buffer in memory; bands of rows are views."""

    spilled = False

    def __init__(self, height: int, width: int, channels: int, device) -> None:
        self.height, self.width, self.channels = height, width, channels
        self.t = _empty((height, width, channels), device)

    def read(self, a: int, b: int, run: "_Runner") -> torch.Tensor:
        """Rows ``a .. b`` as a ``(b - a) x W x C`` view."""
        return self.t[a:b]

    def release(self, band: torch.Tensor, run: "_Runner") -> None:
        """Nothing to give back (``band`` is a view)."""

    def rows(self, r0: int, r1: int, run: "_Runner") -> torch.Tensor:
        """Where rows ``r0 .. r1`` are to be written: here, the buffer's own rows."""
        return self.t[r0:r1]

    def commit(self, r0: int, band: torch.Tensor, run: "_Runner") -> None:
        """``band`` came from :meth:`rows`: nothing left to do."""

    def write(self, r0: int, band: torch.Tensor) -> None:
        """Copy ``band`` (``n x W x C``) over rows ``r0 .. r0 + n``."""
        self.t[r0: r0 + band.shape[0]] = band

    def store_band(self, r0: int, band: torch.Tensor, run: "_Runner") -> None:
        """:meth:`write` a pool band, then give it back."""
        self.write(r0, band)
        run.give(band)

    def close(self) -> None:
        self.t = None


class _Spill:
    """An ``H x W x C`` float32 feature buffer in an unnamed temporary file, read and written by bands of rows.

    The file is made in :func:`tempfile.gettempdir` (``TMPDIR``) by
    :func:`tempfile.TemporaryFile`, which unlinks it at once on POSIX (and
    deletes it on close elsewhere): it disappears when the process ends,
    however it ends (Ctrl-C, a kill), and :meth:`close` frees its space at
    once. Rows are contiguous in the file, so a band is one ``preadv`` /
    ``pwritev``. The kernel's page cache keeps the file in RAM while there is
    room, but that memory is not the process's and is written out and given
    back under memory pressure. Bands are read into buffers of the call's
    pool (:meth:`_Runner.take`), reused band after band: a fresh band-sized
    allocation would be mapped and faulted in anew for every band.
    """

    spilled = True

    def __init__(self, height: int, width: int, channels: int) -> None:
        self.height, self.width, self.channels = height, width, channels
        self.row_bytes = width * channels * 4
        self.file = tempfile.TemporaryFile(prefix="fusekit-refusion-")
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

    def read(self, a: int, b: int, run: "_Runner") -> torch.Tensor:
        """Rows ``a .. b`` as ``(b - a) x W x C``, read into a pool buffer (give it back with :meth:`release`).

        The buffer starts at the same offset modulo 64 bytes as row ``a`` of an
        in-memory buffer would, so every kernel sees the same alignment and the
        result equals the in-memory engine's bit for bit. The read runs on the
        call's I/O thread (:meth:`_Runner.submit`); :meth:`_Runner.wait_reads`
        waits for it.
        """
        shift = (a * self.width * self.channels) % 16
        flat = run.take((b - a) * self.width * self.channels + shift)
        band = flat[shift: shift + (b - a) * self.width * self.channels].view(b - a, self.width, self.channels)
        run.reads.append(run.submit(self._io, False, band, a))
        run.pending_release[band.data_ptr()] = flat
        return band

    def release(self, band: torch.Tensor, run: "_Runner") -> None:
        """Give a band from :meth:`read` or :meth:`rows` back to the pool."""
        run.give(run.pending_release.pop(band.data_ptr()))

    def rows(self, r0: int, r1: int, run: "_Runner") -> torch.Tensor:
        """A pool buffer for rows ``r0 .. r1`` to be written, then stored by :meth:`commit`."""
        shift = (r0 * self.width * self.channels) % 16
        flat = run.take((r1 - r0) * self.width * self.channels + shift)
        band = flat[shift: shift + (r1 - r0) * self.width * self.channels].view(r1 - r0, self.width, self.channels)
        run.pending_release[band.data_ptr()] = flat
        return band

    def commit(self, r0: int, band: torch.Tensor, run: "_Runner") -> None:
        """Store a band from :meth:`rows` at row ``r0`` (on the I/O thread); its buffer goes back afterwards."""
        run.submit(self._io, True, band, r0, give=run.pending_release.pop(band.data_ptr()))

    def store_band(self, r0: int, band: torch.Tensor, run: "_Runner") -> None:
        """Store a pool band (``n x W x C``, from :meth:`_Runner.take`) at rows ``r0 .. r0 + n``, then give it back."""
        run.submit(self._io, True, band, r0, give=band)

    def write(self, r0: int, band: torch.Tensor) -> None:
        """Store ``band`` (``n x W x C``, contiguous) at rows ``r0 .. r0 + n``, now."""
        self._io(True, band, r0)

    def close(self) -> None:
        self.file.close()


#: Feature buffers (``H x W x 2C`` float32, mirrored margin included) larger
#: than this are kept in a temporary file instead of memory (:class:`_Spill`)
#: and streamed through in bands of rows, so the engine's memory is a few
#: bands, set by the image width and ``chunk_pixels``, not by the image size.
#: 512 MiB is about 4 megapixels; smaller images keep the whole buffer in
#: memory (no file traffic, and the attention values cached between passes).
STREAM_BYTES = 512 << 20

#: Keep the attention values ``v`` of a block between its two passes when they
#: take at most this many bytes (all in-memory parts together): the second
#: pass then needs neither the layer norm nor the q/k/v projection and
#: convolution again, and a halo of one pixel instead of two. Larger
#: in-memory images recompute ``v`` so that memory stays one feature buffer.
#: 256 MiB is 2 megapixels at 32 channels.
V_CACHE_BYTES = 256 << 20

#: When the features stream through a temporary file (:data:`STREAM_BYTES`),
#: keep ``v`` in one too (written in the first pass, read in the second):
#: moving the bytes costs less than recomputing them.
SPILL_V = True


def _store(height: int, width: int, channels: int, device, stream: bool = True):
    """A :class:`_Spill` for a buffer over :data:`STREAM_BYTES` on CPU (when ``stream``), else :class:`_Memory`.

    Where no temporary file can be made (read-only or full temporary
    directory) the buffer stays in memory, as below the threshold, with a warning.
    """
    nbytes = height * width * channels * 4
    if stream and torch.device(device).type == "cpu" and nbytes > STREAM_BYTES:
        try:
            return _Spill(height, width, channels)
        except OSError as exc:
            import warnings

            warnings.warn(f"refusion: cannot keep the {nbytes / 2**30:.1f} GiB feature buffer "
                          f"in a temporary file in {tempfile.gettempdir()} ({exc}); keeping it in memory. Set TMPDIR "
                          f"to a directory with room.", RuntimeWarning, stacklevel=4)
    return _Memory(height, width, channels, device)


@dataclass
class _Piece:
    """One image an inference runs on (see :func:`_layout`): its feature store, tiling and cached values."""

    store: object
    grid: _Grid
    values: object = None  # _Memory or _Spill of H x W x 2C attention values, or None (recomputed)
    offset: tuple = (0, 0)  # where the features start in the piece (ring strips are narrowed, :func:`_narrowed`)

    def close(self) -> None:
        for s in (self.store, self.values):
            if s is not None:
                s.close()
        self.store = self.values = None


# --------------------------------------------------------------------------
# Running tiles
# --------------------------------------------------------------------------
class _Runner:
    """Runs independent tiles, on a pool of single-threaded workers or in sequence.

    On a CPU with several threads, tiles run concurrently, each with one
    intra-op thread: small tiles otherwise pay an OpenMP fork/join per
    operation, which is slow, and very slow on shared, oversubscribed cores.
    Results come back in input order, so the output is deterministic.

    Every item run by :meth:`map` is one tile and one progress step: after
    each, ``report_progress(done, total)`` is called (under a lock, so the
    counts a listener sees increase even when workers finish out of order).

    It also keeps the call's pool of band buffers (:meth:`take`,
    :meth:`give`), reused band after band and pass after pass.
    """

    def __init__(self, workers: int, device="cpu") -> None:
        self.workers = workers
        self.device = device
        self.pool = None
        self.done = 0
        self.total = None
        self._lock = threading.Lock()
        self._free: list = []
        self.pending_release: dict = {}
        self.trim = False  # give freed heap memory back after every pass (large images, see settle)
        self.io = None  # one thread for the temporary files' reads and writes (see submit)
        self.inflight: list = []  # (future, buffer to give back once done)
        self.reads: list = []  # futures of the reads of the bands being prepared
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))

    def take(self, numel: int) -> torch.Tensor:
        """A flat float32 buffer of at least ``numel`` elements (contents undefined), from the pool if one fits."""
        fits = [i for i, b in enumerate(self._free) if b.numel() >= numel]
        if fits:
            buf = self._free.pop(min(fits, key=lambda i: self._free[i].numel()))
            return buf[:numel]
        return _empty((numel,), self.device)

    def give(self, buf: torch.Tensor) -> None:
        """Return a buffer from :meth:`take` to the pool (the whole allocation is kept)."""
        storage = buf.untyped_storage()  # the whole allocation (views made in inference mode have no _base)
        self._free.append(buf.new_empty(0).set_(storage, 0, (storage.nbytes() // buf.element_size(),)))

    def submit(self, fn, *args, give=None):
        """Run ``fn(*args)`` (a temporary file's read or write) on the call's one I/O thread, in order.

        Reads and writes go in the order they are submitted, so the next
        group's bands are read while the workers compute this one's, and band
        results are written behind; ``give`` (a pool buffer) returns to the
        pool once the write is done (:meth:`reap`).
        """
        if self.io is None:
            from concurrent.futures import ThreadPoolExecutor

            self.io = ThreadPoolExecutor(1)
        fut = self.io.submit(fn, *args)
        self.inflight.append((fut, give))
        return fut

    def wait_reads(self) -> None:
        """Wait for the reads submitted since the last call (raising their errors)."""
        reads, self.reads = self.reads, []
        for fut in reads:
            fut.result()

    def reap(self, wait: bool = False, most: int = 2) -> None:
        """Give back the buffers of finished writes (all of them, waiting, with ``wait``); raise their errors.

        Waits for the oldest until at most ``most`` are in flight, so that band
        buffers do not pile up when the disk is slower than the tiles.
        """
        keep = []
        for k, (fut, give) in enumerate(self.inflight):
            if wait or fut.done() or len(self.inflight) - k > most:
                fut.result()
                if give is not None:
                    self.give(give)
            else:
                keep.append((fut, give))
        self.inflight = keep

    def settle(self) -> None:
        """After a pass on a large image: ``malloc_trim(0)``, so that the heap memory the tiles' temporaries
        left free (fragmented over glibc's per-thread arenas, hundreds of MiB at 4096 x 3072) goes back.
        A few page faults per pass instead; nothing on small images (``trim`` unset)."""
        libc = _libc() if self.trim and MALLOPT else False
        if libc:
            libc.malloc_trim(0)

    def tick(self) -> None:
        """One tile finished: count it and tell the progress listener (if any)."""
        with self._lock:
            self.done += 1
            report_progress(self.done, self.total)

    def map(self, fn, items) -> list:
        return self.start(fn, items)()

    def start(self, fn, items):
        """Start ``fn`` on every item (on the workers, or here and now without any); returns a function
        that waits for them and returns their results in order."""
        items = list(items)

        def counted(item):
            out = fn(item)
            self.tick()
            return out

        if self.pool is None or len(items) < 2:
            out = [counted(item) for item in items]
            return lambda: out
        futures = [self.pool.submit(_in_inference_mode(counted), item) for item in items]
        return lambda: [f.result() for f in futures]

    def drain(self) -> None:
        """Wait for every read and write in flight, ignoring their errors (before files are closed)."""
        for fut, _ in self.inflight:
            try:
                fut.result()
            except BaseException:  # noqa: BLE001 - the error that stopped the call is the one to report
                pass
        self.inflight, self.reads = [], []

    def close(self) -> None:
        self.drain()
        if self.io is not None:
            self.io.shutdown()
        self._free.clear()
        self.pending_release.clear()
        if self.pool is not None:  # on Ctrl-C, tiles not yet started are dropped
            self.pool.shutdown(cancel_futures=True)


def _in_inference_mode(fn):
    """Wrap ``fn`` to run under inference mode (a thread-local setting) in a worker thread."""
    def wrapped(item):
        with torch.inference_mode():
            return fn(item)

    return wrapped


#: Tiles per worker in a group of bands run together (:func:`_sweep`): the
#: workers meet once per group, and the calling thread stores the group's
#: results between groups, so one tile each left them waiting on each other
#: (2 threads, idle machine: 0.76 s a 640 x 480 pair against 0.68 s for the
#: older engine); more also evens out unequal tiles, at a band buffer each.
GROUP_TILES = 4


def _sweep(run: _Runner, pieces: list, fn, *, halo, source=None, sink=None, read_values: bool = False,
           write_values: bool = False) -> list:
    """One pass over every tile of every piece; returns ``fn``'s results in tile order.

    For each piece, bands of rows go top to bottom, a few at a time (enough
    for every worker to have a tile); the tiles of those bands run
    concurrently. Each tile gets a :class:`_Tile`: its input rows with a halo
    of ``halo(piece)`` pixels from ``source(piece)`` (default: the piece's
    features), and, when ``sink(piece)`` is given, a destination for its
    result in a band buffer of that store; ``read_values`` / ``write_values``
    give it the cached attention values with the same halo / a destination
    for them.

    When the sink is the source (a block updating the features), a band's
    result is written back only once the bands on both sides of it have
    read their inputs: so every tile reads the features as they were before
    the pass, with no copies of the input bands.
    """
    seq = [(i, r0, r1) for i, pc in enumerate(pieces) for r0, r1 in pc.grid.rows]
    groups, pos = [], 0
    while pos < len(seq):
        group, n = [], 0
        while pos < len(seq) and (not group or n < GROUP_TILES * run.workers):
            group.append(seq[pos])
            n += len(pieces[seq[pos][0]].grid.cols)
            pos += 1
        groups.append(group)

    def prepare(group):
        """Read a group's input bands (temporary files: on the I/O thread) and give out its output bands."""
        jobs, reads, vouts, outs = [], [], [], []
        for i, r0, r1 in group:
            pc = pieces[i]
            g = pc.grid
            h = halo(pc)
            src = pc.store if source is None else source(pc)
            dst = None if sink is None else sink(pc)
            a, b = max(0, r0 - h), min(g.height, r1 + h)
            xin = src.read(a, b, run)
            reads.append((src, xin))
            vin = None
            if read_values and pc.values is not None:
                vin = pc.values.read(a, b, run)
                reads.append((pc.values, vin))
            out = None
            if dst is not None:
                out = dst.rows(r0, r1, run) if dst is not src else _band_buffer(run, src, r0, r1)
                outs.append((i, dst, dst is src, r0, out))
            vout = None
            if write_values and pc.values is not None:
                vout = pc.values.rows(r0, r1, run)
                vouts.append((pc.values, r0, vout))
            vy0, vy1, vx0, vx1 = g.valid
            for c0, c1 in g.cols:
                ca, cb = max(0, c0 - h), min(g.width, c1 + h)
                y0, x0 = max(r0, vy0), max(c0, vx0)
                y1, x1 = max(y0, min(r1, vy1)), max(x0, min(c1, vx1))
                jobs.append((xin, vin, out, vout, a, b, r0, r1, c0, c1, ca, cb, g.width,
                             (y0 - a, y1 - a, x0 - ca, x1 - ca)))
        pending, run.reads = run.reads, []
        return jobs, reads, vouts, outs, pending

    results = []
    waiting: dict = {}  # piece -> [(r0, band)] written by computed bands, not yet stored

    def finish(reads, vouts, outs) -> None:
        """Give back a computed group's inputs and store its results (all but each piece's latest band,
        whose lower rows the next band's tiles read as their upper halo)."""
        for store, band in reads:
            store.release(band, run)
        for store, r0, band in vouts:
            store.commit(r0, band, run)
        for i, dst, inplace, r0, out in outs:
            if inplace:
                waiting.setdefault(i, []).append((r0, out))
            else:
                dst.commit(r0, out, run)
        for i, bands in waiting.items():
            if not bands:
                continue
            last = bands[-1][0] + bands[-1][1].shape[0] == pieces[i].grid.height
            keep = [] if last else bands[-1:]
            for r0, out in (bands if last else bands[:-1]):
                pieces[i].store.store_band(r0, out, run)
            waiting[i] = keep
        run.reap()

    ready, done = prepare(groups[0]), None
    for gi in range(len(groups)):
        jobs, reads, vouts, outs, pending = ready
        for fut in pending:
            fut.result()
        collect = run.start(lambda job: fn(_make_tile(*job)), jobs)
        # while the workers compute this group: store the previous group's results (rows this group
        # does not read: bands have at least HALO rows) and read the next group's bands
        if done is not None:
            finish(*done)
        ready = prepare(groups[gi + 1]) if gi + 1 < len(groups) else None
        results += collect()
        done = (reads, vouts, outs)
    finish(*done)
    run.reap(wait=True)
    run.settle()
    return results


def _band_buffer(run: _Runner, store, r0: int, r1: int) -> torch.Tensor:
    """A pool buffer for rows ``r0 .. r1`` of ``store`` (``(r1 - r0) x W x C``)."""
    n = (r1 - r0) * store.width * store.channels
    return run.take(n).view(r1 - r0, store.width, store.channels)


def _make_tile(xin, vin, out, vout, a, b, r0, r1, c0, c1, ca, cb, width, valid) -> _Tile:
    """The :class:`_Tile` of one job of :func:`_sweep` (copies the input only when the tile is narrower than the band)."""
    full = ca == 0 and cb == width
    rows, cols = b - a, cb - ca
    x = xin.reshape(rows * cols, -1) if full else _flat(xin[:, ca:cb])
    v = None if vin is None else (vin.reshape(rows * cols, -1) if full else _flat(vin[:, ca:cb]))
    return _Tile(x=x, rows=rows, cols=cols, inner=(r0 - a, r1 - a, c0 - ca, c1 - ca), valid=valid, full=full,
                 v=v, dest=None if out is None else out[:, c0:c1],
                 vdest=None if vout is None else vout[:, c0:c1])


# --------------------------------------------------------------------------
# The network, stage by stage
# --------------------------------------------------------------------------
def _stage(run: _Runner, pieces: list, sums, update, mixing, updated: list | None = None) -> None:
    """One attention stage over every piece: a pass for the attention sums (and values), then the update.

    ``sums(tile)`` returns a list of per-attention partial sums, ``mixing``
    turns the merged :class:`_Stats` into the matrices ``update(mixes, tile)``
    applies to the pieces ``updated`` (default: all).
    """
    parts = _sweep(run, pieces, sums, halo=lambda pc: 1, write_values=True)
    stats = [_Stats() for _ in parts[0]]
    for part in parts:  # fixed order: deterministic
        for s, one in zip(stats, part):
            s.merge(one)
    mixes = mixing(stats)
    _sweep(run, pieces if updated is None else updated, lambda t: update(mixes, t),
           halo=lambda pc: 1 if pc.values is not None else 2,
           sink=lambda pc: pc.store, read_values=True)


def _blocks_stage(run: _Runner, pieces: list, units: list, updated: list | None = None) -> None:
    """Apply transformer blocks, each on its channel slice (``units``: ``[(block, slice)]``), to every piece
    (sums over all ``pieces``, update of ``updated``)."""
    _stage(run, pieces, lambda t: _blocks_sums(units, t), lambda mixes, t: _blocks_update(units, mixes, t),
           lambda stats: [s.mixing(p.temperature, p.heads, p.proj_w) for s, (p, _) in zip(stats, units)], updated)


def _fusion_stage(run: _Runner, f: _Fusion, pieces: list, updated: list | None = None) -> None:
    """Apply the fusion block to every piece (sums over all ``pieces``, update of ``updated``)."""
    _stage(run, pieces, lambda t: _fusion_sums(f, t), lambda mixes, t: _fusion_update(f, mixes, t),
           lambda stats: [stats[0].mixing(f.t1, f.heads, f.mid1), stats[1].mixing(f.t2, f.heads, f.mid2)],
           updated)


def _stages(p: _Prepared) -> list:
    """The network after the stems as a list of ``("blocks", units)`` / ``("fusion", f)`` stages.

    The two encoders run side by side (block ``j`` of each in one stage, on
    their own channels), so each stage is one pair of passes over the image.
    """
    c = p.dim
    out = []
    for j in range(max(len(p.enc1), len(p.enc2))):
        units = ([(p.enc1[j], slice(0, c))] if j < len(p.enc1) else []) + \
                ([(p.enc2[j], slice(c, 2 * c))] if j < len(p.enc2) else [])
        out.append(("blocks", units))
    out.append(("fusion", p.fusion))
    out += [("blocks", [(blk, slice(None))]) for blk in p.dec]
    return out


def _layout(h: int, w: int, border: int) -> list[tuple]:
    """``(height, width, valid, crop, side)`` of each image one inference runs on (see :func:`_pieces`).

    ``crop`` is ``None`` for the image mirrored by ``border`` (the image itself
    when ``border == 0``), else the ``(rows, cols)`` slices of the unpadded
    image that the piece is. ``side`` names the image border a ring strip
    lies on (``"top"``, ``"bottom"``, ``"left"``, ``"right"``; ``None`` for
    the other pieces): its cut edge is the opposite one (:func:`_narrowed`).
    """
    if border == 0:
        return [(h, w, None, None, None)]
    r, s = RECEPTIVE_RADIUS, 2 * RECEPTIVE_RADIUS
    hp, wp = h + 2 * border, w + 2 * border
    every = slice(None)
    if min(h, w) <= 2 * s:
        return [(hp, wp, (0, 0, 0, 0), None, None), (h, w, None, (every, every), None)]
    return [(hp, wp, (border + r, border + h - r, border + r, border + w - r), None, None),
            (s, w, (0, r, 0, w), (slice(0, s), every), "top"),                # top ring
            (s, w, (s - r, s, 0, w), (slice(h - s, h), every), "bottom"),     # bottom ring
            (h, s, (r, h - r, 0, r), (every, slice(0, s)), "left"),           # left ring, without the corners
            (h, s, (r, h - r, s - r, s), (every, slice(w - s, w)), "right")]  # right ring


def _narrowed(entry: tuple, stage: int, stages: int) -> tuple:
    """``(height, width, valid, offset)`` of a :func:`_layout` piece for attention stage ``stage`` of ``stages``.

    A ring strip only has to give exact features (those of the unpadded
    image) on its outer :data:`RECEPTIVE_RADIUS` (``R``) pixels when the
    last stage takes its attention sums. Each stage's pair of depthwise
    convolutions spoils two more pixels from the cut edge, and the last stage
    needs one (its q/k convolution), so before stage ``k`` the strip is cut
    to ``R + 1 + 2 (stages - 1 - k)`` pixels across (22 down to 14 for five
    stages, instead of 26): the pixels dropped are those the zero padding at
    the cut has already reached. ``offset = (dy, dx)``: where the narrowed
    strip starts in the piece. Other pieces are returned whole.
    """
    height, width, valid, _, side = entry
    if side is None:
        return height, width, valid, (0, 0)
    keep = RECEPTIVE_RADIUS + 1 + 2 * (stages - 1 - stage)
    y0, y1, x0, x1 = valid
    if side in ("top", "bottom"):
        keep = min(keep, height)
        dy = height - keep if side == "bottom" else 0
        return keep, width, (y0 - dy, y1 - dy, x0, x1), (dy, 0)
    keep = min(keep, width)
    dx = width - keep if side == "right" else 0
    return height, keep, (y0, y1, x0 - dx, x1 - dx), (0, dx)


def _pieces(src: torch.Tensor, border: int) -> list[tuple["_Source", tuple]]:
    """The images one inference runs on, each with the box its attention sums come from.

    ``border == 0``: the image itself, every pixel. Otherwise first the image
    mirrored by ``border`` (it gives the output), summed only at least
    :data:`RECEPTIVE_RADIUS` (``R``) pixels inside the real image, where its
    features equal the unpadded network's; then the unpadded image's outer
    ring of width ``R``, taken from four strips ``2 R`` wide (the features of
    a strip's outer half do not see the cut). The attention sums, and so every
    output pixel farther than ``R`` from the border, are then those of the
    plain zero-padded network, to float rounding. Images with a side of
    ``4 R`` or less are summed whole instead of in strips. Each image is a
    :class:`_Source`: read band by band, never copied whole.
    """
    _, h, w = src.shape
    return [(_Source(src, border) if crop is None else _Source(src[:, crop[0], crop[1]], 0), valid)
            for _, _, valid, crop, _ in _layout(h, w, border)]


class _Source:
    """A piece's ``2 x H x W`` sources, mirrored by ``margin`` (:func:`reflect_pad`), read as channels-last
    bands: the stems never hold a mirrored, channels-last copy of the whole image (800 MiB at 8192 x 6144)."""

    spilled = False

    def __init__(self, src: torch.Tensor, margin: int) -> None:
        _, h, w = src.shape
        self.src, self.channels = src, src.shape[0]
        self.height, self.width = h + 2 * margin, w + 2 * margin
        self.rows = _reflect_index(h, margin, src.device) if margin else None
        self.cols = _reflect_index(w, margin, src.device) if margin else None

    def read(self, a: int, b: int, run: "_Runner") -> torch.Tensor:
        """Rows ``a .. b`` of the mirrored image, ``(b - a) x W x 2`` (a new contiguous tensor)."""
        if self.rows is None:
            band = self.src[:, a:b]
        else:
            band = self.src.index_select(1, self.rows[a:b]).index_select(2, self.cols)
        return band.permute(1, 2, 0).contiguous()

    def release(self, band: torch.Tensor, run: "_Runner") -> None:
        """Nothing to give back."""


@dataclass
class _Plan:
    """How one image's inference is cut: per piece of :func:`_layout`, its grid at the stems (``stem``)
    and at every attention stage (``stages[k][i]``, ring strips narrowed by :func:`_narrowed`), with
    the offset of the narrowed strip in the piece (``offsets[k][i]``)."""

    layout: list
    stem: list
    stages: list
    offsets: list

    def steps(self) -> int:
        """Tiles the inference runs (its progress total): the stems, the sums pass of every stage on every
        piece, the update pass on every piece but the ring strips at the last stage (only its sums are
        needed from them), the head."""
        n = sum(g.n_tiles for g in self.stem) + self.stem[0].n_tiles
        for k, grids in enumerate(self.stages):
            n += sum(g.n_tiles for g in grids)
            n += sum(g.n_tiles for i, g in enumerate(grids) if i == 0 or k < len(self.stages) - 1)
        return n


def _plan(p: _Prepared, h: int, w: int, chunk_pixels: int, workers: int, border: int) -> _Plan:
    """The :class:`_Plan` of an ``h x w`` image."""
    layout = _layout(h, w, border)
    n = len(_stages(p))
    stem = [_grid(e[0], e[1], chunk_pixels, workers, e[2]) for e in layout]
    stages, offsets = [], []
    for k in range(n):
        cut = [_narrowed(e, k, n) for e in layout]
        stages.append([_grid(ph, pw, chunk_pixels, workers, valid) for ph, pw, valid, _ in cut])
        offsets.append([off for *_, off in cut])
    return _Plan(layout, stem, stages, offsets)


def _values(pieces: list, channels: int, device) -> None:
    """Decide where each piece keeps its attention values between the passes (sets ``piece.values``).

    In a temporary file for a streamed piece (when :data:`SPILL_V`), in
    memory for the others while they take at most :data:`V_CACHE_BYTES`
    together; otherwise they are recomputed in the update pass. One buffer
    per piece serves every stage (``H x W x channels``, the widest stage's).
    """
    in_memory = sum(pc.grid.height * pc.grid.width for pc in pieces if not pc.store.spilled) * channels * 4
    for pc in pieces:
        g = pc.grid
        if pc.store.spilled:
            if SPILL_V:
                try:
                    pc.values = _Spill(g.height, g.width, channels)
                except OSError:  # no room for it: recompute
                    pc.values = None
        elif in_memory <= V_CACHE_BYTES:
            pc.values = _Memory(g.height, g.width, channels, device)


def _stem(run: _Runner, p: _Prepared, pieces: list, sources: list) -> None:
    """Both 3x3 stems of each piece's :class:`_Source` into its new ``H x W x 2C`` features."""
    srcs = {id(pc): src for pc, src in zip(pieces, sources)}

    def stem(t: _Tile) -> None:  # both 3x3 stems as one grouped conv
        y = _conv3x3(t.x, t.rows, t.cols, p.stem_w, groups=2)
        t.dest[...] = _box(y, t.rows, t.cols, t.inner)

    _sweep(run, pieces, stem, halo=lambda pc: 1, source=lambda pc: srcs[id(pc)], sink=lambda pc: pc.store)


def _head(run: _Runner, p: _Prepared, piece: _Piece, device) -> torch.Tensor:
    """3x3 conv, LeakyReLU, 3x3 conv, sigmoid of ``piece``'s features -> ``H x W``."""
    g = piece.grid
    out = _Memory(g.height, g.width, 1, device)

    def head(t: _Tile) -> None:
        h = F.leaky_relu_(_conv3x3(t.x, t.rows, t.cols, p.head0), 0.01)
        y = _conv3x3(h, t.rows, t.cols, p.head1)
        t.dest[...] = torch.sigmoid_(_box(y, t.rows, t.cols, t.inner))

    _sweep(run, [piece], head, halo=lambda pc: HALO, sink=lambda pc: out)
    return out.t[..., 0]


def _narrow(run: _Runner, pc: _Piece, grid: _Grid, offset: tuple) -> None:
    """Cut ``pc``'s features to ``grid``'s size, starting at ``offset = (dy, dx)`` of the whole piece
    (``pc.offset``: where its current features start).

    In memory the kept pixels move to the front of the same buffer (no new
    allocation: one made between tile temporaries pins glibc's heap), and
    the values buffer shrinks the same way; a streamed store gets a new file.
    """
    dy, dx = offset[0] - pc.offset[0], offset[1] - pc.offset[1]
    old = pc.store
    c = old.channels
    if not old.spilled:
        kept = old.t[dy: dy + grid.height, dx: dx + grid.width].clone()  # a strip: at most a few MiB
        old.t = old.t.reshape(-1)[: kept.numel()].view(kept.shape)
        old.t.copy_(kept)
        old.height, old.width = grid.height, grid.width
        if pc.values is not None and not pc.values.spilled:
            v = pc.values
            v.t, v.height, v.width = v.t.reshape(-1)[: kept.numel()].view(kept.shape), grid.height, grid.width
        elif pc.values is not None:
            pc.values.close()
            pc.values = _Spill(grid.height, grid.width, c)
        pc.grid, pc.offset = grid, offset
        return
    new = _store(grid.height, grid.width, c, run.device)
    try:
        for r0, r1 in _split(grid.height, max(1, (64 << 10) // max(1, grid.width))):
            band = old.read(r0 + dy, r1 + dy, run)
            run.wait_reads()
            dst = new.rows(r0, r1, run)
            dst[...] = band[:, dx: dx + grid.width]
            new.commit(r0, dst, run)
            old.release(band, run)
        run.reap(wait=True)
    except BaseException:
        run.drain()
        new.close()
        raise
    old.close()
    pc.store, pc.grid, pc.offset = new, grid, offset
    if pc.values is not None:
        spilled = pc.values.spilled
        pc.values.close()
        pc.values = _Spill(grid.height, grid.width, c) if spilled else _Memory(grid.height, grid.width, c, run.device)


def _infer_one(p: _Prepared, src: torch.Tensor, plan: _Plan, run: _Runner, border: int = 0) -> torch.Tensor:
    """``2 x H x W`` -> ``H x W`` for one image (run on it mirrored by ``border`` pixels, then cropped)."""
    _, h0, w0 = src.shape
    c2 = 2 * p.dim
    pieces = []
    try:
        sources = []
        for (piece, _), grid in zip(_pieces(src, border), plan.stem):
            pieces.append(_Piece(_store(grid.height, grid.width, c2, src.device), grid))
            sources.append(piece)
        _values(pieces, c2, src.device)
        run.trim = any(pc.store.spilled for pc in pieces)
        _stem(run, p, pieces, sources)
        del sources
        stages = _stages(p)
        for k, (kind, what) in enumerate(stages):
            for pc, grid, offset in zip(pieces, plan.stages[k], plan.offsets[k]):
                if (grid.height, grid.width) != (pc.grid.height, pc.grid.width):
                    _narrow(run, pc, grid, offset)
                else:
                    pc.grid = grid
            update = pieces if k < len(stages) - 1 else pieces[:1]  # the strips' last update is never read
            if kind == "fusion":
                _fusion_stage(run, what, pieces, update)
            else:
                _blocks_stage(run, pieces, what, update)
        for extra in pieces[1:]:
            extra.close()
        for pc in pieces:
            if pc.values is not None:
                pc.values.close()
                pc.values = None
        out = _head(run, p, pieces[0], src.device)
    finally:
        run.drain()  # no read or write of a file in flight when it is closed
        for pc in pieces:
            pc.close()
    return out[border: border + h0, border: border + w0] if border else out


# --------------------------------------------------------------------------
# glibc's allocator during a call
# --------------------------------------------------------------------------
#: While the engine runs on CPU under glibc, keep freed tile temporaries in the
#: heap instead of giving them back to the kernel after every tile: glibc
#: trims the top of the heap as soon as more than a few MiB are free there,
#: so every tile's temporaries were faulted in anew (50-80 thousand page
#: faults, 0.1-0.2 s of system time for one 640 x 480 pair, about 15 % of the
#: CPU time). Within a call, :func:`_malloc_kept` raises glibc's trim
#: threshold to :data:`TRIM_BYTES` and its mmap threshold to 32 MiB (glibc's
#: own dynamic maximum), and keeps threads made during the call (the tile
#: workers, so only in calls that make them) on glibc's main arena: each new
#: arena of their own kept its free memory apart (4096 x 3072: peak 1481 MiB
#: with them, 1151 MiB without); after the last concurrent call ends the
#: thresholds are set to 32 MiB / 64 MiB (what glibc's dynamic thresholds
#: grow to), the arena limit back to glibc's default (:func:`_arena_limit`:
#: ``MALLOC_ARENA_MAX`` where set, else 8 per core; ``mallopt(M_ARENA_MAX,
#: 0)`` is ignored by glibc, so it cannot be "unset"), and ``malloc_trim(0)``
#: gives the free memory back when more than :data:`KEEP_FREE_BYTES` are
#: free. glibc fixes its arena limit the first time a thread needs a new
#: arena: when that happens during a call with workers,
#: threads share the main arena for the rest of the process (fine for
#: fusekit's own processes; many-threaded allocation-heavy code in the same
#: process may prefer ``FUSEKIT_REFUSION_MALLOPT=0``).
#: ``FUSEKIT_REFUSION_MALLOPT=0`` leaves the allocator alone.
MALLOPT = os.environ.get("FUSEKIT_REFUSION_MALLOPT", "1") != "0"
TRIM_BYTES = 64 << 20
#: After a call, free heap memory up to this many bytes is kept for the next
#: call instead of being given back with ``malloc_trim(0)``: giving back the
#: ~260 MiB a 640 x 480 pair frees made the next call fault every page in
#: again (~60 thousand minor faults; with the oneDNN cache above, the warm
#: call went from 1.58 s to 1.35 s, ``benchmarks/refusion_warm.py``).
#: Larger images free more than this and are trimmed as before, so a 4K
#: pair does not leave a gigabyte behind. Needs glibc's ``mallinfo2`` (2.33+);
#: without it every call trims.
KEEP_FREE_BYTES = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MALLOC = {"libc": None, "depth": 0, "shared": False, "lock": threading.Lock()}


def _arena_limit() -> int:
    """glibc's arena limit when the engine does not set one: the environment's
    (``GLIBC_TUNABLES=glibc.malloc.arena_max=N``, ``MALLOC_ARENA_MAX=N``), else
    glibc's own, 8 arenas per core available to the process (2 on 32-bit)."""
    tunables = dict(item.partition("=")[::2] for item in os.environ.get("GLIBC_TUNABLES", "").split(":"))
    for text in (tunables.get("glibc.malloc.arena_max"), os.environ.get("MALLOC_ARENA_MAX")):
        try:
            if text and int(text) > 0:
                return int(text)
        except ValueError:
            pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    import ctypes

    return max(1, cores) * (8 if ctypes.sizeof(ctypes.c_long) == 8 else 2)


def _free_heap_bytes(libc) -> float:
    """Bytes free in glibc's heaps (``mallinfo2().fordblks``); infinite where ``mallinfo2`` is missing."""
    info = getattr(libc, "mallinfo2", None)
    if info is None:
        return math.inf
    if hasattr(info, "argtypes") and info.restype is not _mallinfo2_struct():  # glibc's own, not yet typed
        info.restype = _mallinfo2_struct()
    return float(info().fordblks)


def _mallinfo2_struct():
    """ctypes' ``struct mallinfo2`` (glibc's malloc.h), made once."""
    if "mallinfo2" not in _MALLOC:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                             "usmblks", "fsmblks", "uordblks", "fordblks",
                                                             "keepcost")]

        _MALLOC["mallinfo2"] = MallInfo2
    return _MALLOC["mallinfo2"]


def _libc():
    """glibc through ctypes (``mallopt``, ``malloc_trim``), or ``False`` where there is none."""
    if _MALLOC["libc"] is None:
        _MALLOC["libc"] = False
        try:
            import ctypes
            import ctypes.util

            if os.name == "posix" and hasattr(os, "confstr") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or ""):
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
                    _MALLOC["libc"] = libc
        except (OSError, ValueError, AttributeError):
            pass
    return _MALLOC["libc"]


class _malloc_kept:
    """Context manager: glibc keeps freed memory in the heap during the call (see :data:`MALLOPT`)."""

    def __init__(self, active: bool, share_arena: bool = True) -> None:
        self.libc = _libc() if active and MALLOPT else False
        self.share_arena = share_arena

    def __enter__(self) -> "_malloc_kept":
        if self.libc:
            with _MALLOC["lock"]:
                if _MALLOC["depth"] == 0:
                    self.libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                    self.libc.mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
                if self.share_arena and not _MALLOC["shared"]:  # the workers this call makes: main arena
                    self.libc.mallopt(_M_ARENA_MAX, 1)
                    _MALLOC["shared"] = True
                _MALLOC["depth"] += 1
        return self

    def __exit__(self, *exc) -> None:
        if self.libc:
            with _MALLOC["lock"]:
                _MALLOC["depth"] -= 1
                if _MALLOC["depth"] == 0:
                    self.libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
                    if _MALLOC["shared"]:  # (glibc latches the limit its first new thread saw)
                        self.libc.mallopt(_M_ARENA_MAX, _arena_limit())
                        _MALLOC["shared"] = False
                    if _free_heap_bytes(self.libc) > KEEP_FREE_BYTES:
                        self.libc.malloc_trim(0)


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
        Approximate pixels per tile (bands of whole rows on images up to
        ``chunk_pixels / 16`` wide, else tiles four times wider than high).
        The result does not depend on it beyond float rounding.
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
    however it ends) and streamed in bands of rows (at most
    :data:`BAND_BYTES` each, read ahead and written behind on an I/O
    thread), so the engine's own memory is a few bands instead of
    ``128 x H x W`` bytes. The result is the same, bit for bit. During the
    call glibc is asked to keep freed memory for reuse (:data:`MALLOPT`).

    Kernels: on CPU, oneDNN's matrix products and fused depthwise
    convolutions where torch has them (:data:`ONEDNN`), else plain torch;
    the same numbers to float rounding.

    Returns
    -------
    Tensor
        ``N x 1 x H x W`` float32 in (0, 1), equal to ``net(x)`` up to float
        rounding when ``border == 0``.
    """
    if x.ndim != 4 or x.shape[1] != 2:
        raise InputError(f"expected sources of shape N x 2 x H x W, got {tuple(x.shape)}; stack two images")
    if x.numel() == 0:
        raise InputError(f"empty sources of shape {tuple(x.shape)}; pass at least one pair of at least 1 x 1 pixels")
    if not x.is_floating_point():
        raise InputError(f"sources must be float in [0, 1], got {x.dtype} (0-255 values? divide by 255)")
    if chunk_pixels < 1:
        raise ParameterError(f"chunk_pixels must be a positive integer, got {chunk_pixels}")
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise ParameterError(f"border must be a non-negative integer, got {border!r}")
    k, n = progress
    if not 0 <= k < n:
        raise ParameterError(f"progress must be (k, n) with 0 <= k < n, got {progress!r}")
    threads = torch.get_num_threads()
    run = _Runner(threads if x.device.type == "cpu" else 1, x.device)
    if run.workers > 1:  # the calling thread too: no OpenMP fork/join for its small ops
        torch.set_num_threads(1)
    try:
        with torch.inference_mode(), _malloc_kept(x.device.type == "cpu", share_arena=run.workers > 1):
            p = prepare(net, x.device)
            x = x.float()
            plan = _plan(p, x.shape[2], x.shape[3], chunk_pixels, run.workers, border)
            steps = plan.steps() * x.shape[0]
            run.done, run.total = k * steps, n * steps
            return torch.stack([_infer_one(p, x[i], plan, run, border) for i in range(x.shape[0])])[:, None]
    finally:
        run.close()
        torch.set_num_threads(threads)
