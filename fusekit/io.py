"""Reading and writing images: the only module that touches image files.

Inside fusekit every image is float32 in [0, 1], ``H x W`` (grey) or
``H x W x 3`` (RGB). Files may be PNG, JPEG, BMP or TIFF, 8- or 16-bit, grey,
grey stored as three equal channels (read as grey), RGB, or RGBA (alpha
dropped with a warning). Writes are atomic: the image goes to a temporary file
in the target folder, which is then renamed over the target, so a failed or
interrupted write never leaves a half-written image.

Examples
--------
>>> img = read_image("examples/data/vi.png")          # doctest: +SKIP
>>> img.dtype, img.min() >= 0, img.max() <= 1          # doctest: +SKIP
(dtype('float32'), True, True)
>>> write_image("out.png", img)                         # doctest: +SKIP
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from . import header
from .datasets import IMAGE_SUFFIXES
from .errors import InputError

#: zlib level of written PNGs (with the Sub filter and run-length strategy, see
#: :func:`_encode_png`): 1, OpenCV's default; about 8x faster than Pillow's default
#: (level 6, adaptive filters) for files about 10% larger. PNG is lossless: same pixels.
PNG_COMPRESS_LEVEL = 1

#: Channels differing by at most this much (on a 0-255 scale) count as grey;
#: JPEG compression leaves one-level differences in grey images stored as RGB.
_GREY_TOLERANCE_8BIT = 2


class FusekitWarning(UserWarning):
    """Something was changed in the input that the user should know about."""


@dataclass(frozen=True)
class LoadedImage:
    """An image read from disk.

    Attributes
    ----------
    data : ndarray
        float32 in [0, 1], ``H x W`` or ``H x W x 3``.
    bit_depth : int
        8 or 16: the sample depth stored in the file.
    path : Path
        Where it was read from.
    """

    data: np.ndarray
    bit_depth: int
    path: Path


def load_image(path: str | os.PathLike, *, near_grey: str = "mean") -> LoadedImage:
    """Read an image file with its bit depth.

    Parameters
    ----------
    path : path-like
        PNG, JPEG, BMP or TIFF file.
    near_grey : {"mean", "keep"}
        What to do with three channels that differ by at most 2 levels (grey
        content with JPEG noise): average them (default), or keep the RGB
        data (metrics that reproduce a script's own grey conversion need it).
        Exactly equal channels are always read as grey.

    Returns
    -------
    LoadedImage
        Data as float32 in [0, 1]; ``H x W`` if the file is grey (or three
        equal channels), else ``H x W x 3``.

    Raises
    ------
    InputError
        The file is missing, unreadable, truncated, or holds an unsupported
        layout (the message names the file and the fix).
    """
    path = Path(path)
    if near_grey not in ("mean", "keep"):
        raise InputError(f"near_grey must be 'mean' or 'keep', got {near_grey!r}")
    _check_file(path)
    with header.opened(path) as found:  # one open and parse of the file, for its header and its pixels
        head = found.header
        if head is not None:
            header.check_size(path, head)  # before decoding: a huge image must not exhaust memory
            if head.frames > 1:
                warnings.warn(f"{path}: holds {head.frames} pages; using page 1 (save the page you want "
                              "as its own file)", FusekitWarning, stacklevel=2)
        raw = _decode(path, found)
    if head is not None and head.orientation != 1:
        raw = header.orient(raw, head.orientation)  # phone photos: EXIF says how to turn them upright
    return LoadedImage(*_normalise(raw, path, near_grey == "keep"), path=path)


def _check_file(path: Path) -> None:
    """Refuse a missing file, a folder or an empty file, with one ``stat`` call.

    The checks and words of ``Path.exists``, ``Path.is_dir`` and
    ``Path.stat().st_size`` in that order; an error ``Path.exists`` would
    not hide (a folder without search permission, say) propagates as it did.

    Parameters
    ----------
    path : Path

    Raises
    ------
    InputError
        The file is missing, a folder, or empty.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno not in _MISSING_ERRNOS and getattr(exc, "winerror", None) not in _MISSING_WINERRORS:
            raise
        st = None
    except ValueError:  # a name Path.exists cannot check (a NUL byte): missing, as it says
        st = None
    if st is None:
        raise InputError(f"{path}: file not found; check the path")
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a folder, expected an image file")
    if st.st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes); was it copied completely?")


