"""The one image decoder: a file or bytes -> RGB uint8 pixels, used by every reader.

`scan` (is a file usable?), training (`pixels.load_images` / `image_dataset`), the
augmentation preview, the Classify page and `predict` all decode through this module, so
they can never disagree about which files are images or what their pixels are.

What it does, in order (Pillow throughout):
  * reads a path through the one read gate (engine/data/reads.py): what is not a regular file
    (FIFOs, sockets, devices) is refused without blocking on it, and a file (or encoded bytes)
    over `MAX_IMAGE_BYTES` is refused before it is read;
  * opens only common photo formats (JPEG, MPO, PNG/APNG, GIF, BMP, WebP, TIFF): Pillow's
    exotic plugins (EPS runs Ghostscript, ...) are never tried on untrusted files;
  * refuses images above Pillow's pixel limit (`PIL.Image.MAX_IMAGE_PIXELS`, 89,478,485 by
    default) with a message in pixels, before decoding them;
  * takes the first frame of animations (GIF, WebP, APNG) and of MPO camera files;
  * applies the EXIF orientation (`ImageOps.exif_transpose`), so sideways photos stand up;
  * converts every colour mode to RGB: palette (with or without transparency), 1-bit, L,
    CMYK, YCbCr; 16-bit and 32-bit integer and float greys are scaled to 0-255 (see
    `_to_uint8`); anything with transparency (LA, PA, RGBA, a tRNS colour) is composited
    on a WHITE background, as a browser shows it on a white page;
  * squashes to a square of `image_size` with Pillow's bilinear filter, which widens with
    the scale factor when shrinking (antialiased, like `tf.image.resize(antialias=True)`).

Anything unreadable (truncated, corrupt, unknown format) raises `ImageDecodeError` with a
one-line reason naming the file; `check_image` returns that reason instead, for `scan`.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.reads import MAX_IMAGE_BYTES, FileRefused, NotRegularFile, read_regular_file
from engine.errors import StudioError

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")  # Pillow's JPEG opener also reads MPO
FORMAT_HINT = "use a JPEG, PNG, BMP, GIF, WebP or TIFF file"
BACKGROUND = (255, 255, 255)  # transparent pixels become white
_HIGH_DEPTH = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_MAX_REASON = 200  # characters of a library's message kept in a reason
NOT_REGULAR = "not a regular file"  # a FIFO, device, socket or folder: the scan's and predict's reason

# Pillow only *warns* between the pixel limit and twice it; we refuse at the limit itself
# with our own message (below), so its warning would just be noise on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageDecodeError(StudioError, ValueError):
    """A file or upload that the decoder cannot read; `reason` says why, `name` which one."""

    def __init__(self, reason: str, name: str | None = None):
        self.reason, self.name = reason, name
        super().__init__(f"{name}: {reason}" if name else reason)


@dataclass(frozen=True)
class ImageInfo:
    """What `check_image` reports for a usable image (size after EXIF orientation)."""

    width: int
    height: int
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def decode_image(source: str | os.PathLike | bytes, image_size: int, name: str | None = None) -> np.ndarray:
    """Decodes an image file or encoded bytes to uint8 (image_size, image_size, 3) RGB.

    Args:
        source: a path (followed if it is a symlink) or the encoded bytes of an image.
        image_size: side of the square output in pixels.
        name: how messages name `source` (default: the path; nothing for bytes).

    Raises:
        ImageDecodeError: not a regular file, over the byte limit, unreadable, unsupported format, over the pixel limit.
    """
    im = open_rgb(source, name)
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.array(im, dtype=np.uint8)


def check_image(source: str | os.PathLike | bytes, name: str | None = None) -> ImageInfo | str:
    """`ImageInfo` when the decoder reads `source` completely, else the one-line reason it cannot."""
    try:
        with _Opened(source, name) as opened:
            rgb = _decode(opened.image, opened.name)
            return ImageInfo(rgb.width, rgb.height, opened.image.format or "?")
    except ImageDecodeError as exc:
        return exc.reason


def open_rgb(source: str | os.PathLike | bytes, name: str | None = None) -> Image.Image:
    """The full-size image as an RGB PIL image, decoded exactly as `decode_image` does (no resize)."""
    with _Opened(source, name) as opened:
        return _decode(opened.image, opened.name)


def preview_image(source: str | os.PathLike | bytes, max_side: int) -> np.ndarray:
    """uint8 RGB pixels for showing an image, aspect ratio kept, longest side at most `max_side`."""
    im = open_rgb(source)
    im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.array(im, dtype=np.uint8)


def square_thumbnail(source: str | os.PathLike | bytes, side: int) -> np.ndarray:
    """uint8 RGB pixels of the image's centre square, `side` px: the tiles of a grid line up whatever the photo's shape."""
    return np.array(ImageOps.fit(open_rgb(source), (side, side), Image.Resampling.BILINEAR), dtype=np.uint8)


class _Opened:
    """Context manager: the opened (not yet decoded) PIL image of a path or bytes, closed on exit."""

    def __init__(self, source, name: str | None):
        self.source, self.name = source, name
        self.fh = self.image = None

    def __enter__(self) -> _Opened:
        if isinstance(self.source, (bytes, bytearray, memoryview)):
            if len(self.source) > MAX_IMAGE_BYTES:  # uploads are bounded as files are
                raise ImageDecodeError(_too_many_bytes(len(self.source)), self.name)
            self.fh = io.BytesIO(self.source)
        else:
            path = os.fspath(self.source)
            self.name = self.name or str(path)
            self.fh = io.BytesIO(_read_regular_file(path, self.name))
        try:
            self.image = Image.open(self.fh, formats=ALLOWED_FORMATS)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types; all mean "cannot use this file"
            reason = _open_failure(exc, self.fh)
            self.fh.close()
            raise ImageDecodeError(reason, self.name) from None
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()  # only the file: Image.close() would also drop the decoded pixels we return


def _read_regular_file(path: str, name: str) -> bytes:
    """The bytes of `path` through the one read gate (engine/data/reads.py): a regular file of at most
    MAX_IMAGE_BYTES, read without blocking on a FIFO. Any refusal becomes the decoder's one-line reason."""
    try:
        return read_regular_file(path, MAX_IMAGE_BYTES, name)
    except NotRegularFile:
        raise ImageDecodeError(NOT_REGULAR, name) from None
    except FileRefused as exc:
        raise ImageDecodeError(exc.reason, name) from None


