"""Which images a model was trained on, kept beside its weights, so that an evaluation can say how many of its test
images the model has already seen (emotion datasets scraped from the web are full of re-posted images).

Flow: the dataset's `image_sha256` column (`images.image_digest`: SHA-256 of the stored bytes) -> training writes
MODEL/training_images.npy -> `emovit eval` counts the test split's images found there -> results.json, model card.

The file is a NumPy array (`np.save`, no pickle) of the distinct images' fingerprints: the first 8 bytes of each
SHA-256 read as a big-endian unsigned 64-bit integer, sorted. 8 bytes per image (118K images: under 1 MB); two
different images share a fingerprint with probability about n*m / 2^64 (1e-10 for EmoSet's train and test splits).
Byte-identical files only: a resized or re-compressed copy of an image is a different image here.
"""

from pathlib import Path

import numpy as np

from .images import image_digest

TRAINING_IMAGES_FILE = "training_images.npy"


def fingerprints(hex_digests) -> np.ndarray:
    """Sorted distinct fingerprints (uint64) of SHA-256 hex digests."""
    values = {int(digest[:16], 16) for digest in hex_digests if digest}
    return np.array(sorted(values), dtype=np.uint64)


def split_digests(dataset) -> list[str]:
    """Each row's image hash: the `image_sha256` column a build writes, else computed from the stored bytes a batch
    at a time (a dataset built by an earlier version, or not by `emovit data build`; `images` rows: their first)."""
    if "image_sha256" in dataset.column_names:
        return list(dataset["image_sha256"])
    from datasets import Image, Sequence

    column = "image" if "image" in dataset.column_names else "images"
    undecoded = Image(decode=False)
    cells = dataset.select_columns([column]).cast_column(column, undecoded if column == "image" else Sequence(undecoded))
    digests = []
    for batch in cells.iter(batch_size=256):
        for cell in batch[column]:
            cell = cell[0] if column == "images" and cell else cell
            digests.append(image_digest(cell["bytes"]) if cell and cell.get("bytes") else "")
    return digests


def write_training_images(folder, dataset) -> int:
    """Writes FOLDER/training_images.npy for a training split; returns how many distinct images it holds."""
    values = fingerprints(split_digests(dataset))
    np.save(Path(folder) / TRAINING_IMAGES_FILE, values, allow_pickle=False)
    return len(values)


def seen_in_training(folder, dataset) -> dict | None:
    """`{"count", "of", "ids"}`: how many of `dataset`'s images the model in FOLDER was trained on, with the first 20
    ids; None when FOLDER records no training images."""
    path = Path(folder) / TRAINING_IMAGES_FILE
    if not path.is_file():
        return None
    trained = np.load(path, allow_pickle=False)
    ids = dataset["id"]
    found = [example_id for example_id, digest in zip(ids, split_digests(dataset))
             if digest and _contains(trained, int(digest[:16], 16))]
    return {"count": len(found), "of": len(ids), "ids": sorted(found)[:20]}


def _contains(sorted_values: np.ndarray, value: int) -> bool:
    index = int(np.searchsorted(sorted_values, np.uint64(value)))
    return index < len(sorted_values) and int(sorted_values[index]) == value
