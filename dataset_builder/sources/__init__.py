"""Source readers: each released dataset layout -> EmotionRecords with labels of the dataset's label space.

`read_records` is the one entry point: it checks the root, normalises every label onto its space, and skips (and
counts in the report) duplicates, missing images and, with `skip_unknown`, labels outside the space.
"""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from ..emotions import get_label_space, normalize_emotion
from ..records import EmotionRecord
from ..report import BuildReport, ItemReport
from . import emoset, emotion6, emotionroi, emovit_json, fi, imagefolder, unbiasedemo, webemo
from .base import OUTSIDE_ROOT, Source, inside_root

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        emoset.SOURCE,
        fi.SOURCE,
        emotionroi.SOURCE,
        emotion6.SOURCE,
        *webemo.SOURCES,
        unbiasedemo.SOURCE,
        imagefolder.SOURCE,
        emovit_json.SOURCE,
    )
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise EmoVITInputError(f"Unknown source {name!r}: use one of {', '.join(SOURCES)}.")
    return SOURCES[name]


def _check_root(root: Path) -> None:
    if not root.exists():
        raise EmoVITInputError(f"{root}: the dataset root does not exist.")
    if root.is_dir() and not any(root.iterdir()):
        raise EmoVITInputError(f"{root}: the dataset root is empty.")


def read_records(
    source: str, root, split: str, report: ItemReport | None = None, *, skip_unknown: bool = False,
    allow_outside_root: bool = False,
) -> Iterator[EmotionRecord]:
    """Yields the usable records of one split of a source, labels normalised onto the record's label space.

    An image whose path resolves outside the root (`../`, an absolute path, a symlink leading out) is skipped and
    counted unless `allow_outside_root`. Raises EmoVITInputError for a missing or empty root, an unknown label
    (unless `skip_unknown`), or a split that yields no usable image at all.
    """
    reader = get_source(source)
    root = Path(root)
    _check_root(root)
    images_root = root if root.is_dir() else root.parent  # an EmoVIT .json file names images beside it
    report = report if report is not None else BuildReport(source=source, split=split)
    seen: set[str] = set()
    for record in reader.read(root, split, report):
        if not (allow_outside_root or inside_root(record.image_path, images_root)):
            report.skip(OUTSIDE_ROOT, record.id)
            continue
        label = normalize_emotion(record.label, record.label_space)
        if label is None:
            if not skip_unknown:
                space = get_label_space(record.label_space)
                raise EmoVITInputError(
                    f"{record.image_path}: label {record.label!r} is not in the {space.name} label space "
                    f"({', '.join(space.labels)}); fix it or pass --skip-unknown to skip such images."
                )
            report.skip("label outside the label space", f"{record.id} ({record.label})")
        elif record.id in seen:
            report.skip("duplicate id", record.id)
        elif not Path(record.image_path).is_file():
            report.skip("missing image file", record.id)
        else:
            seen.add(record.id)
            yield replace(record, label=label)
    if not seen:
        raise EmoVITInputError(
            f"{root}: split {split!r} of source {source} names no existing, usable image ({report.skipped_summary()})."
        )
