"""What the GRPO stage trains on, from a built dataset: prompts with their gold label, and cold-start answers.

Flow: `emovit data build` -> `grpo_prompts` (any config's rows, one per image: the reasoning question over the label
space's candidates, the image, the gold `emotion` and the `candidates` the rewards read) -> `GRPOTrainer`; and
`cold_start_rows` (the `reasoning` config: each GPT-written reasoning answer becomes the `<think>` of a
well-formed reasoning answer for the image's gold label) -> `SFTTrainer`, so that the model emits the format
before RL asks for it. Both prompts are `dataset_builder.reasoning_format.reasoning_instruction`.
"""

import re

from dataset_builder.reasoning_format import reasoned_answer, reasoning_instruction
from modeling_emovit.errors import EmoVITInputError

from .data import as_conversations


def grpo_prompts(dataset, labels: tuple[str, ...], data: str):
    """`prompt` (one user turn; TRL inserts the image before it), `image`, `emotion`, `candidates`: one row per
    image, the first row of each (a build has one per instruction)."""
    from datasets import Image

    dataset = _labelled(dataset, labels, data)
    first_rows = first_row_per_image(dataset)
    question = reasoning_instruction(labels)
    return dataset.select(first_rows).cast_column("image", Image()).map(
        lambda row: {"prompt": [{"role": "user", "content": question}], "candidates": list(labels)},
        remove_columns=[name for name in dataset.column_names if name not in ("image", "emotion")],
    )


def cold_start_rows(dataset, labels: tuple[str, ...], sentences: int, data: str, stated):
    """The reasoning rows as conversations for TRL's SFT collator: the reasoning question, then
    `<think>{the reasoning answer}</think><answer>{gold}</answer><confidence>{c}</confidence>`, the reasoning cut to
    its first `sentences` sentences (0: whole) and `c` = `stated(row index, row)`: `stated_confidence` in turn, or
    each image's own (`emovit.training.confidence_targets`)."""
    from datasets import Image

    dataset = _labelled(dataset, labels, data)
    question = reasoning_instruction(labels)
    rows = dataset.map(lambda row, k: {
        "prompt": question,
        "completion": reasoned_answer(first_sentences(row["completion"], sentences), row["emotion"], stated(k, row)),
    }, with_indices=True)
    return as_conversations(rows.cast_column("image", Image()))


def stated_confidence(row: int, center: float, spread: float) -> float:
    """Row `row`'s confidence: `center` plus `spread` times -1, -0.5, 0, 0.5 and 1 in turn (all `center` for 0), so
    that the cold-started model states several numbers and GRPO's confidence reward has them to choose between."""
    return round(center + spread * ((row % 5) - 2) / 2, 4)


def first_sentences(text: str, count: int) -> str:
    """The first `count` sentences of `text` (all of it for 0)."""
    if count <= 0:
        return text
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:count])


def _labelled(dataset, labels: tuple[str, ...], data: str):
    """Refuses rows without a gold emotion of the label space, naming the first."""
    columns = dataset.select_columns(["id", "emotion"]).to_dict()  # each column read once
    unlabelled = [row_id for row_id, emotion in zip(columns["id"], columns["emotion"]) if emotion not in labels]
    if unlabelled:
        raise EmoVITInputError(
            f"{data}: {len(unlabelled)} row(s) have no emotion of the label space ({', '.join(labels)}), the first "
            f"{unlabelled[0]!r}; GRPO's rewards check answers against each row's `emotion`."
        )
    return dataset


def image_key(dataset) -> str:
    """The column that names a row's image: its content hash, or its id in builds that predate the hash."""
    return "image_sha256" if "image_sha256" in dataset.column_names else "id"


def first_row_per_image(dataset) -> list[int]:
    """The index of each image's first row (images named by `image_key`), in row order."""
    seen, rows = set(), []
    for row, key in enumerate(dataset[image_key(dataset)]):
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows
