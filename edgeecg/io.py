"""Reading input images safely: size checked from the header before decoding, every format made BGR uint8.

OpenCV decodes a 30000x30000 PNG of 100 KB into 2.7 GB without complaint (docs/design.md section 7), so
`read_image` parses the width and height from the file header itself (PNG, JPEG, BMP, GIF, WebP, TIFF)
and refuses images over a pixel limit before any decoder runs.
"""

from __future__ import annotations

import glob
import logging
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeecg.errors import InputError

log = logging.getLogger(__name__)

#: Default decompression-bomb guard: 50 megapixels (a 12 MP phone photo is far below it).
DEFAULT_MAX_PIXELS = 50_000_000

#: File name extensions taken from a directory argument.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff"}
)

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: format name, width, height (pixels)."""

    format: str
    width: int
    height: int


# -- header parsing --------------------------------------------------------------------------------
# Hand-written on purpose: the runtime depends on numpy, OpenCV and ONNX Runtime only. The closest library,
# imagesize (2.0, MIT), would add a dependency, turns every failure into (-1, -1) where the guard wants to
# say what is wrong, and fetches http(s) URLs given as a path. OpenCV has no header-only read.
def _png(data: bytes) -> ImageHeader:
    # 8-byte signature, then the IHDR chunk: length, "IHDR", width, height (big-endian)
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InputError("truncated PNG header")
    w, h = struct.unpack(">II", data[16:24])
    return ImageHeader("PNG", w, h)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> ImageHeader:
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise InputError("corrupt JPEG (bad segment marker)")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        if i + 2 > n:
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if marker in _SOF:
            if i + 7 > n:
                break
            h, w = struct.unpack(">HH", data[i + 3 : i + 7])
            return ImageHeader("JPEG", w, h)
        i += length
    raise InputError("truncated or corrupt JPEG (no frame header)")


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise InputError("truncated BMP header")
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        w, h = struct.unpack("<HH", data[18:22])
    else:
        w, h = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", abs(w), abs(h))  # negative height means top-down rows


def _gif(data: bytes) -> ImageHeader:
    if len(data) < 10:
        raise InputError("truncated GIF header")
    w, h = struct.unpack("<HH", data[6:10])
    return ImageHeader("GIF", w, h)


def _webp(data: bytes) -> ImageHeader:
    if len(data) < 30:
        raise InputError("truncated WebP header")
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the 3-byte frame tag and start code
        w, h = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":  # lossless: signature byte, then 14 bits each of width-1 and height-1
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", w, h)
    raise InputError(f"unsupported WebP chunk {chunk!r}")


def _tiff(data: bytes) -> ImageHeader:
    end = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
        size: dict[int, int] = {}
        for k in range(count):
            entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, typ = struct.unpack(end + "HH", entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                fmt = end + ("H" if typ == 3 else "I")
                size[tag] = struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    except struct.error:
        raise InputError("truncated TIFF header") from None
    if 256 not in size or 257 not in size:
        raise InputError("TIFF header has no image size")
    return ImageHeader("TIFF", size[256], size[257])


def read_header(data: bytes) -> ImageHeader:
    """Format and size from the first bytes of an image file.

    Args:
        data: the file's bytes (the first few KB suffice for every format but JPEG with large EXIF).

    Raises:
        InputError: not a supported image format, or a header too short or corrupt to read.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    raise InputError("not an image (expected PNG, JPEG, BMP, GIF, WebP or TIFF)")


def _check_complete(fmt: str, data: bytes) -> None:
    """Catch truncation that decoders paper over (libjpeg fills a cut-off JPEG with grey)."""
    if fmt == "JPEG":
        sos = data.find(b"\xff\xda")
        if sos < 0 or data.rfind(b"\xff\xd9") < sos:
            raise InputError("truncated JPEG (no end-of-image marker after the scan)")
    elif fmt == "PNG" and data.rfind(b"IEND") < 0:
        raise InputError("truncated PNG (no IEND chunk)")


