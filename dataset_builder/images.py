"""Image bytes for the dataset's `Image()` column: each source image checked, encoded and hashed once, at build time.

Flow: manifests (paths) -> `CheckedImages` (one decode per image and build) -> builder rows of every config.

Content hashes (`image_digest`): the SHA-256 of the image bytes as the dataset stores them (the `image` cell's
`bytes`), hex, in each row's `image_sha256` column. Equal hashes mean byte-identical files, which is how an image
listed in two split files, or copied under two labels, shows up; a resized or re-compressed copy has other bytes
and is not caught. Anything holding a row's stored bytes can recompute the hash with `image_digest(bytes)`.
"""

import hashlib
import io
from pathlib import Path

from modeling_emovit.image_utils import InvalidImageError, open_image

from .jsonl import append_line, read_objects

# A PNG or JPEG file may be this much larger than its pixels could ever need uncompressed (16-bit RGBA, 8 bytes a
# pixel) before it counts as carrying oversized metadata (text chunks, EXIF, ICC profiles) and is re-encoded without
# it: a 32x32 PNG with a 60 MB iTXt chunk would otherwise be stored, and copied into every row, as is.
MAX_METADATA_BYTES = 1 << 20
_BYTES_PER_PIXEL_BOUND = 8
OVERSIZED_METADATA = f"image file with over {MAX_METADATA_BYTES >> 20} MiB of metadata (re-encoded without it)"


def image_digest(data: bytes) -> str:
    """The content hash of one stored image: SHA-256 of its bytes, 64 hex digits (the `image_sha256` column)."""
    return hashlib.sha256(data).hexdigest()


def _oversized(data: bytes, image, scale: int) -> bool:
    """Whether the file is larger than its pixels could need (`image` decoded at 1/`scale` of each side) plus the
    metadata allowance."""
    return len(data) > image.width * image.height * scale**2 * _BYTES_PER_PIXEL_BOUND + MAX_METADATA_BYTES


def _encode(path: str, name: str) -> tuple[dict, str | None]:
    """{"bytes", "path"} for the Image() feature, and why it was re-encoded (None: the file goes in as it is).

    The file goes in as it is when it is upright RGB JPEG/PNG without oversized metadata, else it is re-encoded:
    upright (an EXIF orientation is applied to the pixels, not kept as a tag), RGB JPEG (CMYK, palette, 16-bit, ...);
    a file stripped of its oversized metadata keeps its kind (a PNG stays lossless). Raises InvalidImageError for
    unreadable files."""
    data = Path(path).read_bytes()
    checked = open_image(data, check_only=True)  # a JPEG decoded at up to 1/8 scale: the check, not the pixels
    if checked.format in ("JPEG", "PNG") and not _oversized(data, checked, 8 if checked.format == "JPEG" else 1):
        return {"bytes": data, "path": f"{name}{Path(path).suffix.lower()}"}, None
    image = open_image(data)  # the pixels at full size (a PNG is decoded again: rare)
    oversized = _oversized(data, image, 1)
    kind = checked.format if oversized and checked.format in ("JPEG", "PNG") else "JPEG"
    if oversized:
        image.info.clear()  # none of the file's metadata is written again
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **({"quality": 95} if kind == "JPEG" else {}))
    suffix = ".png" if kind == "PNG" else ".jpg"
    return {"bytes": buffer.getvalue(), "path": f"{name}{suffix}"}, OVERSIZED_METADATA if oversized else "converted"


class CheckedImages:
    """The images of one manifest shard, decoded once per build rather than once per config.

    The first config a build writes (`all`, which holds every image that has a row anywhere) decodes each image and
    appends a verdict to `<manifest>.images.jsonl` beside the manifest: its file goes in as it is, or re-encoded (the
    bytes kept in `<manifest>.images/`), or it is unreadable (with the reason); with its content hash. Every later
    config of the build reads the verdicts and the bytes and decodes nothing again.
    """

    def __init__(self, manifest: str | Path):
        self.folder = Path(f"{manifest}.images")
        self.verdicts_file = Path(f"{manifest}.images.jsonl")
        self.verdicts = {row["id"]: row for row in read_objects(self.verdicts_file)} if self.verdicts_file.exists() else {}

    def image(self, record_id: str, path: str, name: str) -> tuple[dict, dict]:
        """({"bytes", "path"} of the record's image, its verdict: `sha256`, and `reason` when it was re-encoded);
        raises InvalidImageError (or OSError) for an unreadable one."""
        verdict = self.verdicts.get(record_id)
        if verdict is None:
            return self._check(record_id, path, name)
        if verdict["status"] == "unreadable":
            raise InvalidImageError(verdict["reason"])
        source = Path(path) if verdict["status"] == "as is" else self.folder / verdict["name"]
        return {"bytes": source.read_bytes(), "path": verdict["name"]}, verdict

    def _check(self, record_id: str, path: str, name: str) -> tuple[dict, dict]:
        try:
            image, reason = _encode(path, name)
        except (InvalidImageError, OSError) as error:
            self._record({"id": record_id, "status": "unreadable", "reason": str(error)})
            raise
        if reason is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / image["path"]).write_bytes(image["bytes"])
        verdict = {"id": record_id, "status": "as is" if reason is None else "re-encoded", "name": image["path"],
                   "sha256": image_digest(image["bytes"]), "reason": reason}
        self._record(verdict)
        return image, verdict

    def _record(self, verdict: dict) -> None:
        with open(self.verdicts_file, "a", encoding="utf-8") as handle:
            append_line(handle, verdict)
