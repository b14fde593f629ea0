"""A built dataset written back as EmoVIT's LLaVA-style instruction JSON (`emovit data export`).

Each row becomes `{"id", "image", "task", "conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}`; the
`"task"` key (ignored by LLaVA-style readers) lets `sources.emovit_json` read every pair back under its task.
"""

import json
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError


def export_emovit_json(dataset_dir, out_json, split: str = "train", images_dir=None, config: str = "all") -> int:
    """Writes a built dataset's rows as EmoVIT JSON (streaming); `images_dir` also receives each image once.

    Returns the number of entries written. A folder that is not a built dataset (or lacks `config`) is refused in
    one sentence, and `out_json` appears only once it is complete.
    """
    import datasets

    try:
        rows = datasets.load_dataset(str(dataset_dir), config, split=split, streaming=True)
    except ValueError as error:  # an unknown config or split: datasets lists the available ones
        raise EmoVITInputError(
            f"{dataset_dir}: cannot read config {config!r}, split {split!r} ({' '.join(str(error).split())}); pass a "
            "folder written by `emovit data build`."
        ) from None
    rows = rows.cast_column("image", datasets.Image(decode=False))
    partial = Path(f"{out_json}.part")
    try:
        written = _write_entries(rows, partial, Path(images_dir) if images_dir else None)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out_json)
    return written


def _write_entries(rows, out_json: Path, images_dir: Path | None) -> int:
    written, saved = 0, set()
    with open(out_json, "w", encoding="utf-8") as handle:
        handle.write("[")
        for row in rows:
            image_name = Path(row["image"]["path"] or row["id"]).name
            if images_dir is not None and row["id"] not in saved:
                images_dir.mkdir(parents=True, exist_ok=True)
                (images_dir / image_name).write_bytes(row["image"]["bytes"])
                saved.add(row["id"])
            entry = {
                "id": row["id"],
                "image": image_name,
                "task": row["task"],
                "conversations": [
                    {"from": "human", "value": row["prompt"]},
                    {"from": "gpt", "value": row["completion"]},
                ],
            }
            handle.write(("," if written else "") + "\n" + json.dumps(entry, ensure_ascii=False))
            written += 1
        handle.write("\n]\n")
    return written
