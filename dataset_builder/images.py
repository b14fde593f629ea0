"""Image bytes for the dataset's `Image()` column: each source image checked and encoded once, at build time."""

import io
from pathlib import Path

from modeling_emovit.image_utils import open_image


def encoded_image(path: str, name: str) -> dict:
    """{"bytes", "path"} for the Image() feature: the file as is when it is upright RGB JPEG/PNG, else re-encoded to
    RGB JPEG (CMYK, palette, 16-bit, ...), upright (an EXIF orientation is applied to the pixels, not kept as a
    tag). Raises InvalidImageError for unreadable files."""
    data = Path(path).read_bytes()
    image = open_image(data)
    if image.format in ("JPEG", "PNG"):
        return {"bytes": data, "path": f"{name}{Path(path).suffix.lower()}"}
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return {"bytes": buffer.getvalue(), "path": f"{name}.jpg"}