def _too_many_bytes(size: int) -> str:
    return f"is {size:,} bytes, over the limit of {MAX_IMAGE_BYTES:,} bytes"


def _open_failure(exc: Exception, fh) -> str:
    """The reason Image.open failed, in words a user can act on."""
    if isinstance(exc, Image.DecompressionBombError):  # Pillow's own check, at twice the limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return _too_many_pixels(int(found.group(1)) if found else None)
    if isinstance(exc, UnidentifiedImageError):
        other = _other_format(fh)
        if other:
            return f"unsupported format {other}; convert it to JPEG or PNG"
        return f"not a readable image (unknown format or not an image); {FORMAT_HINT}"
    return _unreadable(exc)


def _other_format(fh) -> str | None:
    """The name of a format Pillow knows but we do not open, judged from the first bytes only."""
    try:
        fh.seek(0)
        prefix = fh.read(16)
    except (OSError, ValueError):
        return None
    Image.init()
    for fmt, (_, accept) in Image.OPEN.items():
        if fmt not in ALLOWED_FORMATS and accept is not None:
            try:
                if accept(prefix) is True:  # a string means "maybe, with a warning"
                    return fmt
            except Exception:  # noqa: BLE001 - a plugin's probe failing means "not this format"
                continue
    return None


def _too_many_pixels(pixels: int | None) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    count = f"{pixels:,} pixels" if pixels else "too many pixels"
    return f"image has {count}, above the {limit:,} pixel limit; downscale it first"


def _unreadable(exc: Exception) -> str:
    message = " ".join(str(exc).split())[:_MAX_REASON]
    return (
        f"not a readable image ({type(exc).__name__}: {message})" if message else f"not a readable image ({type(exc).__name__})"
    )


def _decode(im: Image.Image, name: str | None) -> Image.Image:
    """Pixel limit, first frame, full decode, EXIF orientation, RGB: the shared core."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        raise ImageDecodeError(_too_many_pixels(im.width * im.height), name)
    if im.width < 1 or im.height < 1:
        raise ImageDecodeError("image has zero width or height", name)
    try:
        im.load()  # the first frame of an animation or MPO: Image.open leaves the file there
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces here, as many types
        raise ImageDecodeError(_unreadable(exc), name) from None
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:  # noqa: BLE001 - a damaged EXIF block should not cost an otherwise good photo
        pass
    try:
        return _to_rgb(im)
    except ValueError as exc:  # Pillow has no conversion for this mode
        raise ImageDecodeError(f"colour mode {im.mode} is not supported ({exc}); {FORMAT_HINT}", name) from None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode in _HIGH_DEPTH:
        return Image.fromarray(_to_uint8(np.asarray(im), im.mode)).convert("RGB")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    return im.convert("RGB")  # P, 1, L, CMYK, YCbCr, HSV, ...


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit greys to 0-255, by the range the values actually use.

    16-bit modes: value / 257 (65535 -> 255). 32-bit integer or float: values already in
    0..255 are kept, floats in 0..1 are scaled by 255, values in 0..65535 are treated as
    16-bit; anything else (negative, larger) is stretched from its min..max to 0..255.
    """
    a = a.astype(np.float64)
    if mode.startswith("I;16"):
        scaled = a / 257.0
    else:
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode == "F" and lo >= 0 and hi <= 1:
            scaled = a * 255.0
        elif lo >= 0 and hi <= 255:
            scaled = a
        elif lo >= 0 and hi <= 65535:
            scaled = a / 257.0
        else:
            scaled = (a - lo) * (255.0 / (hi - lo))
    return np.clip(np.round(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
