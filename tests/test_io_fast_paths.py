"""Reading without imageio and scikit-image where Pillow and numpy give the same arrays.

Pins fusekit.io's direct Pillow path for 8-bit PNG/JPEG/BMP, its numpy 8-bit
conversions, fusekit.header's EXIF look-up without a second PNG decode, and
the hidden progress bar without tqdm, against the old imageio/scikit-image
path: on real images of the shared data sets and on bad files.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from skimage.util import img_as_float32, img_as_ubyte

import fusekit.io as fio
from fusekit import header
from fusekit.errors import InputError
from fusekit.execution import Progress, execute

from .conftest import require_data

#: A few files of every layout the shared data holds (format, mode).
SAMPLES = (
    "ivif/msrs/test/ir/00004N.png",          # PNG L
    "ivif/m3fd/sample/ir/M3FD_00471.png",    # PNG RGB
    "ivif/roadscene/test/ir/FLIR_00211.jpg",  # JPEG L
    "ivif/llvip/test/ir/190001.jpg",         # JPEG RGB
    "ivif/vifb/test/ir/manCall.jpg",         # JPEG RGB with EXIF
    "mfif/mfifb/test/a/aymaz_01.bmp",        # BMP L
    "mfif/mfifb/test/a/aymaz_09.bmp",        # BMP RGB
    "meif/mefb/test/over/507.tif",           # TIFF RGB (its own Pillow path, unchanged)
)


def _old_raw(path: Path) -> np.ndarray:
    """The decoder fusekit used before for single-page files: imageio's Pillow plugin."""
    return np.asarray(iio.imread(path, plugin="pillow"))


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    root = require_data()
    paths = [root / name for name in SAMPLES]
    for path in paths:
        if not path.exists():
            pytest.skip(f"{path} not in the shared data")
    # and the first few files of each folder of these kinds, for variety
    for pattern in ("ivif/tno/test/vi/*", "mfif/lytro/test/a/*", "meif/mefb/test/under/*.jpg"):
        paths += sorted(root.glob(pattern))[:3]
    return paths


def test_pillow_path_gives_imageios_arrays_on_real_files(samples, monkeypatch):
    for path in samples:
        head = header.read_header(path)
        plain = fio._read_plain_8bit(path, head)
        if path.suffix.lower() in (".tif", ".tiff"):
            assert plain is None, path
            continue
        assert plain is not None, path
        old = _old_raw(path)
        assert plain.dtype == old.dtype and plain.shape == old.shape, path
        np.testing.assert_array_equal(plain, old, err_msg=str(path))
        new = fio.load_image(path)
        monkeypatch.setattr(fio, "_read_plain_8bit", lambda path, head, found=None: None)   # the old path: imageio
        before = fio.load_image(path)
        monkeypatch.undo()
        assert new.bit_depth == before.bit_depth == 8
        assert new.data.dtype == before.data.dtype and new.data.shape == before.data.shape
        np.testing.assert_array_equal(new.data, before.data, err_msg=str(path))


def test_8bit_to_float_is_scikit_images_for_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mine = fio._normalise(levels, Path("x.png"))[0]
    assert mine.dtype == np.float32
    np.testing.assert_array_equal(mine, img_as_float32(levels))      # all 256 values: the whole map


def test_float_to_8bit_is_scikit_images():
    rng = np.random.default_rng(0)
    levels = np.arange(256, dtype=np.float32) / np.float32(255)
    halves = (np.arange(256, dtype=np.float32) + np.float32(0.5)) / np.float32(255)
    near = np.concatenate([np.nextafter(halves, 0), halves, np.nextafter(halves, 1)]).astype(np.float32)
    values = np.concatenate([levels, near, rng.random(200_000, dtype=np.float32),
                             np.float32([0, 1, 1e-30, 1 - 2 ** -24])])
    values = np.clip(values, 0, 1).astype(np.float32)
    np.testing.assert_array_equal(fio._to_ubyte(values), img_as_ubyte(values))


