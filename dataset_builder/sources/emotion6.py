"""Emotion6 (Peng et al., CVPR 2015): Ekman-6, `images/<class>/*.jpg` (six folders), and `ground_truth.txt` with each
image's valence, arousal and per-emotion probability distribution over the six emotions plus neutral, which the
records keep. Neutral is a bin of the distributions only, never an image's label or a classification candidate.

ground_truth.txt columns: image path, valence, arousal, then probabilities of anger, disgust, fear, joy, sadness,
surprise, neutral (tab-separated, a header line first).
"""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from modeling_emovit.errors import reading

from ..records import EmotionRecord
from .base import Source, read_class_dataset

LICENSE_NOTE = "Emotion6 images come from Flickr; the release is for non-commercial research only."
_DISTRIBUTION_ORDER = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


def _ground_truth(root: Path, report) -> dict[str, tuple[float, float, dict[str, float]]]:
    """image id ("anger/1") -> (valence, arousal, distribution); empty when the file is absent."""
    path = root / "ground_truth.txt"
    table = {}
    if not path.is_file():
        return table
    with reading(path):
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        cells = line.split()
        if not cells:
            continue
        try:
            numbers = [float(cell) for cell in cells[1:]]
        except ValueError:
            report.skip("unreadable ground_truth.txt line", line[:80])
            continue
        if len(numbers) != 2 + len(_DISTRIBUTION_ORDER):
            report.skip("unreadable ground_truth.txt line", line[:80])
            continue
        table[Path(cells[0]).with_suffix("").as_posix()] = (
            numbers[0], numbers[1], dict(zip(_DISTRIBUTION_ORDER, numbers[2:])),
        )
    return table


def read(root: Path, split: str, report) -> Iterator[EmotionRecord]:
    truth = _ground_truth(root, report)
    records = read_class_dataset(root, split, source="emotion6", label_space="emotion6", image_dirs=("images",))
    for record in records:
        if record.id in truth:
            valence, arousal, distribution = truth[record.id]
            attributes = {"valence": valence, "arousal": arousal}
            record = replace(record, attributes=attributes, label_distribution=distribution)
        yield record


SOURCE = Source("emotion6", "emotion6", LICENSE_NOTE, read)
