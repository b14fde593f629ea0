"""Shared pieces of the source readers: the `Source` description and the layouts several datasets share.

A reader yields EmotionRecords with the label as the dataset spells it; `read_records` (sources/__init__.py)
normalises labels, drops duplicates and missing files, and counts every skipped item.
"""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading

from ..records import EmotionRecord

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
OUTSIDE_ROOT = "path outside --root (read only with --allow-outside-root)"


@dataclass(frozen=True)
class Source:
    """A dataset as released: its label space, licence note and reader `read(root, split, report)`.

    `generations(root, split)`, where a source carries its own Q/A pairs (EmoVIT JSON), yields generation-JSONL
    entries. `label_note` is printed in the dataset card (e.g. a label level that could not be verified).
    `class_labels(root, split)`, where the data itself names its labels (an image folder's class folders), returns
    them (None when it does not): they define the label space of the records read.
    """

    name: str
    label_space: str
    license_note: str
    read: Callable[..., Iterator[EmotionRecord]]
    generations: Callable[..., Iterator[dict]] | None = None
    label_note: str | None = None
    class_labels: Callable[..., tuple[str, ...] | None] | None = None


def inside_root(path: str | Path, resolved_root: Path) -> bool:
    """Whether `path` resolves (`..` collapsed, symlinks followed) to a place under `resolved_root` (a resolved
    path: the caller resolves the root once, not once per image)."""
    return Path(path).resolve().is_relative_to(resolved_root)


def stays_under(relative: str) -> bool:
    """Whether a path written in a split file stays under the folder it is relative to, as written: not absolute,
    and no `..` leading out. Symlinks are not followed (a folder the user linked in stays usable)."""
    depth = 0
    for part in Path(relative).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return not Path(relative).is_absolute()


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def record_id(path: Path, base: Path) -> str:
    """Id of an image: its path under `base` without the extension ("anger/12")."""
    return path.relative_to(base).with_suffix("").as_posix()


def iter_class_folders(folder: Path, source: str, label_space: str, split: str) -> Iterator[EmotionRecord]:
    """`folder/<class>/**/<image>`: the label is the class folder's name; sub-folders (UnbiasedEmo's objects)
    recurse."""
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in class_dir.rglob("*") if is_image(p)):
            yield EmotionRecord(record_id(path, folder), str(path), class_dir.name, label_space, split, source)


def read_list_file(path: Path) -> Iterator[tuple[str, str]]:
    """(relative image path, label) from a split list: "path label" or "path,label" lines; a header and blank or #
    lines are ignored; a line with only a path takes the label from the path's first folder."""
    with reading(path), open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="," if path.suffix == ".csv" else " ", skipinitialspace=True):
            row = [cell for cell in row if cell]
            if not row or row[0].startswith("#") or row[0].lower() in {"path", "file_name", "image"}:
                continue
            label = row[1] if len(row) > 1 else Path(row[0]).parts[0]
            yield row[0], label


def read_class_dataset(
    root: Path,
    split: str,
    *,
    source: str,
    label_space: str,
    image_dirs: tuple[str, ...],
    list_names: dict[str, tuple[str, ...]] | None = None,
) -> Iterator[EmotionRecord]:
    """The layouts of FI, EmotionROI, Emotion6, UnbiasedEmo and WEBEmo, tried in this order:

    1. a split list `<root>/<name>` (names from `list_names[split]`, default `<split>.txt`/`<split>.csv`), paths
       relative to the image folder or the root;
    2. `<root>/<split>/<class>/...` folders;
    3. split "all": every image under the image folder (`<image_dir>/<class>/...`), for datasets without splits.
    """
    image_root = next((root / name for name in image_dirs if (root / name).is_dir()), root)
    names = (list_names or {}).get(split, ()) + (f"{split}.txt", f"{split}.csv")
    list_file = next((root / name for name in names if (root / name).is_file()), None)
    if list_file is not None:
        for relative, label in read_list_file(list_file):
            path = image_root / relative if (image_root / relative).exists() else root / relative
            yield EmotionRecord(Path(relative).with_suffix("").as_posix(), str(path), label, label_space, split, source)
    elif (root / split).is_dir():
        yield from iter_class_folders(root / split, source, label_space, split)
    elif split == "all":
        yield from iter_class_folders(image_root, source, label_space, split)
    else:
        raise EmoVITInputError(
            f"{root}: no split list ({', '.join(names)}) and no {split}/ folder of class folders; "
            f"pass --split all to read every image under {image_root}."
        )
