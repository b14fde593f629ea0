"""What recipes train on: the training split of a built dataset (or a TRL dataset mixture), columns checked.

Flow: recipe -> `load_train_dataset` -> collator -> trainer. EmoVIT and InstructBLIP train through
`EmoVITCollator` on `prompt`/`completion` strings; other vision-language models (LLaVA, ...) read the same rows as
conversations (`as_conversations`), or the `messages` config as it is, through TRL's own collator and their chat
template.
"""

from dataset_builder.schema import MESSAGES_CONFIG
from modeling_emovit.errors import EmoVITInputError

from .collator import REQUIRED_COLUMNS, check_columns

CONVERSATION_COLUMNS = ("images", "messages")  # TRL's conversational vision format (`emovit data build` config `messages`)


def is_conversational(dataset) -> bool:
    """Whether rows are `images` + `messages` conversations (else `image` + `prompt` / `completion`)."""
    return set(CONVERSATION_COLUMNS) <= set(dataset.column_names)


def check_model_reads(dataset, model: str, trust_remote_code: bool = False) -> None:
    """Refuses conversations for EmoVIT/InstructBLIP, from the model's config alone (before the weights load): TRL's
    collator renders the whole conversation into the Q-Former's text input, answers included."""
    from modeling_emovit.loading import EMOVIT_MODEL_TYPES, model_type_of

    if is_conversational(dataset) and model_type_of(model, trust_remote_code) in EMOVIT_MODEL_TYPES:
        raise EmoVITInputError(
            f"{model} is an EmoVIT/InstructBLIP model, which trains on prompt/completion rows (dataset_config "
            f"categorical, conversation, reasoning or all), not on the `messages` conversations."
        )


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
        conversations = script_args.dataset_config == MESSAGES_CONFIG
        required = CONVERSATION_COLUMNS if conversations else REQUIRED_COLUMNS
        return load_split(script_args.dataset_name, script_args.dataset_config, split, required=required)
    dataset = get_dataset(mixture_args)
    if split not in dataset:
        raise EmoVITInputError(f"The dataset mixture has no split {split!r} (it has {', '.join(dataset)}); set dataset_train_split.")
    train = dataset[split]
    if not is_conversational(train):
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
