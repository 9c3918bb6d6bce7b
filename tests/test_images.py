"""The one decoder: every colour mode, first frames, EXIF orientation, limits, broken files."""

import io
import os
import threading

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.data import images
from engine.data.images import ImageDecodeError, check_image, decode_image, open_rgb

RNG = np.random.default_rng(0)
PHOTO = Image.fromarray(RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8))  # 24 x 16, every value in play
WHITE = (255, 255, 255, 255)


def on_white(im: Image.Image) -> Image.Image:
    """Pillow's own RGB of an image with transparency: composited on white, as the decoder documents."""
    return Image.alpha_composite(Image.new("RGBA", im.size, WHITE), im.convert("RGBA")).convert("RGB")


def grey16(values: np.ndarray) -> Image.Image:
    """The documented scaling of 16-bit greys: value / 257, so 65535 -> 255."""
    return Image.fromarray(np.round(values.astype(np.float64) / 257).astype(np.uint8)).convert("RGB")


U16 = RNG.integers(0, 65536, (16, 24), dtype=np.uint16)
F01 = RNG.random((16, 24)).astype(np.float32)
with_alpha = PHOTO.convert("RGBA")
with_alpha.putalpha(Image.fromarray(RNG.integers(0, 256, (16, 24), dtype=np.uint8)))

# name: (image to save, format, save options, expected RGB from Pillow's own conversion)
MODES = {
    "P": (PHOTO.convert("P"), "PNG", {}, lambda im: im.convert("RGB")),
    "P+transparency": (PHOTO.convert("P"), "PNG", {"transparency": 3}, on_white),
    "P (palette BMP)": (PHOTO.convert("P"), "BMP", {}, lambda im: im.convert("RGB")),
    "1 (1-bit BMP)": (PHOTO.convert("1"), "BMP", {}, lambda im: im.convert("RGB")),
    "L": (PHOTO.convert("L"), "PNG", {}, lambda im: im.convert("RGB")),
    "I;16 PNG": (Image.fromarray(U16), "PNG", {}, lambda im: grey16(U16)),
    "I;16 TIFF": (Image.fromarray(U16), "TIFF", {}, lambda im: grey16(U16)),
    "I (32-bit, 16-bit values)": (Image.fromarray(U16.astype(np.int32)), "TIFF", {}, lambda im: grey16(U16)),
    "F (0..1)": (
        Image.fromarray(F01),
        "TIFF",
        {},
        lambda im: Image.fromarray(np.round(F01.astype(np.float64) * 255).astype(np.uint8)).convert("RGB"),
    ),
    "LA": (with_alpha.convert("LA"), "PNG", {}, on_white),
    "RGBA": (with_alpha, "PNG", {}, on_white),
    "CMYK JPEG": (PHOTO.convert("CMYK"), "JPEG", {}, lambda im: im.convert("RGB")),
    "CMYK TIFF": (PHOTO.convert("CMYK"), "TIFF", {}, lambda im: im.convert("RGB")),
    "YCbCr TIFF": (PHOTO.convert("YCbCr"), "TIFF", {}, lambda im: im.convert("RGB")),
}


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(MODES))
def test_every_mode_decodes_to_pillows_rgb(name, tmp_path):
    im, fmt, options, expected_of = MODES[name]
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(encode(im, fmt, **options))
    with Image.open(path) as reopened:
        expected = expected_of(reopened)
    got = open_rgb(path)
    assert got.mode == "RGB" and got.size == (24, 16)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    small = decode_image(path, 12)
    assert small.shape == (12, 12, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, np.asarray(expected.resize((12, 12), Image.Resampling.BILINEAR)))
    assert isinstance(check_image(path), images.ImageInfo)


def test_palette_bmp_gives_colours_not_grey_indices(tmp_path):
    red = Image.new("P", (8, 8), 1)
    red.putpalette([0, 0, 0, 220, 20, 30])  # index 1 would read as near-black grey if taken as a level
    (tmp_path / "red.bmp").write_bytes(encode(red, "BMP"))
    assert tuple(decode_image(tmp_path / "red.bmp", 4)[0, 0]) == (220, 20, 30)


def test_pa_composites_on_white():
    # No format Pillow writes keeps PA, so the conversion is checked on the image itself.
    pa = PHOTO.convert("P").convert("PA")
    pa.putalpha(0)
    assert np.all(np.asarray(images._to_rgb(pa)) == 255)


