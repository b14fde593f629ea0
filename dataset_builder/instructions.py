"""Categorical emotion instructions: EmoVIT's template, verbatim, plus paraphrases for robustness.

Records -> (prompt, completion) pairs in TRL's prompt/completion convention. Conversation and reasoning pairs come
from the generation JSONL instead (dataset_builder.generation).
"""

import hashlib

from modeling_emovit.labels import EMOVIT_INSTRUCTION, categorical_answer, join_options  # noqa: F401  (re-exported)

# Index 0 is EmoVIT's instruction as released (`modeling_emovit.labels`, which a saved model's pipeline reads too).
CATEGORICAL_PARAPHRASES: list[str] = [
    EMOVIT_INSTRUCTION,
    "Which of these emotions does the image evoke most strongly: {options}? Choose only from these options and "
    "answer in the format: Predict emotion: <emotion>",
    "Look at the image and pick the single emotion it conveys best among {options}. Answer with one of the "
    "options, in the format: Predict emotion: <emotion>",
    "Classify the emotion this image evokes. Options: {options}. Do not answer outside these options. Answer "
    "format: Predict emotion: <emotion>",
    "From the candidates {options}, which emotion is closest to how this image makes a viewer feel? Reply in the "
    "format: Predict emotion: <emotion>",
]


def categorical_instruction(labels, paraphrase: int = 0) -> str:
    """The instruction listing `labels` as candidates; paraphrase 0 is EmoVIT's own template."""
    return CATEGORICAL_PARAPHRASES[paraphrase].format(options=join_options(labels))


def choose_paraphrase(record_id: str, seed: int, n: int) -> int:
    """A paraphrase index in [0, n) that depends only on the record id and the seed (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n