#: The errors ``Path.exists`` reads as "does not exist" (pathlib's ``_IGNORED_ERRNOS``).
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})
_MISSING_WINERRORS = frozenset({21, 123, 1921})


def _decode(path: Path, found: header.Opened) -> np.ndarray:
    """Decode the pixels of ``path`` as the file stores them (uint8/uint16/float/bool array).

    Single-page 8-bit PNG, JPEG, BMP and lossless TIFF, grey or RGB(A), are
    decoded by Pillow from ``found.image``, the image its header was read
    from; every other layout by its own decoder.

    Parameters
    ----------
    path : Path
    found : header.Opened
        The file opened by :func:`fusekit.header.opened`.

    Returns
    -------
    ndarray

    Raises
    ------
    InputError
        The decoder failed (one line naming the file and the fix).
    """
    head, img = found.header, found.image
    try:
        with header.pillow_unlimited():
            if head is not None and head.mode == "CMYK":
                raw = header.decode_cmyk(path)  # imageio would give the inks as RGB + alpha
            elif _is_48_or_64_bit_png(path, img):
                raw = _read_png16_colour(path)  # Pillow would truncate it to 8 bits
            elif path.suffix.lower() in (".tif", ".tiff") and (plain := _read_plain_tiff(path, head, found)) is not None:
                raw = plain
            elif path.suffix.lower() in (".tif", ".tiff") or (head is not None and head.frames > 1):
                import imageio.v3 as iio

                raw = np.asarray(iio.imread(path, index=0, plugin=_decoder(path)))
            elif (plain := _read_plain_8bit(path, head, found)) is not None:
                raw = plain
            else:
                import imageio.v3 as iio

                raw = np.asarray(iio.imread(path, plugin=_decoder(path)))
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this image; free memory or lower "
                         f"{header.MAX_PIXELS_ENV}") from None
    except Exception as exc:  # imageio raises many types for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "can not handle the given uri" in reason:  # imageio's words when no decoder knows the bytes
            reason = "not a format fusekit reads"
        raise InputError(
            f"{path}: cannot read image ({reason}); is it a complete PNG, JPEG, BMP or TIFF file?"
        ) from None
    return raw


