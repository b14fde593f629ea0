"""What recipes train on: the training split of a built dataset (or a TRL dataset mixture), columns checked.

Flow: recipe -> `load_train_dataset` -> collator -> trainer. EmoVIT and InstructBLIP train through
`EmoVITCollator` on `prompt`/`completion` strings; other vision-language models (LLaVA, ...) read the same rows as
conversations (`as_conversations`) through TRL's own collator and their chat template.
"""

from modeling_emovit.errors import EmoVITInputError

from .collator import REQUIRED_COLUMNS, check_columns


def load_train_dataset(script_args, mixture_args):
    """The training split (a folder or Hub id plus a config name, or a TRL dataset mixture), with its columns checked.

    A missing folder, an unknown config or split, an empty split or missing columns become one-sentence
    `EmoVITInputError`s (`dataset_builder.loading.load_split`, shared with `emovit eval`).
    """
    from dataset_builder.loading import load_split
    from trl import get_dataset

    split = script_args.dataset_train_split
    if not mixture_args.datasets and not script_args.dataset_name:
        raise EmoVITInputError("The recipe names no data: set `dataset_name` (a folder or Hub id) or `datasets`.")
    if not mixture_args.datasets:
        return load_split(script_args.dataset_name, script_args.dataset_config, split, required=REQUIRED_COLUMNS)
    dataset = get_dataset(mixture_args)
    if split not in dataset:
        raise EmoVITInputError(f"The dataset mixture has no split {split!r} (it has {', '.join(dataset)}); set dataset_train_split.")
    train = dataset[split]
    check_columns(train.column_names, f"the dataset mixture, split {split}")
    if len(train) == 0:
        raise EmoVITInputError(f"The dataset mixture's split {split} has no rows; build the dataset first (`emovit data build`).")
    return train


def as_conversations(dataset):
    """`prompt`/`completion` strings -> one user and one assistant message, for TRL's own VLM collator and template."""
    return dataset.map(
        lambda row: {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant", "content": row["completion"]}],
        },
        remove_columns=[name for name in dataset.column_names if name not in REQUIRED_COLUMNS],
    )
