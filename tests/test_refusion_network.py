"""ReFusion network: published size, the fast engine equals the plain forward, strips are exact."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit_refusion.engine import infer  # noqa: E402
from fusekit_refusion.network import (PARAMETER_COUNT, LayerNorm2d, ReFusionNet,  # noqa: E402
                                      TransformerBlock)

from .conftest import load_refusion_benchmark, require_data  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def bench():
    return load_refusion_benchmark()


@pytest.fixture(scope="module")
def seeded(bench):
    """(plain reference net, our net) with the same deterministic weights."""
    from fusekit_refusion.checkpoint import load_into

    plain = bench.seeded_plain(0)
    ours = ReFusionNet().eval()
    load_into(ours, plain.state_dict(), source="seeded")
    return plain, ours


def real_pair(h=72, w=96):
    """A real MSRS infrared/visible crop pair as an ``1 x 2 x h x w`` tensor."""
    data = require_data("ivif/msrs/test")
    from fusekit.color import luminance
    from fusekit.io import read_image

    ir = read_image(data / "ir/00537D.png")
    vi = read_image(data / "vi/00537D.png")
    ir = luminance(ir) if ir.ndim == 3 else ir
    vi = luminance(vi)
    crop = np.stack([ir[200:200 + h, 300:300 + w], vi[200:200 + h, 300:300 + w]])
    return torch.from_numpy(crop[None].astype(np.float32))


def test_parameter_count_is_the_published_one():
    net = ReFusionNet()
    assert sum(p.numel() for p in net.parameters()) == PARAMETER_COUNT == 59_856
    assert len(net.state_dict()) == 86
    assert not any(m.bias is not None for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_blocks_reusable_with_other_widths():
    blk = TransformerBlock(32, 8, 2)
    y = blk(torch.rand(2, 32, 9, 11))
    assert y.shape == (2, 32, 9, 11)
    y.sum().backward()  # differentiable, for the trainer
    assert blk.attn.temperature.grad is not None


def test_layernorm2d_equals_layernorm_over_permuted_channels():
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.copy_(torch.linspace(0.5, 2, 6))
        ln.bias.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, rtol=0, atol=1e-5)


def test_our_forward_equals_plain_reference(seeded):
    plain, ours = seeded
    x = real_pair(40, 52)
    with torch.no_grad():
        ref = plain(x)
        out = ours(x)
    assert out.shape == (1, 1, 40, 52)
    assert float(ref.std()) > 1e-3  # the seeded weights give a non-trivial image
    assert float((out - ref).abs().max()) <= 1e-5


@pytest.mark.parametrize("size, chunk", [((72, 96), 10**7), ((72, 96), 96 * 18), ((72, 96), 96 * 5),
                                         ((14, 20), 1)], ids=["whole", "4-strips", "15-strips", "1-row"])
def test_engine_equals_forward_at_any_strip_size(seeded, size, chunk):
    """Strips with halo + attention sums accumulated over strips == whole-image forward."""
    _, ours = seeded
    x = real_pair(*size)
    with torch.no_grad():
        ref = ours(x)
    out = infer(ours, x, chunk_pixels=chunk)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= 1e-5


@pytest.mark.parametrize("cache", [True, False], ids=["v-cached", "v-recomputed"])
@pytest.mark.parametrize("border", [0, 13])
def test_engine_v_cache_and_recompute_paths_agree(seeded, monkeypatch, cache, border):
    """Multi-tile images: keeping the attention values between passes or recomputing them gives one result."""
    from fusekit_refusion import engine

    _, ours = seeded
    x = real_pair(72, 96)
    monkeypatch.setattr(engine, "V_CACHE_BYTES", engine.V_CACHE_BYTES if cache else 0)
    whole = infer(ours, x, chunk_pixels=10**7, border=border)
    tiled = infer(ours, x, chunk_pixels=24 * 24, border=border)
    assert float((tiled - whole).abs().max()) <= 1e-5


def test_fast_layer_norm_equals_torch():
    from fusekit_refusion.engine import _ln
    from fusekit_refusion.network import LN_EPS

    x = torch.randn(500, 32) * 3 + torch.randn(500, 1) * 5
    ref = torch.nn.functional.layer_norm(x.double(), (32,), None, None, LN_EPS)
    assert float((_ln(x).double() - ref).abs().max()) <= 1e-5


def test_engine_batch_odd_sizes_and_range(seeded):
    _, ours = seeded
    x = torch.rand(2, 2, 13, 7)
    with torch.no_grad():
        ref = ours(x)
    out = infer(ours, x, chunk_pixels=20, border=0)
    assert out.shape == (2, 1, 13, 7)
    assert float((out - ref).abs().max()) <= 1e-5
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match="N x 2 x H x W"):
        ReFusionNet()(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="N x 2 x H x W"):
        infer(ReFusionNet(), torch.rand(2, 8, 8))


def test_loading_the_plugin_does_not_import_torch():
    code = ("import sys; from fusekit.plugins import build_host; "
            "h = build_host(entry_points=False); assert 'refusion' in h.fusers.names(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(seeded):
    from fusekit_refusion.fuser import ReFusion

    _, ours = seeded
    x = real_pair(64, 80)
    cpu = infer(ours, x)
    gpu_net = ReFusionNet().cuda().eval()
    gpu_net.load_state_dict(ours.state_dict())
    gpu = infer(gpu_net, x.cuda(), chunk_pixels=80 * 16).cpu()
    assert float((gpu - cpu).abs().max()) <= 1e-4
    fuser = ReFusion(device="cuda", weights=None)
    fuser._network = gpu_net
    fused = fuser.fuse([x[0, 0].numpy(), x[0, 1].numpy()])
    assert fused.shape == (64, 80) and fused.dtype == np.float32


@pytest.mark.parametrize("border", [0, 13])
def test_onednn_and_plain_torch_kernels_agree(seeded, monkeypatch, border):
    """oneDNN's fused kernels (where torch has them) and the plain torch fallback: same numbers to rounding."""
    from fusekit_refusion import engine

    _, ours = seeded
    x = real_pair(72, 96)
    monkeypatch.setattr(engine, "ONEDNN", True)
    fast = infer(ours, x, chunk_pixels=24 * 24, border=border)
    monkeypatch.setattr(engine, "ONEDNN", False)
    assert not engine.prepare(ours).mk
    plain = infer(ours, x, chunk_pixels=24 * 24, border=border)
    assert float((fast - plain).abs().max()) <= 1e-5
    if border == 0:
        with torch.no_grad():
            assert float((plain - ours(x)).abs().max()) <= 1e-5