#: TIFF compressions that Pillow decodes losslessly in C (tifffile, without the optional
#: imagecodecs, decodes PackBits and LZW in pure Python: about 15 ms for a 536x356 RGB image).
_PILLOW_TIFF_COMPRESSIONS = frozenset({"raw", "packbits", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate"})


def _read_plain_tiff(path: Path, head: header.Header | None, found: header.Opened | None = None) -> np.ndarray | None:
    """Pixels of a single-page 8-bit grey or RGB TIFF with a lossless compression, by Pillow.

    The same values as tifffile gives (checked on every TIFF of the shared
    data sets), several times faster. ``None`` for any other layout, or if
    Pillow fails: tifffile then decodes the file.

    Parameters
    ----------
    path : Path
    head : Header or None
        The file's header (:func:`fusekit.header.read_header`).
    found : header.Opened, optional
        The file as :func:`fusekit.header.opened` opened it: its image is
        decoded instead of opening the file again.

    Returns
    -------
    ndarray or None
        ``H x W`` or ``H x W x 3`` uint8 (read-only: the caller converts it).
    """
    if head is None or head.frames != 1 or head.mode not in ("L", "RGB"):
        return None
    try:
        with _pillow_image(path, found) as img:
            if img.mode != head.mode or img.info.get("compression") not in _PILLOW_TIFF_COMPRESSIONS:
                return None
            bits = img.tag_v2.get(258, (8,))  # BitsPerSample: Pillow reads 48-bit RGB as 8-bit "RGB"
            if any(b != 8 for b in (bits if isinstance(bits, tuple) else (bits,))):
                return None
            img.load()
            return np.asarray(img)
    except Exception:  # noqa: BLE001 - tifffile gets its turn and reports what is wrong
        return None


#: Formats and modes :func:`_read_plain_8bit` reads with Pillow alone.
_PLAIN_FORMATS = frozenset({"PNG", "JPEG", "BMP"})
_PLAIN_MODES = frozenset({"L", "RGB", "RGBA"})


def _read_plain_8bit(path: Path, head: header.Header | None, found: header.Opened | None = None) -> np.ndarray | None:
    """Pixels of a single-frame 8-bit grey, RGB or RGBA PNG, JPEG or BMP, by Pillow directly.

    For these layouts imageio's Pillow plugin returns ``np.asarray`` of the
    decoded image, as this does (checked on every PNG, JPEG and BMP of the
    shared data sets), without importing imageio (about 25 ms of CPU, which
    also imports ``importlib.metadata``). Any other layout (palette, 1-bit, 16-bit, CMYK, animated), or a file
    Pillow fails on, gives ``None``: imageio then decodes it and reports
    what is wrong in the usual words.

    Parameters
    ----------
    path : Path
    head : Header or None
        The file's header (:func:`fusekit.header.read_header`).
    found : header.Opened, optional
        The file as :func:`fusekit.header.opened` opened it: its image is
        decoded instead of opening the file again.

    Returns
    -------
    ndarray or None
        ``H x W`` or ``H x W x 3|4`` uint8 (read-only: the caller converts it).
    """
    if head is None or head.frames != 1 or head.mode not in _PLAIN_MODES:
        return None
    try:
        with _pillow_image(path, found) as img:
            if img.mode != head.mode or img.format not in _PLAIN_FORMATS or getattr(img, "n_frames", 1) != 1:
                return None
            img.load()
            return np.asarray(img)
    except Exception:  # noqa: BLE001 - imageio gets its turn and reports what is wrong
        return None


@contextmanager
def _pillow_image(path: Path, found: header.Opened | None) -> Iterator:
    """The Pillow image of ``path``: the one ``found`` holds (once), else the file opened anew.

    A held image is handed out once (its held-back warnings given again, as
    opening anew would give them) and stays open until ``found`` closes it;
    one opened here is closed on exit.
    """
    if found is not None and found.image is not None:
        img, found.image = found.image, None
        try:
            found.warn_again()
            yield img
        finally:
            img.close()
        return
    from PIL import Image

    with Image.open(path) as img:
        yield img


def _decoder(path: Path) -> str:
    """The imageio plugin for ``path``: tifffile for TIFF, Pillow for everything else.

    Naming it keeps imageio from trying every plugin it has (DICOM, FITS,
    video readers...) on a file that is not what its name says.
    """
    return "tifffile" if path.suffix.lower() in (".tif", ".tiff") else "pillow"


def read_image(path: str | os.PathLike, *, near_grey: str = "mean") -> np.ndarray:
    """Read an image as float32 in [0, 1] (``H x W`` or ``H x W x 3``).

    See :func:`load_image` for the rules; this returns only the pixels.
    """
    return load_image(path, near_grey=near_grey).data


def _normalise(raw: np.ndarray, path: Path, keep_near_grey: bool = False) -> tuple[np.ndarray, int]:
    """Convert decoded file data to float32 [0, 1] grey or RGB, and its bit depth."""
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        warnings.warn(f"{path}: alpha channel dropped", FusekitWarning, stacklevel=3)
        raw = raw[..., :-1]
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] != 3):
        raise InputError(
            f"{path}: unsupported image layout {raw.shape}; expected grey, RGB or RGBA"
        )
    if raw.dtype == np.uint8 or raw.dtype == bool:
        bit_depth = 8
    elif raw.dtype == np.uint16:
        bit_depth = 16
    elif raw.dtype.kind == "f":
        bit_depth = 16
        if raw.size and (not np.isfinite(raw).all() or raw.min() < 0 or raw.max() > 1):
            raise InputError(f"{path}: floating-point image outside [0, 1]; rescale it to [0, 1]")
    else:
        raise InputError(f"{path}: unsupported sample type {raw.dtype}; save it as 8- or 16-bit")
    if raw.dtype == np.uint8:
        return _normalise_8bit(raw, keep_near_grey), bit_depth
    from skimage.util import img_as_float32

    data = img_as_float32(raw)
    if data.ndim == 3:
        # element-wise over channel views: much faster than reducing along the short last axis
        c0, c1, c2 = data[..., 0], data[..., 1], data[..., 2]
        if np.array_equal(c0, c1) and np.array_equal(c1, c2):
            data = c0
        elif not keep_near_grey:
            spread = np.maximum(np.maximum(c0, c1), c2) - np.minimum(np.minimum(c0, c1), c2)
            if float(spread.max(initial=0.0)) <= _GREY_TOLERANCE_8BIT / 255.0 + 1e-6:
                data = data.mean(axis=2)
    return np.ascontiguousarray(data, dtype=np.float32), bit_depth


