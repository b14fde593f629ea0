"""Image bytes for the dataset's `Image()` column: each source image checked and encoded once, at build time.

Flow: manifests (paths) -> `CheckedImages` (one decode per image and build) -> builder rows of every config.
"""

import io
from pathlib import Path

from modeling_emovit.image_utils import InvalidImageError, open_image

from .jsonl import append_line, read_objects


def _encode(path: str, name: str) -> tuple[dict, bool]:
    """{"bytes", "path"} for the Image() feature, and whether it was re-encoded: the file goes in as it is when it is
    upright RGB JPEG/PNG, else it is re-encoded to RGB JPEG (CMYK, palette, 16-bit, ...), upright (an EXIF
    orientation is applied to the pixels, not kept as a tag). Raises InvalidImageError for unreadable files."""
    data = Path(path).read_bytes()
    image = open_image(data)
    if image.format in ("JPEG", "PNG"):
        return {"bytes": data, "path": f"{name}{Path(path).suffix.lower()}"}, False
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return {"bytes": buffer.getvalue(), "path": f"{name}.jpg"}, True


class CheckedImages:
    """The images of one manifest shard, decoded once per build rather than once per config.

    The first config a build writes (`all`, which holds every image that has a row anywhere) decodes each image and
    appends a verdict to `<manifest>.images.jsonl` beside the manifest: its file goes in as it is, or re-encoded (the
    bytes kept in `<manifest>.images/`), or it is unreadable (with the reason). Every later config of the build reads
    the verdicts and the bytes and decodes nothing again.
    """

    def __init__(self, manifest: str | Path):
        self.folder = Path(f"{manifest}.images")
        self.verdicts_file = Path(f"{manifest}.images.jsonl")
        self.verdicts = {row["id"]: row for row in read_objects(self.verdicts_file)} if self.verdicts_file.exists() else {}

    def image(self, record_id: str, path: str, name: str) -> dict:
        """{"bytes", "path"} of the record's image; raises InvalidImageError (or OSError) for an unreadable one."""
        verdict = self.verdicts.get(record_id)
        if verdict is None:
            return self._check(record_id, path, name)
        if verdict["status"] == "unreadable":
            raise InvalidImageError(verdict["reason"])
        source = Path(path) if verdict["status"] == "as is" else self.folder / verdict["name"]
        return {"bytes": source.read_bytes(), "path": verdict["name"]}

    def _check(self, record_id: str, path: str, name: str) -> dict:
        try:
            image, reencoded = _encode(path, name)
        except (InvalidImageError, OSError) as error:
            self._record({"id": record_id, "status": "unreadable", "reason": str(error)})
            raise
        if reencoded:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / image["path"]).write_bytes(image["bytes"])
        self._record({"id": record_id, "status": "re-encoded" if reencoded else "as is", "name": image["path"]})
        return image

    def _record(self, verdict: dict) -> None:
        with open(self.verdicts_file, "a", encoding="utf-8") as handle:
            append_line(handle, verdict)
