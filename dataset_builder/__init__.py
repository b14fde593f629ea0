"""Emotion instruction data: label spaces, source readers, instruction generation, and a `datasets` builder.

Flow: source reader -> EmotionRecord -> manifests -> EmoVITInstructBuilder -> Parquet + card -> load_dataset;
generation (captions, GPT-written pairs) feeds the builder through a JSONL file. Nothing here imports torch or
transformers; `datasets` loads only in the modules that write or read Parquet.
"""

import importlib

_LAZY = {
    "EmotionRecord": "dataset_builder.records",
    "EmoVITInstructBuilder": "dataset_builder.builder",
    "build_dataset": "dataset_builder.build",
    "BuildReport": "dataset_builder.report",
    "LabelSpace": "dataset_builder.emotions",
    "LABEL_SPACES": "dataset_builder.emotions",
    "get_label_space": "dataset_builder.emotions",
    "normalize_emotion": "dataset_builder.emotions",
    "polarity_of": "dataset_builder.emotions",
    "categorical_instruction": "dataset_builder.instructions",
    "categorical_answer": "dataset_builder.instructions",
    "read_records": "dataset_builder.sources",
    "SOURCES": "dataset_builder.sources",
    "export_emovit_json": "dataset_builder.export",
    "image_digest": "dataset_builder.images",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dataset_builder' has no attribute {name!r}")
