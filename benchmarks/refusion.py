"""Benchmark ReFusion inference: fusekit's engine against a plain implementation.

``PlainReFusion`` below is a straightforward implementation of the published
network, written the way such research code usually is (and the way the
authors' script is): every convolution wrapped in a module that also
re-exposes its weight (hence their 140-key checkpoints), layer norm by
permuting to ``N x HW x C`` and back, q/k/v rearranged into per-head copies
and L2-normalised, the attention applied with ``@`` and rearranged back,
run under ``torch.no_grad``. It lives here, not in the package, as the
baseline to beat and as an independent check of the architecture: its
``state_dict`` is in the authors' layout and loads through fusekit's
checkpoint mapping.

Usage::

    python benchmarks/refusion.py                 # speed 640x480 + memory 4096x3072, writes BENCHMARKS.md
    python benchmarks/refusion.py --skip-memory   # speed only
    python benchmarks/refusion.py --no-write      # print only
    python benchmarks/refusion.py --processes --baseline 73d2732   # whole processes vs an older engine
    python benchmarks/refusion.py --processes --baseline 9034033 --no-small --large 2048x1536 4096x3072 \
        --section refusion-large                                  # large images: peak memory and time

``--processes`` (section ``refusion-processes``): whole processes, each
fusing one pair through ``fusekit.fuse(method="refusion", task="ivif")`` with
the shipped weights (mirrored border), alternating the working tree's engine
and ``plugins/fusekit_refusion/engine.py`` as of ``--baseline`` (loaded from
git in place of the current one), median of ``--repeat``, at 1 and 2 torch
threads; large sizes (``--large``) once each with peak RSS. Reports wall time
of the whole process, the fuse call's wall and CPU time, and the largest
output difference in grey levels.

Speed: both networks get the same seeded weights (saved in the authors'
layout and loaded back through ``--weights``), the same real 640x480 MSRS
pair, the same thread count, in the same process, alternating runs; the
table reports the best of ``--repeat`` runs of each and the max abs
difference of the outputs. Memory: a fresh subprocess fuses a 4096x3072
pair (a real LLVIP pair resized) through ``fusekit.fuse(method="refusion")``
and reports its peak resident set size (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusekit.experiments import cpu_description, write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MARK = "refusion"


# ---------------------------------------------------------------------------
# The plain reference implementation (baseline)
# ---------------------------------------------------------------------------
class WrappedConv(nn.Module):
    """A conv wrapped the authors' way: ``self.conv`` plus the same weight as ``self.weight``."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(*args, **kwargs)
        self.weight = self.conv.weight

    def forward(self, x):
        return self.conv(x)


def to_3d(x):
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def to_4d(x, h, w):
    b, _, c = x.shape
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


class BiasLayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias


class ChannelNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.body = BiasLayerNorm(dim)

    def forward(self, x):
        h, w = x.shape[-2:]
        return to_4d(self.body(to_3d(x)), h, w)


