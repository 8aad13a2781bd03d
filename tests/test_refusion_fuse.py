"""`fusekit fuse --method refusion` on real pairs of all four tasks; stretch; more than two sources.

The weights used here are deterministic (seeded) weights saved in the
authors' .pth layout: they test the loading path, shapes, ranges and
conventions, not fusion quality.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit_refusion.checkpoint import to_authors_state_dict  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402

from .test_refusion_weights import seeded_net  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402

#: task -> (dataset folder, source-1 folder, source-2 folder, file name): the task's source order;
#: the small real pairs in examples/data, so these tests run on a fresh clone.
PAIRS = {
    "ivif": ("ivif", "ir", "vi", "FLIR_06570.png"),
    "mif": ("mif", "ct", "mri", "11.png"),
    "mfif": ("mfif", "near", "far", "lytro_05.png"),
    "meif": ("meif", "under", "over", "Candle.png"),
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def net():
    return seeded_net(1)


@pytest.fixture(scope="module")
def weights(net, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "ReFusion_seeded.pth"
    torch.save(to_authors_state_dict(net), path)
    return path


def cropped_pair(task: str, folder: Path) -> tuple[Path, Path]:
    """Crop a real pair of ``task`` to 64 x 80 and save it losslessly (colour kept)."""
    base, m1, m2, name = PAIRS[task]
    out = []
    for modality in (m1, m2):
        image = iio.imread(EXAMPLES / base / modality / name)
        h, w = image.shape[:2]
        top, left = (h - 64) // 2, (w - 80) // 2
        path = folder / f"{task}_{modality}.png"
        iio.imwrite(path, image[top:top + 64, left:left + 80])
        out.append(path)
    return out[0], out[1]


@pytest.mark.parametrize("task", list(PAIRS))
def test_cli_fuses_real_pairs_of_every_task(task, weights, run_cli, tmp_path):
    a, b = cropped_pair(task, tmp_path)
    out = tmp_path / "fused.png"
    result = run_cli(["fuse", "--method", "refusion", "--task", task, "--weights", weights, a, b, "-o", out])
    assert result.exit_code == 0, result.output
    fused = iio.imread(out)
    colour = any(iio.imread(p).ndim == 3 and np.ptp(iio.imread(p).astype(int), axis=-1).any() for p in (a, b))
    assert fused.shape == ((64, 80, 3) if colour else (64, 80))
    y = fused if fused.ndim == 2 else fused.mean(-1)
    assert fused.dtype == np.uint8 and np.ptp(y) > 0
    if fused.ndim == 2:  # grey result: the stretch reaches both ends
        assert fused.min() == 0 and fused.max() == 255


def test_cli_no_stretch_gives_the_raw_network_output(net, weights, run_cli, tmp_path):
    from fusekit.color import luminance
    from fusekit.io import read_image

    a, b = cropped_pair("mfif", tmp_path)
    for flag, name in (("--stretch", "s.png"), ("--no-stretch", "n.png")):
        result = run_cli(["fuse", "-m", "refusion", "--task", "mfif", "--weights", weights, flag,
                          a, b, "-o", tmp_path / name])
        assert result.exit_code == 0, result.output
    ya, yb = (luminance(read_image(p)) for p in (a, b))
    with torch.no_grad():
        raw = net(torch.from_numpy(np.stack([ya, yb])[None]))[0, 0].numpy()
    stretched, plain = (luminance(read_image(tmp_path / n)) for n in ("s.png", "n.png"))
    assert abs(float(plain.mean()) - float(raw.mean())) < 0.02
    assert float(stretched.max() - stretched.min()) > float(plain.max() - plain.min())


def test_cli_errors_are_one_line(run_cli, tmp_path):
    a, b = cropped_pair("ivif", tmp_path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    result = run_cli(["fuse", "-m", "refusion", "--weights", bad, a, b, "-o", tmp_path / "f.png"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(bad) in lines[0] and "not a weights file" in lines[0]
    assert "Traceback" not in result.output


def test_stretch_maps_to_full_range_and_can_be_disabled(net, weights):
    rng = np.random.default_rng(0)
    a, b = (rng.random((20, 24), dtype=np.float32) for _ in range(2))
    raw = ReFusion(weights=str(weights), stretch=False).fuse([a, b])
    full = ReFusion(weights=str(weights)).fuse([a, b])
    with torch.no_grad():  # an authors' .pth file runs as published: plain forward, zero padding
        ref = net(torch.from_numpy(np.stack([a, b])[None]))[0, 0].numpy()
    assert np.abs(raw - ref).max() <= 1e-5
    assert full.min() == 0.0 and abs(float(full.max()) - 1.0) < 1e-6
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    assert np.abs(full - expected).max() <= 1e-5


def test_tile_size_does_not_change_the_result(weights):
    rng = np.random.default_rng(3)
    a, b = (rng.random((40, 90), dtype=np.float32) for _ in range(2))
    whole = ReFusion(weights=str(weights), chunk_pixels=10**6).fuse([a, b])
    tiled = ReFusion(weights=str(weights), chunk_pixels=150).fuse([a, b])
    assert np.abs(whole - tiled).max() <= 1e-5


def test_more_than_two_sources_fuse_pairwise_in_order(weights):
    rng = np.random.default_rng(1)
    s = [rng.random((16, 20), dtype=np.float32) for _ in range(3)]
    fuser = ReFusion(weights=str(weights))
    chained = fuser.fuse([fuser.fuse(s[:2]), s[2]])
    np.testing.assert_allclose(fuser.fuse(s), chained, atol=1e-6)
    assert np.abs(fuser.fuse([s[2], s[0], s[1]]) - chained).max() > 1e-3  # order matters


def test_fuse_via_the_library_api(weights):
    import fusekit

    rng = np.random.default_rng(2)
    a, b = rng.random((18, 22), dtype=np.float32), rng.random((18, 22, 3), dtype=np.float32)
    out = fusekit.fuse([a, b], method="refusion", task="meif", weights=str(weights))
    assert out.shape == (18, 22, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
