"""Image I/O: formats, bit depths, grey/RGB/RGBA, atomic writes, bad files."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from fusekit.errors import InputError
from fusekit.io import FusekitWarning, load_image, read_image, write_image


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_roundtrip_8bit_formats(tmp_path, ext):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / f"x{ext}"
    iio.imwrite(path, img)
    loaded = load_image(path)
    assert loaded.bit_depth == 8 and loaded.data.dtype == np.float32
    assert loaded.data.shape == (20, 30, 3)
    if ext != ".jpg":
        np.testing.assert_allclose(loaded.data, img / 255.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 3), (1, 1), (1, 7, 3)])
@pytest.mark.parametrize("depth", [8, 16])
def test_written_png_holds_the_exact_samples(tmp_path, shape, depth):
    """fusekit's own PNG encoder (Sub filter, zlib level 1): Pillow and imageio read back the samples."""
    rng = np.random.default_rng(1)
    top = 255 if depth == 8 else 65535
    samples = rng.integers(0, top + 1, shape)
    path = write_image(tmp_path / "x.png", (samples / top).astype(np.float32), bit_depth=depth)
    np.testing.assert_array_equal(np.round(read_image(path) * top), samples)
    if depth == 8:
        np.testing.assert_array_equal(iio.imread(path), samples)


def test_grey_stored_as_three_equal_channels_reads_as_grey(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    iio.imwrite(tmp_path / "g.png", np.stack([grey] * 3, axis=2))
    data = read_image(tmp_path / "g.png")
    assert data.shape == (16, 16)
    np.testing.assert_allclose(data, grey / 255.0, atol=1e-6)


def test_16bit_in_16bit_out(tmp_path):
    img = (np.arange(64 * 64, dtype=np.uint32) * 16).reshape(64, 64).astype(np.uint16)
    iio.imwrite(tmp_path / "a.png", img)
    loaded = load_image(tmp_path / "a.png")
    assert loaded.bit_depth == 16
    np.testing.assert_allclose(loaded.data, img / 65535.0, atol=1e-6)
    write_image(tmp_path / "b.png", loaded.data, bit_depth=16)
    back = iio.imread(tmp_path / "b.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)


def test_rgba_drops_alpha_with_warning(tmp_path):
    img = np.zeros((8, 8, 4), np.uint8)
    img[..., 0] = 200
    img[..., 3] = 100
    iio.imwrite(tmp_path / "a.png", img)
    with pytest.warns(FusekitWarning, match="alpha"):
        data = read_image(tmp_path / "a.png")
    assert data.shape == (8, 8, 3)
    np.testing.assert_allclose(data[..., 0], 200 / 255, atol=1e-6)


def test_missing_and_truncated_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    good = tmp_path / "good.png"
    iio.imwrite(good, np.full((64, 64), 7, np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError, match="bad.png: cannot read image"):
        read_image(bad)


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import imageio.v3

    def broken(*args, **kwargs):
        raise OSError("disk full")

    import fusekit.io

    monkeypatch.setattr(imageio.v3, "imwrite", broken)
    monkeypatch.setattr(fusekit.io, "_encode_png", broken)   # PNG has its own encoder
    with pytest.raises(InputError, match="out.png: cannot write image"):
        write_image(tmp_path / "out.png", np.zeros((4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write to folder"):
        write_image(blocker / "out.png", np.zeros((4, 4), np.float32))


def test_16bit_colour_png_roundtrip(tmp_path):
    """48-bit PNGs keep all 16 bits both ways (Pillow alone truncates them to 8)."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, (21, 34, 3), dtype=np.uint16)
    data = img / 65535.0
    write_image(tmp_path / "c.png", data, bit_depth=16)
    loaded = load_image(tmp_path / "c.png")
    assert loaded.bit_depth == 16 and loaded.data.shape == (21, 34, 3)
    np.testing.assert_allclose(loaded.data, data, atol=1e-6)
    rgba = np.concatenate([img, np.full((21, 34, 1), 65535, np.uint16)], axis=2)
    import png

    png.from_array(rgba.reshape(21, -1), "RGBA;16").save(tmp_path / "d.png")
    with pytest.warns(FusekitWarning, match="alpha"):
        again = load_image(tmp_path / "d.png")
    np.testing.assert_allclose(again.data, data, atol=1e-6)


def test_one_file_hash_helper_for_the_cache_and_the_weights(tmp_path):
    import hashlib

    from fusekit.evaluation import cache
    from fusekit.hashing import file_sha256
    from fusekit_refusion import weights

    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 8193                                 # more than one 1 MiB block
    path.write_bytes(data)
    assert file_sha256(path) == file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    assert cache.file_sha256 is file_sha256 and weights.sha256_of is file_sha256
