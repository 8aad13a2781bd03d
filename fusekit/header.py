"""What an image file says about itself before its pixels are decoded.

:func:`read_header` reads the size, page count, colour mode and EXIF
orientation from the file header (Pillow reads only the header on
``open``; TIFF files Pillow cannot parse fall back to tifffile), so that
:mod:`fusekit.io` can refuse an image too large for memory before
decoding it, convert CMYK instead of reading ink as RGB, turn phone photos
upright, and say which page of a multi-page TIFF it uses.

The pixel limit (:func:`max_pixels`) is ``$FUSEKIT_MAX_PIXELS`` or
:data:`DEFAULT_MAX_PIXELS`; the command line's ``--max-pixels`` sets that
variable for the run, so worker processes see the same limit.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError, UsageError

#: Default limit on width x height of one image: about 100 megapixels, which
#: decodes to a few GB as float32 RGB and intermediate copies.
DEFAULT_MAX_PIXELS = 100_000_000

#: Environment variable that raises (or lowers) the limit.
MAX_PIXELS_ENV = "FUSEKIT_MAX_PIXELS"

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Header:
    """Facts from an image file's header.

    Attributes
    ----------
    width, height : int
        Size in pixels, as stored (before any EXIF rotation).
    frames : int
        Pages (TIFF) or frames (animated PNG) in the file.
    mode : str
        Pillow's colour mode (``"L"``, ``"RGB"``, ``"CMYK"``, ...), or ``""``
        when read by tifffile.
    orientation : int
        EXIF orientation 1-8 (1: as stored).
    """

    width: int
    height: int
    frames: int = 1
    mode: str = ""
    orientation: int = 1


def max_pixels() -> int:
    """The largest width x height fusekit decodes: ``$FUSEKIT_MAX_PIXELS`` or the default.

    Raises
    ------
    UsageError
        The variable is set but is not a positive integer.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} is not a positive number of "
                         "pixels; set e.g. 400000000, or unset it for the default")
    return value


@contextmanager
def pillow_unlimited() -> Iterator[None]:
    """Switch off Pillow's own decompression-bomb limit for a header or an image already checked.

    Pillow warns above about 89 megapixels and refuses above twice that,
    whatever ``--max-pixels`` says; fusekit applies :func:`max_pixels` itself.
    """
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_header(path: str | os.PathLike) -> Header | None:
    """Read the header of an image file without decoding its pixels.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Header or None
        ``None`` if neither Pillow nor (for TIFF) tifffile can parse the
        header; the decoder then reports what is wrong with the file.
    """
    with opened(path) as found:
        return found.header


@dataclass
class Opened:
    """An image file opened by Pillow once (:func:`opened`).

    Attributes
    ----------
    image : PIL.Image.Image or None
        The opened image, not loaded; ``None`` where Pillow cannot parse
        the header, or where reading the header already decoded the pixels
        (a PNG with its EXIF block after the image data): the reader then
        opens the file itself.
    header : Header or None
        As :func:`read_header` returns it.
    warnings : list of warnings.WarningMessage
        What Pillow warned while opening the file, held back (the header
        read ignores them); :meth:`warn_again` gives them when the pixels
        are decoded from :attr:`image`, as a second ``Image.open`` would.
    """

    image: object | None
    header: Header | None
    warnings: list = field(default_factory=list)

    def warn_again(self) -> None:
        """Give the held-back warnings, each from the place in Pillow that gave it."""
        for w in self.warnings:
            module = next((m for m in list(sys.modules.values())
                           if getattr(m, "__file__", None) == w.filename), None)
            if module is None:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=module.__name__,
                                       registry=module.__dict__.setdefault("__warningregistry__", {}),
                                       module_globals=module.__dict__)
        self.warnings = []


@contextmanager
def opened(path: str | os.PathLike) -> Iterator[Opened]:
    """Open an image file with Pillow once: its header, and the open image to decode.

    What :func:`read_header` reads, with the Pillow image it was read from
    still open, so that the reader decodes the pixels from it instead of
    opening and parsing the file a second time (about 0.1-0.2 ms a file).

    Parameters
    ----------
    path : path-like

    Yields
    ------
    Opened
        The image (closed on exit) and its header.
    """
    from PIL import Image

    path = Path(path)
    img = None
    head = None
    reusable = False
    parsed = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with pillow_unlimited():
                img = Image.open(path)
                parsed = len(caught)  # opening gave these; a second open would give them again
                width, height = img.size
                frames = int(getattr(img, "n_frames", 1) or 1)
                try:
                    exif, decoded = _read_exif(img, path)
                    reusable = not decoded
                    orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
                except Exception:  # a broken EXIF block is no reason to refuse the pixels
                    orientation = 1
                head = Header(width, height, frames, img.mode, orientation if 1 <= orientation <= 8 else 1)
        except Exception:
            if img is not None:
                img.close()
            img = None
    if head is None and path.suffix.lower() in (".tif", ".tiff"):
        head = _tiff_header(path)
    if img is not None and not reusable:
        img.close()
        img = None
    result = Opened(img, head, list(caught[:parsed]) if img is not None else [])
    try:
        yield result
    finally:
        if img is not None:
            img.close()