def heads_split(t, heads):  # 'b (head c) h w -> b head c (h w)'
    b, c, h, w = t.shape
    return t.reshape(b, heads, c // heads, h * w).clone()


def heads_merge(t, h, w):  # 'b head c (h w) -> b (head c) h w'
    b, nh, c, _ = t.shape
    return t.reshape(b, nh * c, h, w).clone()


class PlainFFN(nn.Module):
    def __init__(self, dim, factor):
        super().__init__()
        hidden = int(dim * factor)
        self.project_in = WrappedConv(dim, hidden * 2, kernel_size=1, bias=False)
        self.dwconv = WrappedConv(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = WrappedConv(hidden, dim, kernel_size=1, bias=False)

    def forward(self, x):
        x = self.project_in(x)
        x1, x2 = self.dwconv(x).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class PlainAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = WrappedConv(dim, dim * 3, kernel_size=1, bias=False)
        self.qkv_dwconv = WrappedConv(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=False)
        self.project_out = WrappedConv(dim, dim, kernel_size=1, bias=False)

    def forward(self, x):
        _, _, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (heads_split(t, self.heads) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(heads_merge(out, h, w))


class PlainBlock(nn.Module):
    def __init__(self, dim, heads, factor):
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.attn = PlainAttention(dim, heads)
        self.norm2 = ChannelNorm(dim)
        self.ffn = PlainFFN(dim, factor)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PlainFM(nn.Module):
    def __init__(self, dim=16, heads=8):
        super().__init__()
        self.heads = heads
        self.temperature1 = nn.Parameter(torch.ones(heads, 1, 1))
        self.temperature2 = nn.Parameter(torch.ones(heads, 1, 1))

        def pw(i, o):
            return WrappedConv(i, o, kernel_size=1, bias=False)

        def dw(c):
            return WrappedConv(c, c, kernel_size=3, padding=1, groups=c, bias=False)

        self.qkv1, self.qkv1_dwconv = pw(dim, dim * 3), dw(dim * 3)
        self.qkv2, self.qkv2_dwconv = pw(dim, dim * 3), dw(dim * 3)
        self.project_mid1, self.project_mid2 = pw(dim, dim), pw(dim, dim)
        self.project_E, self.project_E_d = pw(dim * 2, dim * 8), dw(dim * 8)
        self.project_E1, self.project_E1_d = pw(dim, dim * 4), dw(dim * 4)
        self.project_E2, self.project_E2_d = pw(dim, dim * 4), dw(dim * 4)
        self.project_out1, self.project_out2 = pw(dim * 4, dim * 2), pw(dim * 4, dim * 2)

    def forward(self, x1, x2):
        _, _, h, w = x1.shape
        q1, k1, v1 = self.qkv1_dwconv(self.qkv1(x1)).chunk(3, dim=1)
        q2, k2, v2 = self.qkv2_dwconv(self.qkv2(x2)).chunk(3, dim=1)
        q1, k1, v1, q2, k2, v2 = (heads_split(t, self.heads) for t in (q1, k1, v1, q2, k2, v2))
        q1, k1, q2, k2 = (F.normalize(t, dim=-1) for t in (q1, k1, q2, k2))
        attn1 = (q2 @ k1.transpose(-2, -1)) * self.temperature1
        attn2 = (q1 @ k2.transpose(-2, -1)) * self.temperature2
        out1 = heads_merge(attn1.softmax(dim=-1) @ v1, h, w)
        out2 = heads_merge(attn2.softmax(dim=-1) @ v2, h, w)
        x1 = x1 + self.project_mid1(out1)
        x2 = x2 + self.project_mid2(out2)
        out = torch.cat([x1, x2], 1)
        g1, g2 = self.project_E_d(self.project_E(out)).chunk(2, dim=1)
        x1 = F.gelu(g1) * self.project_E1_d(self.project_E1(x1))
        x2 = F.gelu(g2) * self.project_E2_d(self.project_E2(x2))
        return out + self.project_out1(x1) + self.project_out2(x2)


class PlainReFusion(nn.Module):
    """The published fusion network, implemented plainly (the baseline)."""

    def __init__(self, dim=16, blocks=2, heads=8, factor=2):
        super().__init__()
        self.project_in_1 = WrappedConv(1, dim, kernel_size=3, padding=1, bias=False)
        self.project_in_2 = WrappedConv(1, dim, kernel_size=3, padding=1, bias=False)
        self.encoder1 = nn.ModuleList([PlainBlock(dim, heads, factor) for _ in range(blocks)])
        self.encoder2 = nn.ModuleList([PlainBlock(dim, heads, factor) for _ in range(blocks)])
        self.FM = PlainFM(dim, heads)
        self.decoder = nn.ModuleList([PlainBlock(dim * 2, heads, factor) for _ in range(blocks)])
        self.project_out_0 = WrappedConv(dim * 2, dim, kernel_size=3, padding=1, bias=False)
        self.act = nn.LeakyReLU()
        self.project_out_1 = WrappedConv(dim, 1, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        x1 = self.project_in_1(x[:, :1])
        x2 = self.project_in_2(x[:, 1:])
        for layer in self.encoder1:
            x1 = layer(x1)
        for layer in self.encoder2:
            x2 = layer(x2)
        out = self.FM(x1, x2)
        for layer in self.decoder:
            out = layer(out)
        out = self.project_out_1(self.act(self.project_out_0(out)))
        return torch.sigmoid(out)


def seed_weights(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill ``net`` (a ReFusion-layout network) with deterministic, non-trivial weights; returns it in eval mode.

    Norm weights and temperatures are drawn around 1, every other tensor is
    Gaussian scaled by its fan-in, so activations neither vanish nor explode.
    For tests and benchmarks only (never shipped).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "norm" in name or "temperature" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.7 / max(1, p[0].numel()) ** 0.5))
    return net.eval()


def seeded_plain(seed: int = 0) -> PlainReFusion:
    """A PlainReFusion with the deterministic weights of :func:`seed_weights`."""
    return seed_weights(PlainReFusion(), seed)


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------
def msrs_pair() -> tuple[np.ndarray, np.ndarray, str]:
    from fusekit.color import luminance
    from fusekit.io import read_image

    ir = DATA / "ivif" / "msrs" / "test" / "ir" / "00537D.png"
    vi = DATA / "ivif" / "msrs" / "test" / "vi" / "00537D.png"
    a, b = read_image(ir), read_image(vi)
    a = luminance(a) if a.ndim == 3 else a
    b = luminance(b) if b.ndim == 3 else b
    return a, b, "ivif/msrs/test 00537D (640x480)"


def measure_speed(weights: Path, repeat: int, threads: int) -> dict:
    from fusekit_refusion.fuser import ReFusion

    torch.set_num_threads(threads)
    plain = seeded_plain()
    a, b, label = msrs_pair()
    x = torch.from_numpy(np.stack([a, b])[None].astype(np.float32))
    fuser = ReFusion(task="ivif", weights=str(weights), stretch=False)
    fuser.prepare()
    ours_t, plain_t = [], []
    with torch.no_grad():
        ref = plain(x)  # warm-up
    ours = fuser.fuse([a, b])
    for _ in range(repeat):
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = plain(x)
        plain_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = fuser.fuse([a, b])
        ours_t.append(time.perf_counter() - t0)
    diff = float(np.abs(ours - ref[0, 0].numpy()).max())
    return {"label": label, "plain": min(plain_t), "ours": min(ours_t), "plain_all": plain_t,
            "ours_all": ours_t, "diff": diff, "threads": torch.get_num_threads()}


MEMORY_SCRIPT = r"""
import resource, sys, time
import numpy as np
from skimage.transform import resize
import fusekit
from fusekit.color import luminance
from fusekit.io import read_image
ir, vi, weights = sys.argv[1:4]
a = luminance(read_image(ir)) if read_image(ir).ndim == 3 else read_image(ir)
b = luminance(read_image(vi))
a = resize(a, (3072, 4096), order=1).astype(np.float32)
b = resize(b, (3072, 4096), order=1).astype(np.float32)
import gc; gc.collect()
with open("/proc/self/statm") as fh:  # current resident set, KiB
    before = int(fh.read().split()[1]) * (resource.getpagesize() // 1024)
t0 = time.perf_counter()
out = fusekit.fuse([a, b], method="refusion", task="ivif", weights=weights)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"RESULT shape={out.shape} seconds={dt:.1f} peak_kib={peak} before_kib={before} "
      f"finite={bool(np.isfinite(out).all())}")
"""


def measure_memory(weights: Path) -> dict:
    ir = DATA / "ivif" / "llvip" / "test" / "ir"
    name = sorted(p.name for p in ir.iterdir())[0]
    vi = DATA / "ivif" / "llvip" / "test" / "vi" / name
    cmd = [sys.executable, "-c", MEMORY_SCRIPT, str(ir / name), str(vi), str(weights)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"RESULT shape=(\S+ \S+) seconds=(\S+) peak_kib=(\d+) before_kib=(\d+) finite=(\w+)",
                      proc.stdout)
    if proc.returncode or not match:
        raise RuntimeError(f"memory run failed: {proc.stderr[-2000:]}")
    return {"pair": f"ivif/llvip/test {name} resized to 4096x3072", "seconds": float(match[2]),
            "peak_gib": int(match[3]) / 2**20, "before_gib": int(match[4]) / 2**20, "finite": match[5]}


PROCESS_SCRIPT = r"""
import importlib.util, resource, sys, time
t_start = time.perf_counter()
import numpy as np, torch
engine_file, w, h, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
import fusekit_refusion
if engine_file != "-":  # the baseline engine replaces the current one before first use
    spec = importlib.util.spec_from_file_location("fusekit_refusion.engine", engine_file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fusekit_refusion.engine"] = mod
    spec.loader.exec_module(mod)
    import inspect
    if "progress" not in inspect.signature(mod.infer).parameters:  # engines before per-tile progress
        _infer = mod.infer
        mod.infer = lambda *a, progress=None, **k: _infer(*a, **k)
import fusekit
from fusekit.color import luminance
from fusekit.io import read_image
ir, vi = sys.argv[6], sys.argv[7]
a = read_image(ir); a = luminance(a) if a.ndim == 3 else a
b = read_image(vi); b = luminance(b) if b.ndim == 3 else b
if a.shape != (h, w):
    from skimage.transform import resize
    a = resize(a, (h, w), order=1).astype(np.float32); b = resize(b, (h, w), order=1).astype(np.float32)
import gc; gc.collect()
def status(key):
    with open("/proc/self/status") as fh:
        return int(fh.read().split(key + ":")[1].split()[0])
try:  # reset the peak-RSS mark, so it measures the fuse, not the input resizing before it
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status("VmRSS")
except OSError:
    before = -1
c0, t0 = time.process_time(), time.perf_counter()
y = fusekit.fuse([a, b], method="refusion", task="ivif")
dt, dc = time.perf_counter() - t0, time.process_time() - c0
peak = status("VmHWM") if before >= 0 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(out, y)
print(f"RESULT fuse={dt:.3f} cpu={dc:.3f} peak_kib={peak} "
      f"inproc={time.perf_counter() - t_start:.3f} before_kib={before}")
"""


def _baseline_engine(rev: str, folder: Path) -> Path:
    path = folder / f"engine_{rev}.py"
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:plugins/fusekit_refusion/engine.py"],
                          capture_output=True, text=True, check=True).stdout
    path.write_text(text)
    return path


def _one_process(engine: str, w: int, h: int, threads: int, pair: tuple, out: Path) -> dict:
    """One fresh process fusing one pair: timings, the fuse call's peak RSS and the whole process's (``wait4``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", PROCESS_SCRIPT, engine, str(w), str(h), str(threads), str(out),
                                 *map(str, pair)], stdout=so, stderr=se, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here: ru_maxrss of this child alone
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    match = re.search(r"RESULT fuse=(\S+) cpu=(\S+) peak_kib=(\d+) inproc=\S+ before_kib=(-?\d+)", stdout)
    if proc.returncode or not match:
        raise RuntimeError(f"process run failed: {stderr[-2000:]}")
    return {"wall": wall, "fuse": float(match[1]), "cpu": float(match[2]), "peak_mib": int(match[3]) / 1024,
            "before_mib": int(match[4]) / 1024, "process_peak_mib": usage.ru_maxrss / 1024}


def measure_processes(rev: str, repeat: int, large: list, small: bool = True, large_repeat: int = 1,
                      baseline_upto: int | None = None) -> dict:
    """Whole-process timings, baseline engine (``rev``) and current engine alternating.

    ``baseline_upto``: run the baseline only on sizes of at most this many
    pixels (larger sizes: the current engine alone, e.g. 8192 x 6144, where
    the baseline needs about 8 GiB).
    """
    ir = DATA / "ivif" / "msrs" / "test" / "ir" / "00537D.png"
    pair = (ir, ir.parent.parent / "vi" / ir.name)
    llvip = DATA / "ivif" / "llvip" / "test" / "ir"
    name = sorted(q.name for q in llvip.iterdir())[0]
    big_pair = (llvip / name, llvip.parent / "vi" / name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = str(_baseline_engine(rev, tmp))
        cases = ([(640, 480, t, repeat, pair) for t in (1, 2)] if small else []) + [
            (w, h, 2, large_repeat, big_pair) for w, h in large]
        for w, h, threads, n, src in cases:
            engines = (("baseline", base), ("current", "-"))
            if baseline_upto is not None and w * h > baseline_upto:
                engines = engines[1:]
            runs = {which: [] for which, _ in engines}
            for _ in range(n):
                for which, engine in engines:
                    runs[which].append(_one_process(engine, w, h, threads, src, tmp / f"{which}.npy"))
            row = {"size": f"{w}x{h}", "threads": threads, "n": n, "diff": float("nan"), "mean_diff": float("nan")}
            if "baseline" in runs:
                delta = np.abs(np.load(tmp / "baseline.npy").astype(np.float64) - np.load(tmp / "current.npy")) * 255
                row["diff"], row["mean_diff"] = float(delta.max()), float(delta.mean())
                del delta
            for which in ("baseline", "current"):
                rs = runs.get(which, [])
                for key in ("wall", "fuse", "cpu", "peak_mib", "before_mib", "process_peak_mib"):
                    row[f"{which}_{key}"] = float(np.median([r[key] for r in rs])) if rs else float("nan")
                row[f"{which}_all"] = [r["fuse"] for r in rs]
                row[f"{which}_cpus"] = [r["cpu"] for r in rs]
                row[f"{which}_peaks"] = [r["peak_mib"] for r in rs]
            rows.append(row)
            print(row, flush=True)
    return {"rev": rev, "rows": rows}


MSRS_SCRIPT = r"""
import importlib.util, sys
import numpy as np, torch
engine_file, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
import fusekit_refusion
if engine_file != "-":
    spec = importlib.util.spec_from_file_location("fusekit_refusion.engine", engine_file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fusekit_refusion.engine"] = mod
    spec.loader.exec_module(mod)
    import inspect
    if "progress" not in inspect.signature(mod.infer).parameters:
        _infer = mod.infer
        mod.infer = lambda *a, progress=None, **k: _infer(*a, **k)
import fusekit
from pathlib import Path
from fusekit.io import read_image
d = Path(sys.argv[3])
np.savez(out, **{p.name: fusekit.fuse([read_image(p), read_image(d / "vi" / p.name)], method="refusion", task="ivif")
                 for p in sorted((d / "ir").iterdir())})
"""


def measure_msrs(revs: list[str]) -> list[dict]:
    """Largest and mean difference (grey levels, 0-255) of the fused MSRS test split, each ``rev``'s engine
    against the current one (shipped ivif weights, mirrored border, stretch, colour: what users get)."""
    d = DATA / "ivif" / "msrs" / "test"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {}
        for rev in ["-"] + list(revs):
            engine = "-" if rev == "-" else str(_baseline_engine(rev, tmp))
            files[rev] = tmp / f"msrs_{rev}.npz"
            subprocess.run([sys.executable, "-c", MSRS_SCRIPT, engine, str(files[rev]), str(d)], check=True)
        cur = np.load(files["-"])
        for rev in revs:
            old = np.load(files[rev])
            deltas = [np.abs(old[k].astype(np.float64) - cur[k]) * 255 for k in cur.files]
            out.append({"rev": rev, "pairs": len(deltas), "max": float(max(x.max() for x in deltas)),
                        "mean": float(np.mean([x.mean() for x in deltas]))})
            print(out[-1], flush=True)
    return out


def network_flops(height: int, width: int) -> float:
    """FLOPs (2 per multiply-add) of :class:`ReFusionNet` (published configuration) on one ``height x width`` pair.

    Every convolution (``2 C_in/groups C_out k^2`` a pixel, the attention
    projections included) and the attention's own products (``q k^T`` and
    ``softmax(.) v``, ``2 C (C/heads)`` a pixel each); no layer norms or
    pointwise functions, no halos, no mirrored border: 120 kFLOP a pixel,
    36.6 GFLOP for 640 x 480 (the issue's ~37).
    """
    from fusekit_refusion.network import ReFusionNet

    net = ReFusionNet()
    per_pixel = 0.0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            per_pixel += 2 * m.in_channels // m.groups * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
    c, heads = net.dim, net.heads
    attentions = [c] * (len(net.encoder1) + len(net.encoder2) + 2) + [2 * c] * len(net.decoder)
    per_pixel += sum(2 * 2 * a * (a // heads) for a in attentions)
    return per_pixel * height * width


def _load_text(load: str, loads: tuple) -> str:
    return f"{load}; load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end"


def _msrs_text(msrs: list) -> str:
    if not msrs:
        return ""
    return ("Output on the MSRS test split (" + str(msrs[0]["pairs"]) + " pairs, shipped ivif weights, "
            "`fusekit.fuse`, grey levels 0-255), current engine against: " + "; ".join(
                f"`{m['rev']}` max {m['max']:.1e}, mean {m['mean']:.1e}" for m in msrs) + ".")


def render_processes(res: dict, load: str) -> str:
    lines = ["<!-- begin refusion-processes -->",
             "## ReFusion inference, whole processes, against the engine before issue 24 (`benchmarks/refusion.py --processes`)",
             "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores ({cpu_description()}), "
             f"torch {torch.__version__}. Command: `{res.get('command', 'python benchmarks/refusion.py --processes')}`. "
             f"Baseline: `plugins/fusekit_refusion/engine.py` at `{res['rev']}`, loaded in place of the current "
             "engine; everything else identical. Each run is a fresh process fusing one pair through "
             "`fusekit.fuse(method='refusion', task='ivif')` (shipped weights, mirrored border); baseline and "
             f"current alternate. Load during the run: {_load_text(load, res.get('loads', (float('nan'),) * 2))}. "
             "Only the ratios of interleaved runs (CPU time above all) count: absolute times vary with the "
             "load and with the host the machine runs on.",
             "",
             "| pair | torch threads | runs | process wall, baseline / current (s) | fuse call wall (s) | "
             "fuse call CPU (s) | CPU ratio | peak RSS, fuse call (MiB) | max diff (grey levels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(
            f"| {r['size']} | {r['threads']} | {r['n']} | {r['baseline_wall']:.2f} / {r['current_wall']:.2f} | "
            f"{r['baseline_fuse']:.2f} / {r['current_fuse']:.2f} | {r['baseline_cpu']:.2f} / {r['current_cpu']:.2f} | "
            f"**{r['baseline_cpu'] / r['current_cpu']:.2f}x** | {r['baseline_peak_mib']:.0f} / "
            f"{r['current_peak_mib']:.0f} | {r['diff']:.1e} |")
    lines += ["", "Medians. Fuse call wall / CPU times of every run (s): " + "; ".join(
        f"{r['size']} {r['threads']} thr baseline "
        + ", ".join(f"{t:.2f}/{c:.2f}" for t, c in zip(r["baseline_all"], r["baseline_cpus"]))
        + " / current " + ", ".join(f"{t:.2f}/{c:.2f}" for t, c in zip(r["current_all"], r["current_cpus"]))
        for r in res["rows"]) + ".", ""]
    msrs = _msrs_text(res.get("msrs", []))
    if msrs:
        lines += [msrs, ""]
    for note in res.get("notes", []):
        lines += [note, ""]
    lines.append("<!-- end refusion-processes -->")
    return "\n".join(lines)


def render_large(res: dict, load: str) -> str:
    """Section ``refusion-large``: large images, peak memory and time against ``--baseline``'s engine."""
    from fusekit_refusion.engine import STREAM_BYTES

    def num(x, fmt):
        return "not run" if x != x else format(x, fmt)

    lines = ["<!-- begin refusion-large -->",
             "## ReFusion on large images: peak memory and time, whole processes "
             "(`benchmarks/refusion.py --processes --large ... --no-small --section refusion-large`)",
             "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
             f"torch {torch.__version__}, 2 torch threads. Command: `{res.get('command', '')}`. Baseline: "
             f"`plugins/fusekit_refusion/engine.py` at `{res['rev']}` (the whole `H x W x 32` float32 feature "
             "buffer in memory), loaded in place of the current engine, which keeps feature buffers over "
             f"{STREAM_BYTES >> 20} MiB (about 4 MP) in an unnamed temporary file and streams them in bands of "
             "rows (the attention values `v` too), reads and writes on their own thread. Each run is a fresh "
             "process fusing a real LLVIP pair resized to the size through "
             "`fusekit.fuse(method='refusion', task='ivif')` (shipped weights, mirrored border); baseline and "
             "current alternate. Peak RSS: the fuse call's resident high-water mark (reset just before it; "
             "the interpreter, torch, the inputs and the output included; resident before the call in "
             "brackets), and the whole process's (`ru_maxrss` from `wait4`: start-up, reading and resizing "
             f"the inputs too). Load during the run: {_load_text(load, res.get('loads', (float('nan'),) * 2))}. "
             "Absolute times are inflated by the load (wall about 2x CPU) and need re-measuring on an idle "
             "machine; compare the two columns of a row.",
             "",
             "| pair | runs | fuse call wall, baseline / current (s) | fuse call CPU (s) | CPU ratio | "
             "peak RSS of the fuse call, baseline / current (MiB) | whole process peak (MiB) | "
             "max / mean diff (grey levels) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        ratio = r["baseline_cpu"] / r["current_cpu"]
        lines.append(
            f"| {r['size']} | {r['n']} | {num(r['baseline_fuse'], '.1f')} / {r['current_fuse']:.1f} | "
            f"{num(r['baseline_cpu'], '.1f')} / {r['current_cpu']:.1f} | "
            f"{'not run' if ratio != ratio else f'**{ratio:.2f}x**'} | {num(r['baseline_peak_mib'], '.0f')} "
            f"({num(r['baseline_before_mib'], '.0f')}) / **{r['current_peak_mib']:.0f}** "
            f"({r['current_before_mib']:.0f}) | {num(r['baseline_process_peak_mib'], '.0f')} / "
            f"{r['current_process_peak_mib']:.0f} | {num(r['diff'], '.1e')} / {num(r['mean_diff'], '.1e')} |")
    lines += ["", "Medians. Every run, fuse call wall / CPU (s) and fuse call peak RSS (MiB): " + "; ".join(
        f"{r['size']} baseline " + (", ".join(f"{t:.1f}/{c:.1f} s {m:.0f}" for t, c, m in zip(
            r["baseline_all"], r["baseline_cpus"], r["baseline_peaks"])) or "not run")
        + " / current " + ", ".join(f"{t:.1f}/{c:.1f} s {m:.0f}" for t, c, m in zip(
            r["current_all"], r["current_cpus"], r["current_peaks"]))
        for r in res["rows"]) + ".", ""]
    for note in res.get("notes", []):
        lines += [note, ""]
    lines.append("<!-- end refusion-large -->")
    return "\n".join(lines)


def render(speed: list, memory: dict | None) -> str:
    lines = [f"<!-- begin {MARK} -->", "## ReFusion inference (CPU)", ""]
    lines.append(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                 f"torch {torch.__version__}. Command: `python benchmarks/refusion.py`.")
    lines.append("")
    if speed:
        first = speed[0]
        lines += [
            f"Speed, one {first['label']} pair, best of {len(first['ours_all'])} alternating runs per "
            "thread setting, in one process, same seeded weights (saved in the authors' 140-key .pth "
            "layout and loaded through `--weights`), no stretch:",
            "",
            "| torch threads | plain reference (s) | fusekit `refusion` (s) | speed-up | max abs diff |",
            "|---|---|---|---|---|",
        ]
        for row in speed:
            lines.append(f"| {row['threads']} | {row['plain']:.2f} | {row['ours']:.2f} | "
                         f"**{row['plain'] / row['ours']:.1f}x** | {row['diff']:.1e} |")
        lines += [
            "",
            "Plain reference: `PlainReFusion` in `benchmarks/refusion.py` (permute-based layer norm, "
            "per-head copies, normalised q/k, `torch.no_grad`). Ours: `ReFusion(...).fuse` "
            "(channels-last tiles of 16k pixels, folded layer norms and attention projections, "
            "exact global attention sums, tiles on single-threaded workers). All runs (s): "
            + "; ".join(f"{r['threads']} thr plain {', '.join(f'{t:.2f}' for t in r['plain_all'])} / ours "
                        f"{', '.join(f'{t:.2f}' for t in r['ours_all'])}" for r in speed)
            + ". The cores are shared with other jobs, so absolute times vary between runs; the "
            "ratios come from interleaved runs.",
            "",
        ]
    if memory:
        lines += [
            f"Large image: {memory['pair']}, `fusekit.fuse(method='refusion')` in a fresh process: "
            f"peak RSS **{memory['peak_gib']:.2f} GiB** (resident just before the call: "
            f"{memory['before_gib']:.2f} GiB, the interpreter, libraries and the two 4096x3072 float32 "
            f"images), {memory['seconds']:.0f} s; output finite: "
            f"{memory['finite']}. The attention is computed exactly over "
            "tiles (see `fusekit_refusion/engine.py`), so the result equals whole-image inference "
            "(tested at several tile sizes in `tests/test_refusion_network.py`).",
            "",
        ]
    lines.append(f"<!-- end {MARK} -->")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--processes", action="store_true", help="whole processes against --baseline's engine")
    parser.add_argument("--baseline", default="73d2732", help="git revision of the baseline engine")
    parser.add_argument("--large", nargs="*", default=[], metavar="WxH", help="also these sizes, once each")
    parser.add_argument("--load", default="not recorded", help="what else ran on the machine (for the table)")
    parser.add_argument("--no-small", action="store_true", help="with --processes: skip the 640x480 runs")
    parser.add_argument("--large-repeat", type=int, default=1, help="runs of each --large size (median)")
    parser.add_argument("--section", default="refusion-processes", choices=["refusion-processes", "refusion-large"],
                        help="with --processes: which BENCHMARKS.md section to write")
    parser.add_argument("--baseline-upto", default=None, metavar="WxH",
                        help="with --processes: run the baseline only on sizes of at most this many pixels")
    parser.add_argument("--note", action="append", default=[], help="a paragraph for the section (repeatable)")
    parser.add_argument("--msrs", nargs="*", default=[], metavar="REV",
                        help="with --processes: also the output difference over the MSRS test split against "
                             "these revisions' engines")
    args = parser.parse_args(argv)
    if args.processes:
        command = "python benchmarks/refusion.py " + " ".join(sys.argv[1:] if argv is None else argv)
        large = [tuple(int(v) for v in size.lower().split("x")) for size in args.large]
        upto = None
        if args.baseline_upto:
            bw, bh = (int(v) for v in args.baseline_upto.lower().split("x"))
            upto = bw * bh
        load0 = os.getloadavg()[0]
        res = measure_processes(args.baseline, args.repeat, large, not args.no_small, args.large_repeat, upto)
        res["msrs"] = measure_msrs(args.msrs) if args.msrs else []
        res["loads"] = (load0, os.getloadavg()[0])
        res["command"] = command
        res["notes"] = args.note
        text = (render_large if args.section == "refusion-large" else render_processes)(res, args.load)
        if not args.no_write:
            write_section(args.section, text, REPO / "BENCHMARKS.md")
        print(text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "ReFusion_seeded.pth"
        torch.save(seeded_plain().state_dict(), weights)  # the authors' 140-key layout
        speed = []
        default_threads = torch.get_num_threads()
        for threads in ([] if args.skip_speed else sorted({default_threads, 1}, reverse=True)):
            row = measure_speed(weights, args.repeat, threads)
            speed.append(row)
            print(f"{threads} threads: plain {row['plain']:.2f}s ours {row['ours']:.2f}s ratio "
                  f"{row['plain'] / row['ours']:.2f} diff {row['diff']:.2e}", flush=True)
        torch.set_num_threads(default_threads)
        memory = None if args.skip_memory else measure_memory(weights)
        if memory:
            print(f"4096x3072: peak {memory['peak_gib']:.2f} GiB, {memory['seconds']:.1f} s", flush=True)
    text = render(speed, memory)
    if not args.no_write:
        write_section(MARK, text, REPO / "BENCHMARKS.md")
    print(text)


if __name__ == "__main__":
    main()
