"""A built dataset's categorical split as a VLMEvalKit benchmark TSV (`emovit export vlmevalkit DATA out.tsv`).

The layout of VLMEvalKit's image benchmarks, as its own code reads them (github open-compass/VLMEvalKit:
`vlmeval/smp/file.py` `load` reads a `.tsv` with `pd.read_csv(f, sep='\\t')`; `vlmeval/dataset/image_base.py`
takes `index`, `image` (the image base64-encoded, decoded with PIL) and `question`; `vlmeval/dataset/emoset118k.py`
scores `prediction` against `answer`, stripped and lower-cased, for an exact match). One row per image:
- `index`: 0, 1, ...; `image`: the image's stored bytes, base64 (lossless: the file as the dataset holds it);
- `question`: EmoVIT's categorical instruction listing the label space (VLMEvalKit's EmoSet118K class replaces the
  question with its own prompt; a dataset class of your own can ask this one, docs/benchmarks.md);
- `answer`: the reference label (a polarity for a polarity view), one lower-case word as exact match wants it;
- this package's extra columns, which VLMEvalKit carries along unread: `category` (the label space), `candidates`
  (its labels, comma-separated, for a wrapper that ranks them) and `id` (the dataset's image id).
"""

import base64
import csv
from pathlib import Path

from dataset_builder.instructions import categorical_instruction

from .label_space import in_label_space, resolve_label_space

COLUMNS = ("index", "image", "question", "answer", "category", "candidates", "id")


def export_vlmevalkit_tsv(data: str, out_tsv, split: str = "test", label_space: str | None = None) -> int:
    """Writes the TSV and returns its row count. A folder or Hub id that is no built dataset with categorical rows in
    `split` (or whose emotions are not labels of `label_space`) is refused in one sentence; `out_tsv` appears only
    once complete."""
    from datasets import Image

    from dataset_builder.loading import load_split

    dataset = load_split(data, "categorical", split)
    space = resolve_label_space(dataset, label_space, data)
    rows = in_label_space(dataset, space).cast_column("image", Image(decode=False))
    question = categorical_instruction(space.labels, 0)
    out_tsv = Path(out_tsv)
    partial = out_tsv.with_name(f"{out_tsv.name}.part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(COLUMNS)
            for index, row in enumerate(rows):
                writer.writerow([index, base64.b64encode(_image_bytes(row["image"])).decode("ascii"), question,
                                 row["emotion"], space.name, ", ".join(space.labels), row["id"]])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out_tsv)
    return len(rows)


def _image_bytes(cell: dict) -> bytes:
    """The stored file (a built dataset embeds it; a dataset that kept paths only is read from the path)."""
    return cell["bytes"] if cell.get("bytes") else Path(cell["path"]).read_bytes()