def _exif(img, path: Path):
    """The EXIF tags of an open image, without decoding a PNG's pixels where it has none.

    Pillow's ``getexif`` on a PNG whose ``eXIf`` chunk was not met before
    the image data decodes the whole image to look for one after it (the
    pixels are then decoded a second time by the reader). The chunk list
    says whether there is one, for the cost of a few seeks.

    Parameters
    ----------
    img : PIL.Image.Image
        Opened, not loaded.
    path : Path
        Its file.

    Returns
    -------
    Mapping
        Tag number to value; empty for a PNG without an ``eXIf`` chunk.
    """
    return _read_exif(img, path)[0]


def _read_exif(img, path: Path) -> tuple:
    """:func:`_exif`, and whether finding the block decoded the pixels.

    Parameters
    ----------
    img : PIL.Image.Image
        Opened, not loaded.
    path : Path
        Its file.

    Returns
    -------
    exif : Mapping
        As :func:`_exif` returns it.
    decoded : bool
        ``True`` for a PNG whose ``eXIf`` chunk comes after the image data:
        Pillow decoded the image to reach it.
    """
    if img.format == "PNG" and "exif" not in img.info:
        if not _png_has_chunk(path, b"eXIf"):
            return {}, False
        return img.getexif(), True
    return img.getexif(), False


def _png_has_chunk(path: Path, kind: bytes) -> bool:
    """Whether the PNG file holds a chunk of type ``kind`` (chunk headers read, data skipped).

    Parameters
    ----------
    path : Path
    kind : bytes
        Four-letter chunk type, e.g. ``b"eXIf"``.

    Returns
    -------
    bool
        ``True`` also where the chunk list cannot be followed to ``IEND``
        (a damaged file: Pillow then decides).
    """
    import struct

    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return True
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return True
            length, found = struct.unpack(">I4s", head)
            if found == kind:
                return True
            if found == b"IEND":
                return False
            fh.seek(length + 4, 1)  # data and CRC


def _tiff_header(path: Path) -> Header | None:
    """A TIFF header by tifffile (float, 16-bit colour and other layouts Pillow cannot open)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return Header(int(page.imagewidth), int(page.imagelength), len(tif.pages))
    except Exception:
        return None


def check_size(path: str | os.PathLike, header: Header) -> None:
    """Raise :class:`InputError` if the image is above :func:`max_pixels`.

    Parameters
    ----------
    path : path-like
        For the message.
    header : Header
    """
    limit = max_pixels()
    pixels = header.width * header.height
    if pixels > limit:
        raise InputError(
            f"{path}: {header.width}x{header.height} is {_megapixels(pixels)} megapixels, above the limit of "
            f"{limit / 1e6:g}; if this machine has the memory, raise it with --max-pixels "
            f"{_suggest(pixels)} or {MAX_PIXELS_ENV}={_suggest(pixels)}")


def _megapixels(pixels: int) -> str:
    """``pixels`` in megapixels for a message: whole from 10 up, else 2 significant digits (0.31, 4.2)."""
    mp = pixels / 1e6
    return f"{mp:.0f}" if mp >= 9.95 else f"{mp:.2g}"


def _suggest(pixels: int) -> int:
    """A round limit just above ``pixels``."""
    step = 10 ** max(0, len(str(pixels)) - 2)
    return (pixels // step + 1) * step


def orient(raw: np.ndarray, orientation: int) -> np.ndarray:
    """Turn decoded pixels upright by their EXIF orientation (as Pillow's ``exif_transpose``).

    Parameters
    ----------
    raw : ndarray
        ``H x W`` or ``H x W x C`` pixels as stored.
    orientation : int
        EXIF orientation 1-8.

    Returns
    -------
    ndarray
        The upright view (a copy where needed is made later by the caller).
    """
    if orientation == 2:
        return raw[:, ::-1]
    if orientation == 3:
        return raw[::-1, ::-1]
    if orientation == 4:
        return raw[::-1]
    if orientation == 5:
        return raw.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(raw, -1)
    if orientation == 7:
        return np.rot90(raw, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(raw, 1)
    return raw


def decode_cmyk(path: str | os.PathLike) -> np.ndarray:
    """Decode a CMYK image (print JPEG or TIFF) to ``H x W x 3`` uint8 RGB with Pillow.

    imageio hands back the four ink channels, which read as RGB plus alpha
    give inverted colours; Pillow's conversion undoes Adobe's inverted
    storage and maps ink to light.
    """
    from PIL import Image

    with pillow_unlimited(), Image.open(path) as img:  # already checked against max_pixels()
        return np.asarray(img.convert("RGB"))
