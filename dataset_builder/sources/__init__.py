"""Source readers: each released dataset layout -> EmotionRecords with labels of the dataset's label space.

`read_records` is the one entry point: it checks the root, normalises every label onto its space (counting each
label it reads as another, "happiness -> joy"), and skips (and counts in the report) duplicates, missing images,
file names that are not UTF-8 and, with `skip_unknown`, labels outside the space. `label_space_for` says which
space that is when the data or the command line defines it (class folders, `--labels`, `--label-space`).
"""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from ..emotions import LABEL_SPACES, LabelSpace, defined_label_space, normalize_emotion
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


def label_space_for(source: str, root, split: str, label_space: str | None = None, labels=None) -> LabelSpace | None:
    """The one label space every record of this read is put in, or None for each record's own (the source's, or a
    metadata row's `label_space`).

    `labels` (from --labels) define a space named `label_space` (default: the built-in space with those labels, else
    "custom"); `label_space` alone must be built in. Without either, an image folder's class folders define the
    space (their names, sorted, named after the built-in space with the same labels or "custom")."""
    if labels:
        return defined_label_space(label_space, labels)
    if label_space is not None:
        if label_space not in LABEL_SPACES:
            raise EmoVITInputError(
                f"--label-space {label_space}: not a built-in label space ({', '.join(LABEL_SPACES)}); list its "
                "labels with --labels a,b,c to define it."
            )
        return LABEL_SPACES[label_space]
    reader, root = get_source(source), Path(root)
    folder_labels = reader.class_labels(root, split) if reader.class_labels and root.is_dir() else None
    return defined_label_space(None, folder_labels) if folder_labels else None


def _printable(text: str) -> str:
    """A path as a report can store it: bytes that are not UTF-8 (kept by Python as surrogates) shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_utf8(*texts: str | None) -> bool:
    try:
        for text in texts:
            (text or "").encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _space_of(record: EmotionRecord, space: LabelSpace | None) -> LabelSpace:
    if space is not None:
        return space
    if record.label_space not in LABEL_SPACES:
        raise EmoVITInputError(
            f"{record.image_path}: label space {record.label_space!r} is not built in ({', '.join(LABEL_SPACES)}); "
            f"define it with --labels a,b,c --label-space {record.label_space}."
        )
    return LABEL_SPACES[record.label_space]


def read_records(
    source: str, root, split: str, report: ItemReport | None = None, *, skip_unknown: bool = False,
    allow_outside_root: bool = False, label_space: LabelSpace | None = None,
) -> Iterator[EmotionRecord]:
    """Yields the usable records of one split of a source, labels normalised onto the record's label space.

    `label_space` puts every record in that space (default: `label_space_for(source, root, split)`, the space an
    image folder's class folders define, or each record's own). A label read as another label ("Happiness" as
    "joy") is counted in `report.label_mappings`. An image whose path resolves outside the root (`../`, an absolute
    path, a symlink leading out) is skipped and counted unless `allow_outside_root`, as is one whose path is not
    UTF-8. Raises EmoVITInputError for a missing or empty root, an unknown label (unless `skip_unknown`), or a split
    that yields no usable image at all.
    """
    reader = get_source(source)
    root = Path(root)
    _check_root(root)
    space = label_space if label_space is not None else label_space_for(source, root, split)
    images_root = (root if root.is_dir() else root.parent).resolve()  # an EmoVIT .json file names images beside it
    report = report if report is not None else BuildReport(source=source, split=split)
    seen: set[str] = set()
    for record in reader.read(root, split, report):
        if not _is_utf8(record.id, record.image_path, record.label):
            report.skip("file name or label not valid UTF-8", _printable(record.image_path))
            continue
        if not (allow_outside_root or inside_root(record.image_path, images_root)):
            report.skip(OUTSIDE_ROOT, record.id)
            continue
        record_space = _space_of(record, space)
        label = normalize_emotion(record.label, record_space)
        if label is None:
            if not skip_unknown:
                raise EmoVITInputError(
                    f"{record.image_path}: label {record.label!r} is not in the {record_space.name} label space "
                    f"({', '.join(record_space.labels)}); fix it or pass --skip-unknown to skip such images."
                )
            report.skip("label outside the label space", f"{record.id} ({record.label})")
        elif record.id in seen:
            report.skip("duplicate id", record.id)
        elif not Path(record.image_path).is_file():
            report.skip("missing image file", record.id)
        else:
            seen.add(record.id)
            if label != record.label:
                report.map_label(record.label, label)
            yield replace(record, label=label, label_space=record_space.name)
    if not seen:
        raise EmoVITInputError(
            f"{root}: split {split!r} of source {source} names no existing, usable image ({report.skipped_summary()})."
        )