# -- conversion --------------------------------------------------------------------------------
def to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded image (grey, grey+alpha, BGR, BGRA; uint8, uint16 or float) as BGR uint8.

    16-bit values are scaled to 8 bits; alpha is composited on white (paper is white).
    """
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535  # round to nearest 8-bit level
        img = img.astype(np.uint8)
    elif img.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(img)) <= 1.0 else 255.0
        img = np.clip(np.nan_to_num(img) * (255.0 / top), 0, 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return np.ascontiguousarray(img)
    if channels in (2, 4):
        colour = img[:, :, :-1]
        if channels == 2:
            colour = cv2.cvtColor(np.ascontiguousarray(colour[:, :, 0]), cv2.COLOR_GRAY2BGR)
        alpha = img[:, :, -1:].astype(np.float32) * np.float32(1 / 255)  # [H, W, 1]
        out = colour.astype(np.float32) * alpha + np.float32(255.0) * (1.0 - alpha)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    raise InputError(f"unsupported channel count {channels}")


# -- public API --------------------------------------------------------------------------------
def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as BGR uint8, refusing bad or oversized files with a one-line InputError.

    The size is read from the header and checked against `max_pixels` before the decoder runs.
    16-bit images are scaled to 8 bits, grey and palette images expanded to BGR, and transparent
    images composited on white. JPEG EXIF orientation is applied (as OpenCV's colour decode does).

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (0 or negative disables the check).

    Returns:
        uint8 array [H, W, 3] in BGR order.

    Raises:
        InputError: missing file, directory, empty file, not an image, truncated or corrupt, too large.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from None
    return decode_image(data, max_pixels, str(path))


class TooLarge(InputError):
    """An image over the pixel limit (a service answers it with 413, not 400)."""


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> np.ndarray:
    """Decode an image file's bytes as BGR uint8, with `read_image`'s checks: the header's size against
    `max_pixels` before the decoder runs, truncation, corruption. Errors start with `name`.

    Raises:
        InputError: empty, not an image, truncated or corrupt; TooLarge (an InputError) over the limit.
    """
    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    try:
        head = read_header(data)
    except InputError as err:
        raise InputError(f"{name}: {err}") from None
    if head.width <= 0 or head.height <= 0:
        raise InputError(f"{name}: {head.format} header gives an empty size {head.width}x{head.height}")
    pixels = head.width * head.height
    if max_pixels > 0 and pixels > max_pixels:
        raise TooLarge(
            f"{name}: {head.format} image is {head.width}x{head.height} ({pixels / 1e6:.1f} MP), over the "
            f"{max_pixels / 1e6:g} MP limit (raise it with --max-pixels)"
        )
    try:
        _check_complete(head.format, data)
    except InputError as err:
        raise InputError(f"{name}: {err}") from None
    buf = np.frombuffer(data, np.uint8)
    # JPEG has no alpha or 16-bit in practice: the colour decode applies EXIF orientation for phone photos.
    flags = cv2.IMREAD_COLOR if head.format == "JPEG" else cv2.IMREAD_UNCHANGED
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise InputError(f"{name}: corrupt or truncated {head.format} (the decoder failed)")
    if {img.shape[0], img.shape[1]} != {head.height, head.width}:  # EXIF rotation may swap them
        raise InputError(
            f"{name}: decoded size {img.shape[1]}x{img.shape[0]} differs from the header's "
            f"{head.width}x{head.height} (corrupt file)"
        )
    return to_bgr8(img)


def iter_inputs(args: Iterable[str], recursive: bool = False) -> list[Path]:
    """Expand command-line inputs (files, directories, globs) into image paths.

    Directories give their files with an image extension (recursively when asked); globs are
    expanded (`**` allowed). Each argument's expansion is sorted; the result keeps argument order and
    drops duplicates. A plain path is kept even when it does not exist, so that reading it reports
    why; a glob matching nothing is kept as is for the same reason.

    Args:
        args: the input arguments.
        recursive: walk directories recursively.

    Returns:
        The paths, in order, de-duplicated.
    """
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append(p)

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.iterdir()
            files = sorted(f for f in walker if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                log.warning("%s: no image files in this directory", p)
            for f in files:
                add(f)
        elif not p.exists() and _GLOB_CHARS & set(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                add(p)  # reported as missing by read_image
            for f in files:
                add(f)
        else:
            add(p)
    return out