@pytest.mark.parametrize("chunk", [96 * 5, 96 * 18, 40 * 10, 7 * 7], ids=["bands", "bands-tall", "tiles", "small-tiles"])
def test_row_bands_and_tiles_give_the_forward(seeded, chunk):
    """Images up to chunk/16 wide run in bands of whole rows (views), wider ones in tiles (copies): both exact."""
    from fusekit_refusion.engine import _grid

    _, ours = seeded
    x = real_pair(72, 96)
    grid = _grid(72, 96, chunk)
    assert (len(grid.cols) == 1) == (96 * 16 <= chunk)
    with torch.no_grad():
        ref = ours(x)
    assert float((infer(ours, x, chunk_pixels=chunk) - ref).abs().max()) <= 1e-5


def test_ring_strips_are_narrowed_but_exact():
    """Before each stage a ring strip keeps only the pixels its last attention sums still need."""
    from fusekit_refusion.engine import RECEPTIVE_RADIUS, _layout, _narrowed

    layout = _layout(100, 120, 13)
    sides = [e[4] for e in layout]
    assert sides == [None, "top", "bottom", "left", "right"]
    widths = [_narrowed(layout[1], k, 5)[0] for k in range(5)]
    assert widths == [22, 20, 18, 16, 14] and widths[-1] == RECEPTIVE_RADIUS + 1
    h, w, valid, (dy, dx) = _narrowed(layout[2], 0, 5)  # bottom strip: its last rows kept, box follows
    assert (h, w, dy, dx) == (22, 120, 4, 0) and valid == (22 - RECEPTIVE_RADIUS, 22, 0, 120)
    h, w, valid, (dy, dx) = _narrowed(layout[4], 4, 5)  # right strip at the last stage
    assert (h, w, dx) == (100, 14, 12) and valid == (13, 87, 1, 14)
    assert _narrowed(layout[0], 2, 5)[:3] == layout[0][:3]


