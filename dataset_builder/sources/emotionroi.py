"""EmotionROI (Peng et al., CVPR 2016): Ekman-6 class folders `images/<class>/*.jpg` and the released
`training.txt`/`testing.txt` split lists (paths such as `anger/1.jpg`)."""

from pathlib import Path

from .base import Source, read_class_dataset

LICENSE_NOTE = "EmotionROI images come from Flickr; the release is for non-commercial research only."
_LISTS = {
    "train": ("training.txt", "training_testing_split/training.txt"),
    "test": ("testing.txt", "training_testing_split/testing.txt"),
}


def read(root: Path, split: str, report):
    return read_class_dataset(
        root, split, source="emotionroi", label_space="emotionroi", image_dirs=("images",), list_names=_LISTS
    )


SOURCE = Source("emotionroi", "emotionroi", LICENSE_NOTE, read)