def _normalise_8bit(raw: np.ndarray, keep_near_grey: bool) -> np.ndarray:
    """:func:`_normalise`'s float32 data for uint8 samples, the grey checks done on the 8-bit values.

    The same arrays as converting first and comparing the floats (the map
    ``v -> float32(v * float32(1/255))`` keeps every order and difference of
    the 256 levels, and a spread of ``2 / 255`` in floats is one of 2 levels),
    for one pass of conversion: the channels are compared on uint8 blocks,
    stopping at the first block that decides (a colour image: its first
    rows), and only the plane returned is converted.

    Parameters
    ----------
    raw : ndarray of uint8
        ``H x W`` or ``H x W x 3`` (any strides).
    keep_near_grey : bool
        Keep RGB whose channels differ by at most 2 levels (else their mean).

    Returns
    -------
    ndarray of float32
        C-contiguous, in [0, 1]: scikit-image's ``img_as_float32``.
    """
    scale = 1.0 / 255  # scikit-image's img_as_float32 for uint8, without importing it
    if raw.ndim == 3:
        kind = _grey_kind(raw, -1 if keep_near_grey else _GREY_TOLERANCE_8BIT)
        if kind == _EQUAL:
            raw = raw[..., 0]
        elif kind == _NEAR:
            return np.ascontiguousarray(np.multiply(raw, scale, dtype=np.float32).mean(axis=2), dtype=np.float32)
    data = np.multiply(raw, scale, dtype=np.float32)
    return data if data.flags.c_contiguous else np.ascontiguousarray(data)


#: What :func:`_grey_kind` finds: three equal channels, channels within the tolerance, colour.
_EQUAL, _NEAR, _COLOUR = 0, 1, 2

#: Pixels in the first block :func:`_grey_kind` compares (the blocks then double).
_GREY_BLOCK = 1 << 14


