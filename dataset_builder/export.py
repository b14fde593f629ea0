"""A built dataset written back as EmoVIT's LLaVA-style instruction JSON (`emovit data export`).

Each row becomes `{"id", "image", "task", "conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}`; the
`"task"` key (ignored by LLaVA-style readers) lets `sources.emovit_json` read every pair back under its task.
"""

import json
from pathlib import Path


def export_emovit_json(dataset_dir, out_json, split: str = "train", images_dir=None, config: str = "all") -> int:
    """Writes a built dataset's rows as EmoVIT JSON (streaming); `images_dir` also receives each image once.

    Returns the number of entries written.
    """
    import datasets

    rows = datasets.load_dataset(str(dataset_dir), config, split=split, streaming=True)
    rows = rows.cast_column("image", datasets.Image(decode=False))
    images_dir = Path(images_dir) if images_dir else None
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
