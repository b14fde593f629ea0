"""FI (Flickr and Instagram, You et al., AAAI 2016): Mikels-8 class folders (`emotion_dataset/<class>/*.jpg`).

The release has no official split: use `--split all`, a `<split>.txt` list, or `<split>/<class>/` folders.
"""

from pathlib import Path

from .base import Source, read_class_dataset

LICENSE_NOTE = (
    "FI images were collected from Flickr and Instagram and remain under their owners' copyright; the FI release "
    "is for academic research only."
)


def read(root: Path, split: str, report):
    return read_class_dataset(root, split, source="fi", label_space="fi", image_dirs=("emotion_dataset", "images"))


SOURCE = Source("fi", "fi", LICENSE_NOTE, read)