class RecordingLibc:
    """Stands in for glibc: records ``mallopt`` and ``malloc_trim`` calls in ``calls``; without
    ``free_bytes`` it has no ``mallinfo2`` (glibc before 2.33)."""

    def __init__(self, free_bytes: int | None = None) -> None:
        self.calls: list = []
        if free_bytes is not None:
            self.mallinfo2 = lambda: types.SimpleNamespace(fordblks=free_bytes)

    def mallopt(self, what, value):
        self.calls.append((what, value))

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))


def test_allocator_settings_are_restored(seeded, monkeypatch):
    """glibc's thresholds are raised only during a call (nested calls count), the pool is emptied."""
    from fusekit_refusion import engine

    _, ours = seeded
    libc = RecordingLibc()
    calls = libc.calls
    monkeypatch.setattr(engine, "_libc", lambda: libc)
    torch.set_num_threads(2)  # worker threads: they share the main arena during the call
    infer(ours, real_pair(24, 32))
    assert calls[:3] == [(engine._M_MMAP_THRESHOLD, 32 << 20), (engine._M_TRIM_THRESHOLD, engine.TRIM_BYTES),
                         (engine._M_ARENA_MAX, 1)]
    # the arena limit goes back to glibc's default; mallopt(M_ARENA_MAX, 0) would be ignored by glibc
    assert calls[-3:] == [(engine._M_TRIM_THRESHOLD, 64 << 20), (engine._M_ARENA_MAX, engine._arena_limit()),
                          ("trim", 0)]
    assert engine._arena_limit() > 0
    assert engine._MALLOC["depth"] == 0 and not engine._MALLOC["shared"]
    calls.clear()
    torch.set_num_threads(1)  # no worker thread: the arena limit is left alone
    infer(ours, real_pair(24, 32))
    assert calls == [(engine._M_MMAP_THRESHOLD, 32 << 20), (engine._M_TRIM_THRESHOLD, engine.TRIM_BYTES),
                     (engine._M_TRIM_THRESHOLD, 64 << 20), ("trim", 0)]
    calls.clear()
    monkeypatch.setattr(engine, "MALLOPT", False)
    infer(ours, real_pair(24, 32))
    assert calls == []


@pytest.mark.parametrize("free_mib, trimmed", [(100, False), (2048, True)])
def test_a_small_calls_freed_memory_is_kept_for_the_next_call(seeded, monkeypatch, free_mib, trimmed):
    """Up to KEEP_FREE_BYTES of free heap stay after a call (the next one would fault them in again)."""
    from fusekit_refusion import engine

    _, ours = seeded
    libc = RecordingLibc(free_bytes=free_mib << 20)
    calls = libc.calls
    monkeypatch.setattr(engine, "_libc", lambda: libc)
    torch.set_num_threads(1)
    infer(ours, real_pair(24, 32))
    assert (("trim", 0) in calls) is trimmed
    assert engine.KEEP_FREE_BYTES == 512 << 20


def test_onednn_primitive_cache_is_sized_unless_the_user_chose(tmp_path):
    """Unset, oneDNN recompiled ~290 convolution kernels on every warm call; the engine sets its size."""
    code = "import os, fusekit_refusion.engine; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "1024"
    env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "64"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "64"


@pytest.mark.parametrize("threads", [1, 2])
def test_thin_bands_and_recomputed_values_stay_exact(seeded, monkeypatch, threads):
    """Bands of two rows, v recomputed (halo 2), results stored while the next group runs: still the forward."""
    from fusekit_refusion import engine

    _, ours = seeded
    x = real_pair(24, 32)
    monkeypatch.setattr(engine, "V_CACHE_BYTES", 0)
    torch.set_num_threads(threads)
    assert {r1 - r0 for r0, r1 in engine._grid(24, 32, 16).rows} == {2}
    out = infer(ours, x, chunk_pixels=16)
    with torch.no_grad():
        assert float((out - ours(x)).abs().max()) <= 1e-5
