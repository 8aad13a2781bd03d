"""ReFusion's engine and fuser on inputs outside the normal path (review of the engine, issue 24).

Empty images, integer or 0-255 sources, a damaged weights registry, and the
allocator settings the engine changes during a call: each gives a clear
error, or leaves the process as it found it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.errors import InputError, WeightsError  # noqa: E402
from fusekit_refusion import engine  # noqa: E402
from fusekit_refusion.checkpoint import to_authors_state_dict  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.network import ReFusionNet  # noqa: E402
from fusekit_refusion.weights import read_registry  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ReFusionNet().eval()


@pytest.mark.parametrize("shape", [(1, 2, 0, 5), (1, 2, 5, 0), (0, 2, 5, 5)], ids=["no-rows", "no-cols", "no-pairs"])
@pytest.mark.parametrize("border", [0, 13])
def test_empty_input_is_an_input_error(net, shape, border):
    with pytest.raises(InputError, match="empty"):
        engine.infer(net, torch.rand(shape), border=border)


def test_integer_sources_are_refused_not_read_as_0_255(net):
    x = (torch.rand(1, 2, 8, 8) * 255).to(torch.uint8)
    with pytest.raises(InputError, match="255"):
        engine.infer(net, x)


def test_float64_sources_are_accepted(net):
    x = torch.rand(1, 2, 9, 7, dtype=torch.float64)
    out = engine.infer(net, x)
    assert out.dtype == torch.float32
    assert torch.equal(out, engine.infer(net, x.float()))


@pytest.fixture(scope="module")
def fuser(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "ReFusion_IVIF.pth"
    torch.save(to_authors_state_dict(net), path)
    return ReFusion(task="ivif", weights=str(path))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float-0-255"])
def test_fuser_refuses_0_255_sources(fuser, dtype):
    """Before: 0-255 sources went through the network and came out a near-white image, silently."""
    rng = np.random.default_rng(0)
    sources = [(rng.random((20, 24)) * 255).astype(dtype) for _ in range(2)]
    with pytest.raises(InputError, match="divide by 255"):
        fuser.fuse(sources)


def test_fuser_accepts_unit_range_sources(fuser):
    rng = np.random.default_rng(1)
    sources = [rng.random((20, 24), dtype=np.float32) for _ in range(3)]
    sources[0][0, 0], sources[1][0, 0] = 0.0, 1.0
    out = fuser.fuse(sources)
    assert out.shape == (20, 24) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("text", ["[]", '"weights"', "3"])
def test_registry_that_is_not_an_object_is_a_weights_error(tmp_path, text):
    registry = tmp_path / "registry.json"
    registry.write_text(text)
    with pytest.raises(WeightsError, match="format"):
        read_registry(registry)


def test_registry_object_without_format_is_a_weights_error(tmp_path):
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"weights": []}))
    with pytest.raises(WeightsError, match="format"):
        read_registry(registry)


_ARENAS = textwrap.dedent("""
    import ctypes, sys, threading, torch
    from fusekit_refusion import engine
    from fusekit_refusion.network import ReFusionNet

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    torch.set_num_threads(1)  # the call itself makes no thread
    if sys.argv[1] == "infer":
        engine.infer(ReFusionNet().eval(), torch.rand(1, 2, 20, 20))
    gate = threading.Barrier(4)

    def work():
        gate.wait()  # all four at once: each needs an arena of its own
        p = libc.malloc(1000)
        gate.wait()
        libc.free(p)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc.malloc_stats()  # one "Arena N:" line per arena, on stderr
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
                    reason="glibc's allocator only")
def test_a_single_threaded_call_leaves_glibc_arenas_to_the_callers_threads():
    """Before: the engine set glibc's arena limit to 1 for its call and 'restored' it with
    mallopt(M_ARENA_MAX, 0), which glibc ignores: every thread made afterwards shared the main arena."""
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}

    def arenas(mode):
        proc = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return sum(line.startswith("Arena ") for line in proc.stderr.splitlines())

    plain = arenas("plain")
    if plain < 2:
        pytest.skip("this glibc gives new threads no arena of their own")
    assert arenas("infer") == plain