def _grey_kind(rgb: np.ndarray, tolerance: int) -> int:
    """Whether an ``H x W x 3`` uint8 image is grey: equal channels, near-equal ones, or colour.

    Compares row blocks that double in size, stopping at the first block
    with a colour pixel, so a colour image costs a look at its first rows.

    Parameters
    ----------
    rgb : ndarray of uint8
        ``H x W x 3``.
    tolerance : int
        Largest channel spread (levels) that counts as near-grey; negative:
        only exactly equal channels count.

    Returns
    -------
    int
        :data:`_EQUAL`, :data:`_NEAR` or :data:`_COLOUR`.
    """
    height, width = rgb.shape[:2]
    rows = max(1, _GREY_BLOCK // max(width, 1))
    kind = _EQUAL
    start = 0
    while start < height:
        block = rgb[start:start + rows]
        c0, c1, c2 = block[..., 0], block[..., 1], block[..., 2]
        if kind == _EQUAL and not (np.array_equal(c0, c1) and np.array_equal(c1, c2)):
            if tolerance < 0:
                return _COLOUR
            kind = _NEAR  # the blocks before were equal: spread 0
        if kind == _NEAR:
            spread = np.maximum(np.maximum(c0, c1), c2)
            np.subtract(spread, np.minimum(np.minimum(c0, c1), c2), out=spread)   # max >= min: no wrap
            if int(spread.max(initial=0)) > tolerance:
                return _COLOUR
        start += rows
        rows *= 2
    return kind


def write_image(path: str | os.PathLike, image: np.ndarray, bit_depth: int = 8) -> Path:
    """Write ``image`` atomically.

    Parameters
    ----------
    path : path-like
        Target file; the extension picks the format. Missing parent folders
        are created.
    image : ndarray
        float in [0, 1] (values outside are clipped), ``H x W`` or
        ``H x W x 3``.
    bit_depth : {8, 16}
        Sample depth. Formats without 16-bit support (JPEG, BMP) are written
        as 8-bit with a warning.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    InputError
        Unknown extension, or the folder cannot be created or written.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_SUFFIXES:
        raise InputError(
            f"{path}: unknown output format {ext or '(no extension)'!r}; use one of "
            + ", ".join(IMAGE_SUFFIXES)
        )
    if bit_depth not in (8, 16):
        raise InputError(f"{path}: bit depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and ext in (".jpg", ".jpeg", ".bmp"):
        warnings.warn(f"{path}: {ext} holds 8 bits only; writing 8-bit (use .png or .tif for 16-bit)",
                      FusekitWarning, stacklevel=2)
        bit_depth = 8
    if bit_depth == 16:
        from skimage.util import img_as_uint

        pixels = img_as_uint(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0))
    else:
        pixels = _to_ubyte(np.asarray(image, dtype=np.float32))  # clips as it scales: one float copy
    # encode in memory, then write the bytes ourselves: a short write (full disk, quota) is an
    # error here, while Pillow's encoders could leave a truncated file and report success
    try:
        if ext == ".png" and (pixels.ndim == 2 or pixels.shape[2] == 3):
            encoded = _encode_png(pixels)
        else:
            import imageio.v3 as iio

            encoded = iio.imwrite("<bytes>", pixels, extension=ext)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot write image (encoding {ext} failed: {reason}); "
                         "try .png or .tif") from None
    write_bytes_atomic(path, encoded)
    return path


def _to_ubyte(values: np.ndarray) -> np.ndarray:
    """scikit-image's ``img_as_ubyte`` of ``values`` clipped to [0, 1], without importing it.

    The product by 255 in float32, clipped to [0, 255], rounded half to
    even, cast: for values in [0, 1] the steps of ``img_as_ubyte`` (there the
    clip comes after the rounding, which then changes nothing), and for any
    others the bytes of clipping to [0, 1] first (``255 * clip(v, 0, 1) ==
    clip(255 * v, 0, 255)`` in float32), without that clipped copy.

    Parameters
    ----------
    values : ndarray of float32

    Returns
    -------
    ndarray of uint8
    """
    scaled = np.multiply(values, 255, dtype=np.float32)
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


#: Temporary files of atomic writes: ``.<stem>.fusekit-<pid>-<random><ext>`` (see :func:`remove_stale_temps`).
_TEMP_NAME = re.compile(r"^\..*\.fusekit-(?P<pid>\d+)-[A-Za-z0-9_]+\.[A-Za-z0-9]+$")


@contextmanager
def atomic_file(path: str | os.PathLike, what: str = "file") -> Iterator[Path]:
    """Give a temporary path in ``path``'s folder; on success it is renamed over ``path``.

    The one atomic-write helper: every output fusekit writes (images,
    reports, cache records, weights, checkpoints) goes through it, so a
    reader never sees a half-written file. The temporary file is hidden,
    names the writing process (``.<stem>.fusekit-<pid>-<random><ext>``), has
    the mode the umask gives new files, and is removed on any failure or
    interruption (Ctrl-C, SIGTERM in a worker); one left by a killed process
    is removed by :func:`remove_stale_temps` on the next run.

    Parameters
    ----------
    path : path-like
        Target file; missing parent folders are created.
    what : str
        What the file is, for the message (``"image"``, ``"checkpoint"``).

    Yields
    ------
    Path
        The temporary file (it exists, empty): write it completely.

    Raises
    ------
    InputError
        The folder cannot be created or written, or the disk is full; the
        message names the file and the fix.

    Examples
    --------
    >>> with atomic_file("weights.safetensors", what="weights") as tmp:  # doctest: +SKIP
    ...     save_file(tensors, str(tmp))
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.fusekit-{os.getpid()}-", suffix=path.suffix,
                                        dir=folder)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot write to folder {folder} ({exc.strerror or exc}); choose a writable output path"
        ) from None
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a written file follows the umask
        finally:
            os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:  # errors and interrupts alike: never leave the temporary file
        tmp.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        reason = exc.strerror or str(exc)
        raise InputError(f"{path}: cannot write {what} ({reason}); check free space and permissions") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "image") -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`).

    Parameters
    ----------
    path : path-like
        Target file; missing parent folders are created.
    data : bytes
    what : str
        What the file is, for the message (``"image"``, ``"report"``).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The folder cannot be created or written, or the disk is full; the
        message names the file and the fix.
    """
    with atomic_file(path, what) as tmp:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (a filling disk): go on, or fail
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return Path(path)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files that killed fusekit processes left in ``folder``.

    Only files named like :func:`write_bytes_atomic`'s temporaries whose
    process no longer runs are removed; another fusekit run writing to the
    same folder keeps its own.

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    list of Path
        The files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or _process_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def current_umask() -> int:
    """The process's file-mode creation mask, without changing it.

    Read from ``/proc/self/status`` where Linux provides it; elsewhere set
    and restored at once (``os.umask`` can only be read by setting it).

    Returns
    -------
    int
        The mask, e.g. ``0o022``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _encode_png(pixels: np.ndarray) -> bytes:
    """Encode a grey (``H x W``) or RGB (``H x W x 3``) uint8 or uint16 image as PNG.

    Each row is stored with PNG's Sub filter (the difference to the pixel on
    its left) and compressed by zlib at level :data:`PNG_COMPRESS_LEVEL` with
    the run-length strategy: the settings of OpenCV's ``cv2.imwrite``, about
    2.5x faster than Pillow at the same level, for files of about the same
    size. Written here, not by Pillow, also because Pillow has no 16-bit RGB
    mode; the format (ISO/IEC 15948) is simple enough to write directly.
    """
    import struct
    import zlib

    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    step = channels * depth // 8                                     # bytes per pixel
    data = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8)
    rows = data.reshape(h, w * channels).view(np.uint8)              # 16-bit: big-endian bytes
    filtered = np.empty((h, 1 + rows.shape[1]), np.uint8)
    filtered[:, 0] = 1                                               # filter type 1: Sub
    filtered[:, 1:1 + step] = rows[:, :step]
    np.subtract(rows[:, step:], rows[:, :-step], out=filtered[:, 1 + step:])   # modulo 256
    packer = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = packer.compress(filtered.data) + packer.flush()
    header = struct.pack(">IIBBBBB", w, h, depth, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def _is_48_or_64_bit_png(path: Path, image=None) -> bool:
    """Whether ``path`` is a PNG with 16-bit RGB or RGBA samples (read from its IHDR chunk).

    Parameters
    ----------
    path : Path
    image : PIL.Image.Image, optional
        ``path`` opened by Pillow: a file it opened as JPEG, BMP or TIFF is
        none (their signatures differ from PNG's), and for a PNG the chunk
        is read from its open file.
    """
    if image is not None:
        if image.format in ("JPEG", "BMP", "TIFF"):
            return False
        fp = getattr(image, "fp", None)
        if image.format == "PNG" and fp is not None and hasattr(os, "pread"):
            try:
                head = os.pread(fp.fileno(), 26, 0)   # the file's position stays where Pillow left it
            except (OSError, AttributeError, ValueError):
                pass
            else:
                return _ihdr_is_16bit_colour(head)
    with open(path, "rb") as fh:
        head = fh.read(26)
    return _ihdr_is_16bit_colour(head)


def _ihdr_is_16bit_colour(head: bytes) -> bool:
    """Whether the first 26 bytes of a file are a PNG signature and an IHDR of 16-bit RGB or RGBA."""
    return (len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
            and head[24] == 16 and head[25] in (2, 6))


def _read_png16_colour(path: Path) -> np.ndarray:
    """Decode a 16-bit RGB(A) PNG with pypng: ``H x W x 3|4`` uint16."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return data.reshape(height, width, info["planes"])
