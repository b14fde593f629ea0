"""Opening user images safely: every PIL mode becomes 8-bit RGB, upright; unreadable or hostile files get one
clear error.

Used by the processor (so `processor(images=...)` accepts grayscale, RGBA, palette, CMYK and 16-bit images), the
training collator and evaluation, and by the dataset builder, which stores upright pixels: a photo whose EXIF
Orientation says "rotate" is seen the same way by every path, as `datasets` and `transformers.image_utils.load_image`
show it.
"""

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from .errors import EmoVITInputError


ORIENTATION = 0x0112  # the EXIF tag: 1 upright, 2-8 mirrored and/or rotated


class InvalidImageError(EmoVITInputError):
    """An image that cannot be used: not an image, truncated, empty, or a decompression bomb."""


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "filename", None) or getattr(source, "name", None) or "<in-memory image>"


def open_image(source: "str | os.PathLike | bytes | dict | Image.Image", check_only: bool = False) -> Image.Image:
    """Opens a path, encoded bytes, an undecoded `datasets` image cell ({"bytes", "path"}) or a PIL image and
    returns a fully decoded, upright 8-bit RGB image. `check_only`: a JPEG is decoded at 1/8 scale and that small
    copy returned (libjpeg still reads every entropy-coded byte, so a truncated or broken file fails as at full size,
    in about a third of the time)."""
    if isinstance(source, Image.Image):
        return ensure_rgb(source)
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path") or b""
    name = _name(source)
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # PIL warns between 1x and 2x MAX_IMAGE_PIXELS and raises above: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data)
            if check_only and image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidImageError(f"{name}: refused as a possible decompression bomb ({error}).") from None
    except FileNotFoundError:
        raise InvalidImageError(f"{name}: no such image file.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(f"{name}: not a readable image, or truncated ({error}).") from None
    image.filename = name
    return ensure_rgb(image)


def open_image_input(source, timeout: float | None = None) -> Image.Image:
    """An image as a user passes one to a model (the emotion pipeline, a processor): a PIL image, a path, encoded
    bytes, a numpy array or torch tensor (`image_from_array`), or a `data:` / http(s) URL string, which
    transformers' `load_image` reads, waiting at most `timeout` seconds for a URL (no one-sentence refusal there:
    library users pass URLs on purpose; `emovit serve` decodes what clients send itself)."""
    from transformers.utils import is_torch_tensor

    if isinstance(source, str) and source.startswith(("data:", "http://", "https://")):
        from transformers.image_utils import load_image

        return ensure_rgb(load_image(source, timeout=timeout))
    if isinstance(source, np.ndarray) or is_torch_tensor(source):
        return ensure_rgb(image_from_array(source))
    return open_image(source)


def image_from_array(array) -> Image.Image:
    """One image as an array, as transformers' image pipelines take one: `(H, W)`, `(H, W, C)` or `(C, H, W)` with C
    in 1, 3, 4 (channels first when both ends could be channels, as transformers infers it), uint8 in 0-255 or
    float in 0-1 (rescaled), numpy or torch on any device; converted by transformers' `to_pil_image`."""
    from transformers.image_transforms import to_pil_image

    if hasattr(array, "detach"):  # a torch tensor, perhaps on an accelerator or requiring grad
        array = array.detach().cpu().numpy()
    if array.ndim == 2:
        array = array[..., None]
    channels = (1, 3, 4)
    layout = "channels_first" if array.ndim == 3 and array.shape[0] in channels else "channels_last"
    if array.ndim != 3 or array.shape[0 if layout == "channels_first" else -1] not in channels:
        raise InvalidImageError(
            f"<in-memory array>: an array of shape {tuple(array.shape)} is not one image; pass (H, W), (H, W, C) or "
            f"(C, H, W) with 1, 3 or 4 channels, and a list of arrays for several images."
        )
    try:
        return to_pil_image(array, input_data_format=layout)
    except (ValueError, TypeError) as error:  # values outside 0-255 (integers) or 0-1 (floats), an unusable dtype
        raise InvalidImageError(f"<in-memory array>: {error}") from None


def ensure_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode to 8-bit RGB, upright: the EXIF orientation is applied (once: the tag goes with it),
    transparency is laid on white, 16/32-bit and float are rescaled."""
    name = _name(image)
    if 0 in image.size:
        raise InvalidImageError(f"{name}: the image has a side of 0 pixels ({image.size[0]}x{image.size[1]}).")
    image = upright(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _rescale_to_8bit(image)
    if image.mode == "P" or "A" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def upright(image: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: EXIF Orientation applied (a copy), or the image itself when upright."""
    if image.getexif().get(ORIENTATION, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image)


def _rescale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit images keep their scale (65535 -> 255); 32-bit integer and float images are stretched min-max."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    else:
        low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")
