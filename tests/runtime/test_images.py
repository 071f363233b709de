"""Image files: modes, EXIF orientation, 16-bit, broken and over-limit files, atomic writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgegen.runtime import EdgegenError
from edgegen.runtime.images import read_image, resize, write_image

RNG = np.random.default_rng(1)


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A small file whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def truncated_png(path: Path) -> Path:
    img = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("shape", [(13, 17, 3), (13, 17), (13, 17, 4)])
def test_png_round_trip(tmp_path, shape):
    img = RNG.integers(0, 256, shape, dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary left behind


def test_sixteen_bit_png_stays_uint16(tmp_path):
    img = RNG.integers(0, 65536, (9, 7), dtype=np.uint16)
    write_image(tmp_path / "g16.png", img)
    back = read_image(tmp_path / "g16.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)


def test_exif_orientation_palette_and_cmyk(tmp_path):
    img = Image.fromarray(RNG.integers(0, 256, (10, 20, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (20, 10, 3)
    img.convert("P").save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").shape == (10, 20, 3)
    img.convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (10, 20, 3) and cmyk.dtype == np.uint8


def test_broken_files_name_the_file(tmp_path):
    cases = {
        truncated_png(tmp_path / "cut.png"): "unreadable",
        tmp_path / "missing.png": "no such file",
    }
    (tmp_path / "text.png").write_text("hello")
    cases[tmp_path / "text.png"] = "not an image"
    for path, needle in cases.items():
        with pytest.raises(EdgegenError, match=needle) as err:
            read_image(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_over_the_pixel_limit(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    with pytest.raises(EdgegenError) as err:
        read_image(path)
    assert f"image {path} has 400000000 pixels, over the limit of {Image.MAX_IMAGE_PIXELS}" == str(
        err.value
    )
    moderate = huge_png(tmp_path / "moderate.png", 10000, 10000)  # warning range: also refused
    with pytest.raises(EdgegenError, match="100000000 pixels"):
        read_image(moderate)


def test_write_picks_the_format_from_the_final_name(tmp_path):
    img = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    write_image(tmp_path / "x.jpg", img)
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.format == "JPEG"
    with pytest.raises(EdgegenError, match="unknown image suffix"):
        write_image(tmp_path / "x.xyz", img)


def test_resize_nearest_and_bilinear():
    a = np.array([[0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(resize(a, 2, "nearest"), [[0, 0, 255, 255], [0, 0, 255, 255]])
    b = resize(a, 2)
    assert b.shape == (2, 4) and b[0, 0] == 0 and b[0, 3] == 255 and 0 < b[0, 1] < b[0, 2] < 255
    assert resize(a, 1) is a