@pytest.mark.parametrize(
    "values,expected",
    [
        (np.array([[0, 128, 255]], np.int32), [0, 128, 255]),  # already 8-bit: kept
        (np.array([[0, 32768, 65535]], np.int32), [0, 128, 255]),  # 16-bit range: / 257
        (np.array([[-55, 0, 200]], np.int32), [0, 55, 255]),  # anything else: stretched min..max
        (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),  # float 0..1: x 255
        (np.array([[0.0, 100.0, np.nan]], np.float32), [0, 100, 0]),  # NaN is black
    ],
)
def test_high_bit_depth_scaling(values, expected):
    mode = "F" if values.dtype == np.float32 else "I"
    assert list(images._to_uint8(values, mode)[0]) == expected


@pytest.mark.parametrize(
    "fmt,options",
    [
        ("GIF", {"duration": 100, "loop": 0}),
        ("WEBP", {"lossless": True, "duration": 100}),
        ("PNG", {"duration": 100}),  # APNG
    ],
)
def test_animations_give_their_first_frame(fmt, options, tmp_path):
    frames = [Image.new("RGB", (10, 6), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], **options)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 3  # really animated
    assert np.all(decode_image(path, 8) == (255, 0, 0))


def test_mpo_reads_its_first_jpeg_frame(tmp_path):
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (16, 12), (250, 0, 0)).save(
        path, "MPO", save_all=True, append_images=[Image.new("RGB", (16, 12), (0, 0, 250))]
    )
    info = check_image(path)
    assert info == images.ImageInfo(16, 12, "MPO")
    pixel = decode_image(path, 8)[4, 4].astype(int)
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), (255, 0, 0))
    wide.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "sideways.jpg"
    wide.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    assert check_image(path).size == (20, 40)  # stands up
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(open_rgb(path)), np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    px = decode_image(path, 20).astype(int)
    assert px[2, 10, 0] > 200 and px[17, 10, 2] > 200  # red on top, blue below


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    data = encode(PHOTO.resize((200, 150)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"cut\.jpg: not a readable image \(") as err:
        decode_image(path, 32)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
    assert check_image(path).startswith("not a readable image")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets the module's own filter
@pytest.mark.parametrize("size,pixels", [((40, 30), "1,200"), ((100, 100), "10,000")])  # over the limit; over twice it
def test_pixel_limit_message_in_pixels(size, pixels, monkeypatch, tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", size).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match=rf"big\.png: image has {pixels} pixels, above the 1,000 pixel limit"):
        decode_image(path, 8)


def test_formats_outside_the_list_are_named(tmp_path):
    (tmp_path / "x.ppm").write_bytes(encode(PHOTO, "PPM"))
    assert check_image(tmp_path / "x.ppm") == "unsupported format PPM; convert it to JPEG or PNG"
    with pytest.raises(ImageDecodeError, match=r"^upload\.bin: not a readable image .*use a JPEG, PNG"):
        decode_image(b"%PDF-1.4 not an image", 8, name="upload.bin")
    with pytest.raises(ImageDecodeError, match=r"^not a readable image"):
        decode_image(b"", 8)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=check_image(fifo)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "check_image blocked on a FIFO"
    assert result["r"] == "not a regular file"


def test_devices_and_folders_are_refused_without_reading_them(tmp_path):
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=check_image("/dev/zero"), d=check_image(tmp_path)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "check_image read /dev/zero"
    assert result == {"r": "not a regular file", "d": "not a regular file"}


def test_files_and_uploads_over_the_byte_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    data = encode(PHOTO, "PNG")
    (tmp_path / "p.png").write_bytes(data)
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", len(data) - 1)  # the one limit: paths and bytes alike
    reason = f"is {len(data):,} bytes, over the limit of {len(data) - 1:,} bytes"
    assert check_image(tmp_path / "p.png") == reason and check_image(data) == reason
    with pytest.raises(ImageDecodeError, match=rf"^upload.png: {reason}$"):
        decode_image(data, 8, name="upload.png")
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", len(data))
    assert check_image(tmp_path / "p.png").size == (24, 16) and check_image(data).size == (24, 16)


def test_symlinked_file_is_followed_and_missing_file_named(tmp_path):
    target = tmp_path / "real.png"
    PHOTO.save(target)
    (tmp_path / "link.png").symlink_to(target)
    np.testing.assert_array_equal(decode_image(tmp_path / "link.png", 8), decode_image(target, 8))
    with pytest.raises(ImageDecodeError, match=r"gone\.png: cannot read \(No such file or directory\)"):
        decode_image(tmp_path / "gone.png", 8)


def test_same_bytes_same_pixels_and_path_equals_bytes(tmp_path):
    path = tmp_path / "p.jpg"
    PHOTO.resize((90, 60)).save(path, quality=90)
    a, b = decode_image(path, 32), decode_image(path.read_bytes(), 32)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, decode_image(path, 32))
