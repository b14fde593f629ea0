"""WEBEmo (Panda et al., ECCV 2018): web images weakly labelled with 25 fine emotions, read at any of the
hierarchy's three levels: `webemo` (25 classes), `webemo-7` (primaries) and `webemo-2` (polarity).

The 7-class level is unverified: WEBEmo's own `category.txt` has six level-2 classes, with confusion under sadness;
`webemo-7` splits confusion out, as later third-party work does (see `dataset_builder.emotions.WEBEMO_HIERARCHY`).

Layout: `<split>/<fine class>/*.jpg` folders or `<split>.txt` lists naming the fine class; the release's folder
names ("cheerfullness", "irritabilty") are accepted.
"""

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..emotions import WEBEMO_PRIMARY_OF, normalize_emotion, webemo_polarity
from ..records import EmotionRecord
from .base import Source, read_class_dataset

LICENSE_NOTE = "WEBEmo images come from web searches and remain under their owners' copyright; research use only."
LABEL_NOTES = {
    "webemo-7": "The 7 classes (anger, confusion, fear, joy, love, sadness, surprise) are unverified: WEBEmo's own "
                "category.txt has six level-2 classes with confusion under sadness; this level splits confusion out, "
                "as later third-party work does, and no definition by EmoVIT's or WEBEmo's authors was found.",
}


def _coarser(fine: str, level: str) -> str:
    primary = WEBEMO_PRIMARY_OF[fine]
    return primary if level == "webemo-7" else webemo_polarity(primary)


def read(root: Path, split: str, report, level: str = "webemo-25") -> Iterator[EmotionRecord]:
    records = read_class_dataset(root, split, source="webemo", label_space="webemo-25", image_dirs=("images",))
    for record in records:
        fine = normalize_emotion(record.label, "webemo-25")
        if level != "webemo-25" and fine is not None:
            record = replace(record, label=_coarser(fine, level))
        yield replace(record, label_space=level)


SOURCES = [
    Source(name, level, LICENSE_NOTE, partial(read, level=level), label_note=LABEL_NOTES.get(level))
    for name, level in (("webemo", "webemo-25"), ("webemo-7", "webemo-7"), ("webemo-2", "webemo-2"))
]
