"""edgeecg.io: header sizes, bad files refused with one-line errors, every pixel format made BGR uint8."""

from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeecg.errors import InputError
from edgeecg.io import DEFAULT_MAX_PIXELS, iter_inputs, read_header, read_image, to_bgr8


def png_bytes(
    width: int, height: int, depth: int, colour: int, rows, plte: bytes = b"", trns: bytes = b""
) -> bytes:
    """A PNG written by hand (cv2 cannot write palette PNGs): IHDR, optional PLTE/tRNS, IDAT, IEND.

    `rows` yields the raw scanlines (without the filter byte) or is one bytes object repeated `height` times.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    comp = zlib.compressobj(9)
    idat = []
    if isinstance(rows, bytes):
        block = (b"\x00" + rows) * 256  # 256 rows per compress call keeps memory small
        full, rest = divmod(height, 256)
        idat += [comp.compress(block) for _ in range(full)]
        idat.append(comp.compress((b"\x00" + rows) * rest))
    else:
        idat += [comp.compress(b"\x00" + r) for r in rows]
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if plte:
        out += chunk(b"PLTE", plte)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((40, 60, 3), 200, np.uint8)
    img[10:30, 10:50] = rng.integers(0, 255, (20, 40, 3), dtype=np.uint8)
    return img


@pytest.mark.parametrize(
    "ext,params",
    [
        (".png", []),
        (".jpg", []),
        (".bmp", []),
        (".gif", []),
        (".webp", []),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
        (".tiff", []),
    ],
)
def test_header_size_matches_every_format(tmp_path, bgr, ext, params):
    ok, buf = cv2.imencode(ext, bgr, params)
    assert ok
    head = read_header(buf.tobytes())
    assert (head.width, head.height) == (60, 40), head
    path = tmp_path / f"img{ext}"
    path.write_bytes(buf.tobytes())
    img = read_image(path)
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8


def test_png_roundtrip_is_exact(tmp_path, bgr):
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), bgr)


def test_jpeg_with_progressive_and_exif_like_segments(tmp_path, bgr):
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    data = buf.tobytes()
    # a big APP1 segment before the frame header, as phone EXIF blocks are
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 5000) + b"Exif\x00" + b"\x00" * 4995
    data = data[:2] + app1 + data[2:]
    (tmp_path / "p.jpg").write_bytes(data)
    assert read_image(tmp_path / "p.jpg").shape == (40, 60, 3)


# -- bad inputs: one clear line each -----------------------------------------------------------------
def _error(path, **kw) -> str:
    with pytest.raises(InputError) as info:
        read_image(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "nope.png")


def test_directory_given_as_file(tmp_path):
    assert "directory" in _error(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    assert "0 bytes" in _error(tmp_path / "e.jpg")


def test_non_image_file(tmp_path):
    (tmp_path / "notes.png").write_text("hello, this is text\n" * 10)
    assert "not an image" in _error(tmp_path / "notes.png")


def test_truncated_jpeg(tmp_path, bgr):
    data = cv2.imencode(".jpg", bgr)[1].tobytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) * 2 // 3])
    assert "truncated" in _error(tmp_path / "t.jpg")


def test_jpeg_cut_inside_header(tmp_path, bgr):
    data = cv2.imencode(".jpg", bgr)[1].tobytes()
    (tmp_path / "h.jpg").write_bytes(data[:30])
    assert "JPEG" in _error(tmp_path / "h.jpg")


def test_truncated_png(tmp_path, bgr):
    data = cv2.imencode(".png", bgr)[1].tobytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(tmp_path / "t.png")


def test_corrupt_png_body(tmp_path, bgr):
    data = bytearray(cv2.imencode(".png", bgr)[1].tobytes())
    data[60:200] = b"\x17" * 140  # garbage inside IDAT, IEND still present
    (tmp_path / "c.png").write_bytes(bytes(data))
    assert "corrupt" in _error(tmp_path / "c.png")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A valid 30000x30000 1-bit PNG of ~100 KB; decoded as 8-bit BGR it would take 2.7 GB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(png_bytes(30000, 30000, 1, 0, bytes(30000 // 8)))
    return path


def test_pixel_limit_refuses_before_decoding(bomb):
    assert bomb.stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    msg = _error(bomb)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert "30000x30000" in msg and "900.0 MP" in msg and "--max-pixels" in msg
    assert after - before < 200_000, "the decoder ran: resident memory grew by hundreds of MB"


def test_pixel_limit_is_configurable(tmp_path, bgr):
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    assert "limit" in _error(tmp_path / "a.png", max_pixels=1000)
    assert read_image(tmp_path / "a.png", max_pixels=2400).shape == (40, 60, 3)
    assert DEFAULT_MAX_PIXELS >= 24_000_000  # a 24 MP camera photo passes by default


# -- conversions ---------------------------------------------------------------------------------------
def test_16bit_scaled_to_8bit(tmp_path):
    img16 = np.zeros((10, 20, 3), np.uint16)
    img16[:, :10] = 65535
    img16[:, 10:] = 257 * 100
    cv2.imwrite(str(tmp_path / "d.png"), img16)
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (10, 20, 3)
    assert (out[:, :10] == 255).all() and (out[:, 10:] == 100).all()


def test_16bit_grey_tiff(tmp_path):
    grey = np.full((12, 16), 257 * 40, np.uint16)
    cv2.imwrite(str(tmp_path / "g.tiff"), grey)
    out = read_image(tmp_path / "g.tiff")
    assert out.shape == (12, 16, 3) and (out == 40).all()


def test_grey_expanded_to_bgr(tmp_path):
    grey = np.arange(200, dtype=np.uint8).reshape(10, 20)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (10, 20, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_rgba_composited_on_white(tmp_path):
    bgra = np.zeros((10, 20, 4), np.uint8)
    bgra[:, :, 2] = 255  # red
    bgra[:, :10, 3] = 255  # left half opaque, right half transparent
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    out = read_image(tmp_path / "a.png")
    assert out.shape == (10, 20, 3)
    assert (out[:, :10] == [0, 0, 255]).all()
    assert (out[:, 10:] == 255).all(), "transparent pixels must become white paper, not black"


def test_palette_png_converted(tmp_path):
    plte = bytes([255, 0, 0, 0, 0, 255, 255, 255, 255])  # RGB entries: red, blue, white
    rows = [bytes([0] * 4 + [1] * 4 + [2] * 4) for _ in range(6)]
    (tmp_path / "p.png").write_bytes(png_bytes(12, 6, 8, 3, rows, plte=plte))
    out = read_image(tmp_path / "p.png")
    assert out.shape == (6, 12, 3) and out.dtype == np.uint8
    assert (out[:, :4] == [0, 0, 255]).all()  # red in BGR
    assert (out[:, 4:8] == [255, 0, 0]).all()  # blue in BGR
    assert (out[:, 8:] == 255).all()


def test_palette_png_with_transparency(tmp_path):
    plte = bytes([0, 0, 0, 255, 0, 0])
    rows = [bytes([0, 0, 1, 1]) for _ in range(3)]
    (tmp_path / "pt.png").write_bytes(png_bytes(4, 3, 8, 3, rows, plte=plte, trns=bytes([0, 255])))
    out = read_image(tmp_path / "pt.png")
    assert (out[:, :2] == 255).all(), "transparent palette entry composited on white"
    assert (out[:, 2:] == [0, 0, 255]).all()


def test_to_bgr8_grey_alpha_and_float():
    ga = np.zeros((2, 2, 2), np.uint8)
    ga[..., 0] = 50
    ga[0, :, 1] = 255
    out = to_bgr8(ga)
    assert (out[0] == 50).all() and (out[1] == 255).all()
    f = np.full((2, 2, 3), 0.5, np.float32)
    assert (to_bgr8(f) == 128).all()


# -- input expansion -----------------------------------------------------------------------------------
def test_iter_inputs_dirs_globs_dedup(tmp_path, bgr):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "c.TIFF", "sub/d.png"):
        cv2.imwrite(str(d / name), bgr)
    (d / "notes.txt").write_text("x")
    got = iter_inputs(
        [str(d), str(d / "a.jpg"), str(tmp_path / "imgs" / "*.png"), str(tmp_path / "none*.png")]
    )
    assert got[:3] == [d / "a.jpg", d / "b.png", d / "c.TIFF"]
    assert got[3:] == [tmp_path / "none*.png"], "an empty glob is kept so that it is reported"
    assert iter_inputs([str(d)], recursive=True)[-1] == d / "sub" / "d.png"
    assert iter_inputs([str(tmp_path / "imgs" / "**" / "*.png")]) == [d / "b.png", d / "sub" / "d.png"]


def test_real_photos_decode(realdata):
    photos = sorted((realdata / "photos").iterdir())
    assert photos
    for p in photos:
        if p.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
            continue
        img = read_image(p)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, p
        assert min(img.shape[:2]) > 100, p
