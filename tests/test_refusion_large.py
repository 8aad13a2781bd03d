"""ReFusion on large images: the streamed engine (features in a temporary file) and per-tile progress.

Streaming starts above ``engine.STREAM_BYTES`` (about 4 megapixels); these
tests lower the threshold so a small image takes that path.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.interfaces import reporting_progress  # noqa: E402
from fusekit_refusion import engine  # noqa: E402
from fusekit_refusion.checkpoint import to_authors_state_dict  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402

from .test_refusion_network import real_pair  # noqa: E402
from .test_refusion_weights import seeded_net  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def net():
    return seeded_net(2)


@pytest.fixture
def spills(monkeypatch):
    """Stream every feature buffer; record the temporary files the engine opens."""
    opened = []
    make = tempfile.TemporaryFile

    def tracked(*args, **kwargs):
        fh = make(*args, **kwargs)
        opened.append(fh)
        return fh

    monkeypatch.setattr(engine.tempfile, "TemporaryFile", tracked)
    monkeypatch.setattr(engine, "STREAM_BYTES", 0)
    return opened


@pytest.mark.parametrize("threads, border, spill_v, chunk",
                         [(1, 0, True, 20 * 20), (1, 13, False, 20 * 20), (2, 13, True, 20 * 20),
                          (1, 13, True, 90 * 20), (2, 0, True, 64 * 17)],
                         ids=["1thr-zero-pad-v-in-file", "1thr-mirrored-v-recomputed", "2thr-mirrored-v-in-file",
                              "1thr-row-bands", "2thr-row-bands-zero-pad"])
def test_streamed_engine_equals_in_memory(net, spills, monkeypatch, threads, border, spill_v, chunk):
    """Same arithmetic in the same order, on data at the same alignment: the streamed result equals the
    in-memory one bit for bit (tiles copied out of bands, and bands of whole rows read as views)."""
    x = real_pair(48, 64)
    torch.set_num_threads(threads)
    monkeypatch.setattr(engine, "SPILL_V", spill_v)
    monkeypatch.setattr(engine, "V_CACHE_BYTES", engine.V_CACHE_BYTES if spill_v else 0)
    streamed = engine.infer(net, x, chunk_pixels=chunk, border=border)
    assert spills and all(fh.closed for fh in spills)  # it did stream, and gave the files back
    monkeypatch.setattr(engine, "STREAM_BYTES", 1 << 40)
    in_memory = engine.infer(net, x, chunk_pixels=chunk, border=border)
    assert torch.equal(streamed, in_memory)
    with torch.no_grad():
        ref = net(x)
    if border == 0:
        assert float((streamed - ref).abs().max()) <= 1e-5


def test_small_images_stay_in_memory(net, monkeypatch):
    opened = []
    monkeypatch.setattr(engine.tempfile, "TemporaryFile", lambda *a, **k: opened.append(1))
    engine.infer(net, real_pair(40, 48), chunk_pixels=16 * 16, border=13)
    assert not opened


def test_temporary_files_closed_when_interrupted(net, spills):
    """Ctrl-C in the middle of a fuse: the files are closed (on POSIX they never had a name)."""
    def interrupt(done, total):
        if done == total // 2:
            raise KeyboardInterrupt

    with reporting_progress(interrupt), pytest.raises(KeyboardInterrupt):
        engine.infer(net, real_pair(48, 64), chunk_pixels=16 * 16, border=13)
    assert spills and all(fh.closed for fh in spills)


def test_no_room_for_the_file_keeps_memory(net, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    x = real_pair(40, 48)
    ref = engine.infer(net, x, chunk_pixels=16 * 16)
    monkeypatch.setattr(engine, "STREAM_BYTES", 0)
    monkeypatch.setattr(engine.tempfile, "TemporaryFile", full)
    with pytest.warns(RuntimeWarning, match="keeping it in memory"):
        out = engine.infer(net, x, chunk_pixels=16 * 16)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed"])
@pytest.mark.parametrize("chunk", [10**7, 16 * 16], ids=["one-tile", "tiled"])
def test_engine_reports_every_tile(net, monkeypatch, stream, chunk):
    """done runs 1, 2, ... total; run k of n starts at k/n of the total."""
    if stream:
        monkeypatch.setattr(engine, "STREAM_BYTES", 0)
    x = torch.cat([real_pair(40, 48)] * 2)  # a batch of two
    seen = []
    with reporting_progress(lambda done, total: seen.append((done, total))):
        engine.infer(net, x, chunk_pixels=chunk, border=13, progress=(1, 3))
    done = [d for d, _ in seen]
    total = seen[0][1]
    assert {t for _, t in seen} == {total} and total % 3 == 0
    assert done == list(range(total // 3 + 1, 2 * total // 3 + 1))


def test_fuse_of_three_sources_reports_increasing_progress_to_total(net, tmp_path):
    """ReFusion runs the engine once per pair; the counts go on from one pair to the next."""
    from fusekit.api import fuse_images

    weights = tmp_path / "ReFusion_seeded.pth"
    torch.save(to_authors_state_dict(net), weights)
    fuser = ReFusion(task="ivif", weights=str(weights), chunk_pixels=20 * 20)
    rng = np.random.default_rng(0)
    sources = [rng.random((45, 50), dtype=np.float32) for _ in range(3)]
    seen = []
    fuse_images(fuser, sources, progress=lambda done, total: seen.append((done, total)))
    done = [d for d, _ in seen]
    assert len(seen) > 10 and done == sorted(set(done)) and done[0] == 1
    assert {t for _, t in seen} == {seen[-1][1]} and done[-1] == seen[-1][1]
