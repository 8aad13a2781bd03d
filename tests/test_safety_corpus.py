"""The bad-input corpus: generated at test time, each case a one-line error or a correct result.

Every ``fusekit fuse`` case asserts the exit status, one ``error:`` line naming
the file or option, no traceback, no output (or a correct one), and inputs
unchanged (hashed before and after). Eval and API cases follow.
"""

from __future__ import annotations

import io as bytes_io
import pickle
import struct
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.errors import FusekitError, InputError
from fusekit.io import read_image
from fusekit.plugins import build_host

from .corpus import digest, hidden_files, write

RNG = np.random.default_rng(22)


def _grey(h=16, w=16):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def _rgb(h=16, w=16):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encoded(ext: str, array: np.ndarray) -> bytes:
    buf = bytes_io.BytesIO()
    Image.fromarray(array).save(buf, {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tif": "TIFF"}[ext])
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(_encoded("png", _grey()))
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _tiff(path: Path, array: np.ndarray, **kwargs) -> None:
    tifffile.imwrite(path, array, **kwargs)


# name -> (writer of the second source at path, expected exit, needles in the error line or None if fine)
SOURCES = {
    # truncated and corrupt files of every format
    **{f"truncated-{ext}": ((lambda p, e=ext: p.write_bytes(_encoded(e, _grey())[: len(_encoded(e, _grey())) // 2])),
                            1, ["cannot read image"]) for ext in ("png", "jpg", "bmp", "tif")},
    **{f"garbage-{ext}": ((lambda p: p.write_bytes(RNG.bytes(300))), 1, ["cannot read image"])
       for ext in ("png", "jpg", "bmp", "tif")},
    "text-as-png": ((lambda p: p.write_text("hello, I am not an image\n")), 1, ["cannot read image"]),
    "header-only-png": ((lambda p: p.write_bytes(_encoded("png", _grey())[:33])), 1, ["cannot read image"]),
    "bad-crc-png": ((lambda p: p.write_bytes(_bad_crc_png())), 1, ["cannot read image"]),
    "zero-bytes-png": ((lambda p: p.write_bytes(b"")), 1, ["empty file"]),
    "zero-bytes-jpg": ((lambda p: p.write_bytes(b"")), 1, ["empty file"]),
    # wrong modes and bit depths
    "float-tif-outside-01": ((lambda p: _tiff(p, np.full((16, 16), 2.0, np.float32))), 1, ["outside [0, 1]"]),
    "float-tif-nan": ((lambda p: _tiff(p, np.full((16, 16), np.nan, np.float32))), 1, ["outside [0, 1]"]),
    "int32-tif": ((lambda p: _tiff(p, np.full((16, 16), 5, np.int32))), 1, ["sample type int32"]),
    "5-channel-tif": ((lambda p: _tiff(p, np.zeros((16, 16, 5), np.uint8), photometric="minisblack")), 1,
                      ["layout"]),
    "palette-png": ((lambda p: Image.fromarray(_grey()).convert("P").save(p)), 0, None),
    "1-bit-png": ((lambda p: Image.fromarray(_grey() > 128).save(p)), 0, None),
    "la-png": ((lambda p: Image.fromarray(np.stack([_grey(), _grey()], -1), "LA").save(p)), 0, None),
    "rgba-png": ((lambda p: write(p, np.dstack([_rgb(), _grey()]))), 0, None),
    "16bit-png": ((lambda p: write(p, RNG.integers(0, 65536, (16, 16), dtype=np.uint16))), 0, None),
    "16bit-rgb-tif": ((lambda p: _tiff(p, RNG.integers(0, 65536, (16, 16, 3), dtype=np.uint16))), 0, None),
    "float-tif-01": ((lambda p: _tiff(p, RNG.random((16, 16), dtype=np.float32))), 0, None),
    "cmyk-jpg": ((lambda p: Image.fromarray(_rgb()).convert("CMYK").save(p)), 0, None),
    "multipage-tif": ((lambda p: [_tiff(p, _grey(), append=True) for _ in range(3)]), 0, None),
    "rgb-bmp": ((lambda p: write(p, _rgb())), 0, None),
    # mismatched sizes
    "smaller-png": ((lambda p: write(p, _grey(8, 16))), 1, ["differs"]),
    "transposed-png": ((lambda p: write(p, _grey(16, 8))), 1, ["differs"]),
    "one-pixel-png": ((lambda p: write(p, _grey(1, 1))), 1, ["differs"]),
    # huge headers
    "huge-header-png": ((lambda p: p.write_bytes(_png_header(70000, 70000))), 1, ["megapixels"]),
    "huge-header-16bit-png": ((lambda p: p.write_bytes(_png_header(30000, 30000, 16))), 1, ["megapixels"]),
}


def _png_header(width: int, height: int, depth: int = 8) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 32)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case", list(SOURCES))
def test_fuse_a_bad_or_odd_source(run_cli, tmp_path, case):
    writer, code, needles = SOURCES[case]
    ext = "tif" if "tif" in case else "jpg" if "jpg" in case else "bmp" if "bmp" in case else "png"
    first = write(tmp_path / "first.png", _grey())
    second = tmp_path / f"second {case} é.{ext}"  # hostile name: spaces and non-ASCII
    writer(second)
    out = tmp_path / "out" / "fused.png"
    before = digest(first, second)
    result = run_cli(["fuse", "-m", "average", first, second, "-o", out])
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert digest(first, second) == before
    if needles is None:
        fused = read_image(out)
        assert fused.shape[:2] == (16, 16) and np.isfinite(fused).all()
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and second.name in errors[0], result.stderr
        assert all(n in errors[0] for n in needles), errors[0]
        assert not out.exists()
    assert not (out.parent.exists() and hidden_files(out.parent))


class Raises(Fuser):
    name = "raises"

    def fuse(self, sources):
        raise ValueError("the plugin broke")


class ReturnsNan(Fuser):
    name = "returns-nan"

    def fuse(self, sources):
        return np.full(sources[0].shape, np.nan, np.float32)


@pytest.fixture(scope="module")
def host():
    @hookimpl
    def register_fusers(register):
        register(Raises)
        register(ReturnsNan)

    return build_host(extra=[(types.SimpleNamespace(register_fusers=register_fusers), "corpus")])


def _weights(kind: str, path: Path) -> Path:
    if kind == "garbage":
        path.write_bytes(RNG.bytes(512))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle":  # a pickle that would run code if unpickled
        path.write_bytes(pickle.dumps(types.SimpleNamespace(x=1)))
    elif kind == "text":
        path.write_text("weights")
    return path


PATH_CASES = {
    # args after "fuse -m average" given (a, b, tmp) -> (args, exit code, needles or None)
    "output-is-first-source": (lambda a, b, t: [a, b, "-o", a], 1, ["overwrite"]),
    "output-via-dotdot": (lambda a, b, t: [a, b, "-o", t / "x" / ".." / a.name], 1, ["overwrite"]),
    "missing-source": (lambda a, b, t: [a, t / "missing.png", "-o", t / "o.png"], 1, ["missing.png", "not found"]),
    "source-is-folder-and-file": (lambda a, b, t: [a, t, "-o", t / "o.png"], 1, ["mix folders and files"]),
    "symlink-loop": (lambda a, b, t: [a, _loop(t), "-o", t / "o.png"], 1, ["loop.png", "not found"]),
    "output-is-a-folder": (lambda a, b, t: [a, b, "-o", t], 2, ["is a folder"]),
    "output-unknown-format": (lambda a, b, t: [a, b, "-o", t / "o.gif"], 2, ["o.gif", "unknown output format"]),
    "output-no-extension": (lambda a, b, t: [a, b, "-o", t / "fused"], 2, ["no extension"]),
    "output-under-a-file": (lambda a, b, t: [a, b, "-o", a / "o.png"], 2, ["cannot write"]),
    "output-deep-new-folder": (lambda a, b, t: [a, b, "-o", t / "n e w" / "d é" / "o.png"], 0, None),
    "unknown-method": (lambda a, b, t: ["-m", "avrage", a, b, "-o", t / "o.png"], 1, ["did you mean"]),
    "bad-param": (lambda a, b, t: ["-p", "levels", a, b, "-o", t / "o.png"], 1, ["KEY=VALUE"]),
    "bit-depth-12": (lambda a, b, t: ["--bit-depth", "12", a, b, "-o", t / "o.png"], 2, ["--bit-depth"]),
    "max-pixels-zero": (lambda a, b, t: ["--max-pixels", "0", a, b, "-o", t / "o.png"], 2, ["--max-pixels"]),
    "one-source": (lambda a, b, t: [a, "-o", t / "o.png"], 1, ["got 1"]),
    "plugin-raises": (lambda a, b, t: ["-m", "raises", a, b, "-o", t / "o.png"], 2, ["the plugin broke"]),
    "plugin-returns-nan": (lambda a, b, t: ["-m", "returns-nan", a, b, "-o", t / "o.png"], 1,
                           ["returns-nan", "corpus", "NaN"]),
    **{f"weights-{k}": ((lambda a, b, t, k=k: ["-m", "refusion", "--task", "ivif", "--weights",
                                                _weights(k, t / f"w-{k}.pth"), a, b, "-o", t / "o.png"]),
                        1, [f"w-{k}.pth"]) for k in ("garbage", "empty", "pickle", "text")},
    "weights-missing": (lambda a, b, t: ["-m", "refusion", "--task", "ivif", "--weights", t / "none.safetensors",
                                         a, b, "-o", t / "o.png"], 1, ["none.safetensors"]),
}


def _loop(folder: Path) -> Path:
    loop = folder / "loop.png"
    loop.symlink_to(loop)
    return loop


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_fuse_hostile_paths_options_plugins_and_weights(run_cli, host, tmp_path, case):
    make, code, needles = PATH_CASES[case]
    a, b = write(tmp_path / "a.png", _grey()), write(tmp_path / "b.png", _grey())
    args = make(a, b, tmp_path)
    if args[0] != "-m":
        args = ["-m", "average", *args]
    before = digest(a, b)
    result = run_cli(["fuse", *args], host=host)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert digest(a, b) == before
    if needles is not None:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and all(n in errors[0] for n in needles), result.stderr
        assert not (tmp_path / "o.png").exists()
    assert not hidden_files(tmp_path)


EVAL_CASES = {
    "fused-truncated": (lambda d, f: f.joinpath("x.png").write_bytes(f.joinpath("x.png").read_bytes()[:50]),
                        1, "cannot read image"),
    "fused-zero-bytes": (lambda d, f: f.joinpath("x.png").write_bytes(b""), 1, "empty file"),
    "fused-wrong-size": (lambda d, f: write(f / "x.png", _grey(8, 8)), 1, "x.png"),
    "fused-missing": (lambda d, f: f.joinpath("x.png").unlink(), 1, "no fused image"),
    "fused-duplicate": (lambda d, f: write(f / "x.jpg", _grey()), 1, "several fused files"),
    "source-truncated": (lambda d, f: d.joinpath("ir", "x.png").write_bytes(b"\x89PNG\r\n"), 1, "cannot read image"),
    "source-huge-header": (lambda d, f: d.joinpath("ir", "x.png").write_bytes(_png_header(70000, 70000)), 1,
                           "megapixels"),
    "source-unpaired": (lambda d, f: write(d / "vi" / "y.png", _grey()), 1, "no source image named 'y'"),
    "hidden-files-skipped": (lambda d, f: [d.joinpath(m, "._x.png").write_bytes(b"\0\5") for m in ("ir", "vi")],
                             0, None),
    "fused-cmyk": (lambda d, f: Image.fromarray(_rgb()).convert("CMYK").save(f / "x.jpg") or
                   f.joinpath("x.png").unlink(), 0, None),
}


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_eval_bad_inputs(run_cli, tmp_path, case):
    damage, code, needle = EVAL_CASES[case]
    data, fused = tmp_path / "data", tmp_path / "fused"
    for mod in ("ir", "vi"):
        write(data / mod / "x.png", _grey())
    write(fused / "x.png", _grey())
    damage(data, fused)
    before = digest(data)
    result = run_cli(["eval", data, "--fused", fused, "--metrics", "en,ssim", "--no-progress",
                      "-o", tmp_path / "s.csv"])
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert digest(data) == before
    if needle is not None:
        assert any(line.startswith("error:") and needle in line for line in result.stderr.splitlines()), \
            result.stderr


API_CASES = {
    "empty-list": ([], InputError, "no sources"),
    "0x5": ([np.zeros((0, 5)), np.zeros((0, 5))], InputError, "empty image"),
    "1d": ([np.zeros(5), np.zeros(5)], InputError, "shape"),
    "4d": ([np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2))], InputError, "shape"),
    "2-channels": ([np.zeros((4, 4, 2)), np.zeros((4, 4, 2))], InputError, "shape"),
    "float-above-1": ([np.full((4, 4), 2.0), np.zeros((4, 4))], InputError, "[0, 1]"),
    "float-nan": ([np.full((4, 4), np.nan), np.zeros((4, 4))], InputError, "[0, 1]"),
    "complex": ([np.zeros((4, 4), complex), np.zeros((4, 4))], InputError, "dtype"),
    "int64": ([np.zeros((4, 4), np.int64), np.zeros((4, 4))], InputError, "dtype"),
    "sizes-differ": ([np.zeros((4, 4)), np.zeros((4, 5))], InputError, "differs"),
    "object": ([np.array([[object()]]), np.zeros((1, 1))], InputError, "dtype"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_arrays(case):
    sources, error, needle = API_CASES[case]
    with pytest.raises(error) as info:
        fusekit.fuse(sources, method="average")
    assert isinstance(info.value, FusekitError) and needle in str(info.value)
    assert "\n" not in str(info.value)