def test_written_images_hold_the_same_bytes_as_before(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.random((9, 11, 3)).astype(np.float32)
    for ext in (".png", ".bmp", ".tif", ".jpg"):
        path = fio.write_image(tmp_path / f"x{ext}", image)
        if ext != ".jpg":
            np.testing.assert_array_equal(iio.imread(path), img_as_ubyte(image))


def _png_with_late_exif(path: Path, orientation: int) -> None:
    """A PNG whose eXIf chunk comes after the image data (allowed; Pillow finds it only on load)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    pixels = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(pixels).save(path)
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    body = b"eXIf" + payload
    chunk = struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    path.write_bytes(data[:iend] + chunk + data[iend:])


def test_exif_orientation_after_the_png_image_data_is_still_found(tmp_path):
    path = tmp_path / "late.png"
    _png_with_late_exif(path, 6)
    with Image.open(path) as img:
        assert "exif" not in img.info                         # not in the header: needs the chunk scan
    assert header.read_header(path).orientation == 6
    assert fio.read_image(path).shape == (6, 4)               # turned upright
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(plain)
    assert header.read_header(plain).orientation == 1 and not header._png_has_chunk(plain, b"eXIf")


def test_header_does_not_decode_a_png_without_exif(samples, monkeypatch):
    from PIL import ImageFile

    loads = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or real(self))
    for path in samples:
        head = header.read_header(path)
        with Image.open(path) as img:
            want = int(img.getexif().get(0x0112, 1) or 1)
        assert head.orientation == (want if 1 <= want <= 8 else 1), path
    # the header reads decode nothing; only the reference getexif() calls above load PNGs
    assert sum(1 for img in loads if img.format == "PNG") == sum(1 for p in samples if p.suffix == ".png")


def _truncated(tmp_path: Path, ext: str, keep: float) -> Path:
    rng = np.random.default_rng(2)
    good = tmp_path / f"good{ext}"
    iio.imwrite(good, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    bad = tmp_path / f"bad{ext}"
    data = good.read_bytes()
    bad.write_bytes(data[:int(len(data) * keep)])
    return bad


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
@pytest.mark.parametrize("keep", [0.05, 0.5])
def test_bad_files_give_the_same_one_line_error_as_before(tmp_path, monkeypatch, ext, keep):
    bad = _truncated(tmp_path, ext, keep)
    with pytest.raises(InputError) as now:
        fio.read_image(bad)
    monkeypatch.setattr(fio, "_read_plain_8bit", lambda path, head, found=None: None)
    with pytest.raises(InputError) as before:
        fio.read_image(bad)
    assert str(now.value) == str(before.value)
    assert "\n" not in str(now.value) and f"bad{ext}: cannot read image" in str(now.value)


def test_not_an_image_with_an_image_name(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image at all")
    with pytest.raises(InputError, match=r"notes.png: cannot read image \(not a format fusekit reads\)"):
        fio.read_image(path)


def test_hidden_bar_is_a_stand_in_and_a_shown_bar_is_tqdm(capsys):
    assert not type(Progress("x", show=False).bar([1])).__module__.startswith("tqdm")
    assert not type(Progress("x").bar([1])).__module__.startswith("tqdm")         # stderr is not a terminal
    done = list(execute(pow, [1, 2], shared=2, ordered=True, progress=Progress("x")))
    assert [d.value for d in done] == [2, 4]
    with Progress("x", show=True).bar([1, 2]) as bar:
        assert type(bar).__module__.startswith("tqdm")
        bar.update(2)
    assert "x" in capsys.readouterr().err


def test_fusing_pngs_imports_neither_imageio_nor_tqdm(tmp_path, demo_pair):
    for name, image in zip(("a", "b"), demo_pair):
        (tmp_path / name).mkdir()
        fio.write_image(tmp_path / name / "x.png", image)
    code = ("import atexit, json, sys\n"
            "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
            "from fusekit.cli import main\n"
            f"main(['fuse', '-m', 'average', {str(tmp_path / 'a')!r}, {str(tmp_path / 'b')!r}, "
            f"'-o', {str(tmp_path / 'out')!r}])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "FUSEKIT_NUMBA": ""})
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert (tmp_path / "out" / "x.png").exists()
    assert not {"imageio", "tqdm"} & loaded


def _float_grey_checks(raw: np.ndarray, keep_near_grey: bool) -> np.ndarray:
    """fusekit's grey checks as they were written before, on the converted floats."""
    data = np.multiply(raw, 1.0 / 255, dtype=np.float32)
    c0, c1, c2 = data[..., 0], data[..., 1], data[..., 2]
    if np.array_equal(c0, c1) and np.array_equal(c1, c2):
        data = c0
    elif not keep_near_grey:
        spread = np.maximum(np.maximum(c0, c1), c2) - np.minimum(np.minimum(c0, c1), c2)
        if float(spread.max(initial=0.0)) <= 2 / 255.0 + 1e-6:
            data = data.mean(axis=2)
    return np.ascontiguousarray(data, dtype=np.float32)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 53), (300, 700), (700, 31)])
def test_8bit_grey_checks_give_the_float_checks_arrays(shape):
    rng = np.random.default_rng(sum(shape))
    grey = rng.integers(0, 256, shape, dtype=np.uint8)
    cases = [np.repeat(grey[..., None], 3, axis=2), rng.integers(0, 256, shape + (3,), dtype=np.uint8)]
    for spread in (1, 2, 3, 255):
        for where in ((0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, shape[1] // 3)):
            for channel in (0, 1, 2):
                image = cases[0].astype(int)
                image[where + (channel,)] += spread if image[where + (channel,)] + spread <= 255 else -spread
                cases.append(image.astype(np.uint8))
    alpha = np.dstack([cases[0], grey])  # RGBA: its RGB view has strides of 4
    for raw in cases + [alpha[..., :-1], cases[1][::-1, ::-1], cases[2].swapaxes(0, 1)]:
        for keep in (False, True):
            want = _float_grey_checks(raw, keep)
            got = fio._normalise(raw, Path("x.png"), keep)[0]
            assert got.dtype == np.float32 and got.flags.c_contiguous
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("suffix,mode", [(".png", "RGB"), (".png", "L"), (".jpg", "RGB"), (".bmp", "RGB"),
                                         (".tif", "RGB"), (".tif", "L")])
def test_a_plain_file_is_opened_and_parsed_once(tmp_path, monkeypatch, suffix, mode):
    rng = np.random.default_rng(1)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert(mode).save(
        path, **({"compression": "tiff_lzw"} if suffix == ".tif" else {}))
    want = fio.read_image(path)
    opens = []
    real = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opens.append(a) or real(*a, **k))
    np.testing.assert_array_equal(fio.read_image(path), want)
    assert len(opens) == 1


def test_pillow_warnings_on_opening_are_given_once_when_the_pixels_are_decoded(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(path)
    real = PngImagePlugin.PngImageFile._open

    def noisy(self):
        import warnings

        warnings.warn("noted while opening", UserWarning)
        return real(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", noisy)
    with pytest.warns(UserWarning, match="noted while opening") as caught:
        fio.read_image(path)
    assert sum("noted while opening" in str(w.message) for w in caught) == 1
