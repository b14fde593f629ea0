"""UnbiasedEmo (Panda et al., ECCV 2018): six emotions, each shown on the same object classes to remove object bias;
`images/<emotion>/<object>/*.jpg` (the object folder is kept in the id)."""

from pathlib import Path

from .base import Source, read_class_dataset

LICENSE_NOTE = "UnbiasedEmo images come from web searches and remain under their owners' copyright; research use only."


def read(root: Path, split: str, report):
    return read_class_dataset(root, split, source="unbiasedemo", label_space="unbiasedemo", image_dirs=("images",))


SOURCE = Source("unbiasedemo", "unbiasedemo", LICENSE_NOTE, read)
