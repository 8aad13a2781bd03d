"""Image reading: pixel limit from the header, CMYK, EXIF orientation, multi-page TIFF, empty files."""

from __future__ import annotations

import io as bytes_io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from fusekit.errors import InputError
from fusekit.header import DEFAULT_MAX_PIXELS, read_header
from fusekit.io import FusekitWarning, load_image, read_image

from .corpus import digest, one_line_error, write


def _png_header_only(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose header claims ``width x height`` but whose data is a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _jpeg_with_size(width: int, height: int) -> bytes:
    buf = bytes_io.BytesIO()
    Image.new("L", (8, 8), 90).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _bmp_with_size(width: int, height: int) -> bytes:
    buf = bytes_io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "BMP")
    data = bytearray(buf.getvalue())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _tiff_with_size(path, width: int, height: int) -> None:
    import tifffile

    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        patches = [(tags["ImageWidth"], width), (tags["ImageLength"], height)]
        spots = [(t.valueoffset, t.dtype) for t, _ in patches]
    with open(path, "r+b") as fh:
        for (offset, dtype), value in zip(spots, (width, height)):
            fh.seek(offset)
            fh.write(struct.pack("<H" if int(dtype) == 3 else "<I", value))


HUGE = {
    "png-8bit-60000": lambda p: p.write_bytes(_png_header_only(60000, 60000)),
    "png-16bit-20000": lambda p: p.write_bytes(_png_header_only(20000, 20000, 16, 0)),
    "png-16bit-rgb-20000": lambda p: p.write_bytes(_png_header_only(20000, 20000, 16, 2)),
    "jpg-60000": lambda p: p.write_bytes(_jpeg_with_size(60000, 60000)),
    "bmp-60000": lambda p: p.write_bytes(_bmp_with_size(60000, 60000)),
    "tif-60000": lambda p: _tiff_with_size(p, 60000, 60000),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_an_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path, case):
    path = tmp_path / f"huge.{case.split('-')[0]}"
    HUGE[case](path)
    head = read_header(path)
    assert head is not None and head.width * head.height > DEFAULT_MAX_PIXELS
    start = time.perf_counter()
    with pytest.raises(InputError, match="megapixels") as info:
        read_image(path)
    assert time.perf_counter() - start < 2  # refused before decoding, not after allocating GBs
    assert "--max-pixels" in str(info.value) and "FUSEKIT_MAX_PIXELS" in str(info.value)


def test_the_limit_is_raised_by_option_or_environment(run_cli, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    a = write(tmp_path / "a.png", rng.integers(0, 256, (100, 100), dtype=np.uint8))
    b = write(tmp_path / "b.png", rng.integers(0, 256, (100, 100), dtype=np.uint8))
    out = tmp_path / "f.png"
    line = one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", out, "--max-pixels", "5000"]),
                          "a.png", "megapixels", "--max-pixels")
    assert not out.exists() and "0.005" in line
    assert "100x100 is 0.01 megapixels" in line   # not "is 0 megapixels, above the limit of 0.005"
    monkeypatch.setenv("FUSEKIT_MAX_PIXELS", "5000")
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", out]), "megapixels")
    assert run_cli(["fuse", "-m", "average", a, b, "-o", out, "--max-pixels", "10000"]).exit_code == 0
    monkeypatch.setenv("FUSEKIT_MAX_PIXELS", "20000")
    assert run_cli(["fuse", "-m", "average", a, b, "-o", tmp_path / "g.png"]).exit_code == 0
    monkeypatch.setenv("FUSEKIT_MAX_PIXELS", "lots")
    one_line_error(run_cli(["fuse", "-m", "average", a, b, "-o", out]), "FUSEKIT_MAX_PIXELS", code=2)


def test_eval_takes_max_pixels(run_cli, tmp_path):
    for mod in ("ir", "vi"):
        write(tmp_path / "d" / mod / "x.png", np.full((100, 100), 40, np.uint8))
    base = ["eval", tmp_path / "d", "-m", "average", "--metrics", "en", "--cache", tmp_path / "c", "--no-progress"]
    refused = run_cli(base + ["--max-pixels", "5000"])
    assert refused.exit_code == 1 and "megapixels" in refused.stderr
    assert run_cli(base).exit_code == 0


def test_a_cmyk_jpeg_is_read_in_its_true_colours(tmp_path):
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 50, 20
    path = tmp_path / "print.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=100)
    got = np.round(read_image(path) * 255)
    assert got.shape == (8, 12, 3)
    np.testing.assert_allclose(got, rgb, atol=3)  # not the inverted (55, 205, 235)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_image_upright(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.png"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    with Image.open(path) as img:
        upright = np.asarray(ImageOps.exif_transpose(img))
    got = read_image(path)
    assert got.shape == upright.shape
    np.testing.assert_array_equal(np.round(got * 255).astype(np.uint8), upright)


def test_a_rotated_phone_photo_pairs_with_an_upright_image(run_cli, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 30 high, shown 30 wide x 40 high
    phone = tmp_path / "vi.jpg"
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(phone, exif=exif.tobytes(), quality=95)
    ir = write(tmp_path / "ir.png", np.full((40, 30), 60, np.uint8))
    result = run_cli(["fuse", "-m", "average", ir, phone, "-o", tmp_path / "f.png"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "f.png").shape[:2] == (40, 30)


def test_a_multi_page_tiff_says_it_uses_page_one(tmp_path):
    import tifffile

    path = tmp_path / "stack.tif"
    pages = [np.full((6, 5), v, np.uint8) for v in (10, 20, 30)]
    for page in pages:
        tifffile.imwrite(path, page, append=True)
    with pytest.warns(FusekitWarning, match="3 pages; using page 1"):
        got = read_image(path)
    np.testing.assert_array_equal(np.round(got * 255), pages[0])


def test_an_empty_file_is_one_line_naming_it(run_cli, tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    b = write(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="empty file"):
        load_image(empty)
    before = digest(tmp_path)
    one_line_error(run_cli(["fuse", "-m", "average", empty, b, "-o", tmp_path / "f.png"]), "empty.png", "0 bytes")
    assert digest(tmp_path) == before


@pytest.mark.parametrize("pixels, shown", [(307_200, "0.31"), (4_200_000, "4.2"), (9_990_000, "10"),
                                           (123_456_789, "123"), (4_900_000_000, "4900")])
def test_megapixels_in_the_refusal_are_never_rounded_to_zero(pixels, shown):
    from fusekit.header import _megapixels

    assert _megapixels(pixels) == shown


def test_a_file_that_is_no_image_is_named_so_without_imageios_words(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not an image\n")
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "cannot read image (not a format fusekit reads)" in str(info.value)
    assert "uri" not in str(info.value) and "`pillow`" not in str(info.value)
