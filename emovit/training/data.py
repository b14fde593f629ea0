"""What recipes train on: the training split of a built dataset (or a TRL dataset mixture), columns checked.

Flow: recipe -> `load_train_dataset` -> collator -> trainer. EmoVIT and InstructBLIP train through
`EmoVITCollator` on `prompt`/`completion` strings; other vision-language models (LLaVA, ...) read the same rows as
conversations (`as_conversations`), or the `messages` config as it is, through TRL's own collator and their chat
template. With `dataset_streaming` (or a mixture's `streaming`) the split is a `datasets.IterableDataset`, read as
the trainer iterates it: rows are fetched and decoded as batches need them, none is copied to an Arrow cache first.
"""

from pathlib import Path

from dataset_builder.schema import MESSAGES_CONFIG
from modeling_emovit.errors import EmoVITInputError

from .collator import REQUIRED_COLUMNS, check_columns

CONVERSATION_COLUMNS = ("images", "messages")  # TRL's conversational vision format (`emovit data build` config `messages`)
# A stream has no sampler to shuffle it: `IterableDataset.shuffle` draws from a buffer of this many rows (datasets'
# default) and shuffles the shard order; built folders list rows in source order, often class by class.
STREAM_SHUFFLE_BUFFER = 1000


def is_conversational(dataset) -> bool:
    """Whether rows are `images` + `messages` conversations (else `image` + `prompt` / `completion`)."""
    return set(CONVERSATION_COLUMNS) <= set(dataset.column_names or ())


def check_model_reads(dataset, model: str, trust_remote_code: bool = False) -> None:
    """Refuses conversations for EmoVIT/InstructBLIP, from the model's config alone (before the weights load): TRL's
    collator renders the whole conversation into the Q-Former's text input, answers included."""
    from modeling_emovit.loading import EMOVIT_MODEL_TYPES, model_type_of

    if is_conversational(dataset) and model_type_of(model, trust_remote_code) in EMOVIT_MODEL_TYPES:
        raise EmoVITInputError(
            f"{model} is an EmoVIT/InstructBLIP model, which trains on prompt/completion rows (dataset_config "
            f"categorical, conversation, reasoning or all), not on the `messages` conversations."
        )


def check_streaming(script_args, training_args, mixture_args) -> bool:
    """Whether the recipe streams its data; refuses, before anything loads, what a stream (no length) cannot do."""
    streaming = mixture_args.streaming if mixture_args.datasets else script_args.dataset_streaming
    if not streaming:
        return False
    if training_args.max_steps <= 0:
        raise EmoVITInputError(
            f"{'streaming' if mixture_args.datasets else 'dataset_streaming'}: a streamed dataset has no length, so "
            f"the run is as long as max_steps says (as in transformers); set --max_steps N, the optimizer steps to train."
        )
    if script_args.lr_schedule == "lavis":
        raise EmoVITInputError(
            "lr_schedule: lavis holds each epoch's rate for a whole epoch, and a streamed dataset does not know its "
            "epoch's length; train without dataset_streaming, or with lr_schedule: transformers."
        )
    if script_args.vision_feature_cache:
        raise EmoVITInputError(
            "vision_feature_cache joins its features to the rows by position, which a streamed dataset cannot; "
            "train without dataset_streaming, or without the cache."
        )
    return True


def load_train_dataset(script_args, mixture_args, training_args):
    """`(training split, its row count)`: a folder or Hub id plus a config name, or a TRL dataset mixture, with its
    columns checked; streamed (`check_streaming`), an `IterableDataset` shuffled through a buffer, whose row count is
    None when neither its Parquet files nor its card give it.

    A missing folder, an unknown config or split, an empty split or missing columns become one-sentence
    `EmoVITInputError`s (`dataset_builder.loading.load_split`, shared with `emovit eval`).
    """
    from dataset_builder.loading import is_empty, load_split
    from trl import get_dataset

    split = script_args.dataset_train_split
    streaming = check_streaming(script_args, training_args, mixture_args)
    if not mixture_args.datasets and not script_args.dataset_name:
        raise EmoVITInputError("The recipe names no data: set `dataset_name` (a folder or Hub id) or `datasets`.")
    if not mixture_args.datasets:
        conversations = script_args.dataset_config == MESSAGES_CONFIG
        required = CONVERSATION_COLUMNS if conversations else REQUIRED_COLUMNS
        train = load_split(script_args.dataset_name, script_args.dataset_config, split, required=required,
                           streaming=streaming)
    else:
        dataset = get_dataset(mixture_args)
        if split not in dataset:
            raise EmoVITInputError(f"The dataset mixture has no split {split!r} (it has {', '.join(dataset)}); set dataset_train_split.")
        train = dataset[split]
        if train.column_names is not None and not is_conversational(train):  # a stream may not know its columns
            check_columns(train.column_names, f"the dataset mixture, split {split}")
        if is_empty(train):
            raise EmoVITInputError(f"The dataset mixture's split {split} has no rows; build the dataset first (`emovit data build`).")
    if not streaming:
        return train, len(train)
    rows = _streamed_rows(train, None if mixture_args.datasets else script_args)
    return train.shuffle(seed=training_args.seed, buffer_size=STREAM_SHUFFLE_BUFFER), rows


def _streamed_rows(stream, script_args) -> int | None:
    """A stream's rows: summed from the Parquet footers of a local folder (`script_args`; None for a mixture), else
    from the split sizes its card records, else None."""
    from dataset_builder.loading import local_parquet_files

    folder = Path(script_args.dataset_name) if script_args else None
    local = local_parquet_files(folder, script_args.dataset_config, stream.split) if folder and folder.is_dir() else None
    if local and local[0]:
        import pyarrow.parquet

        files, filters = local
        if filters:  # the config's rows among every task's (`all/`): one small column read, filtered
            rule = [tuple(condition) for condition in filters]
            return sum(pyarrow.parquet.read_table(path, columns=[rule[0][0]], filters=rule).num_rows for path in files)
        return sum(pyarrow.parquet.read_metadata(path).num_rows for path in files)
    splits = stream.info.splits
    return splits[stream.split].num_examples if splits and stream.split in splits else None


def as_conversations(dataset):
    """`prompt`/`completion` strings -> one user and one assistant message, for TRL's own VLM collator and template."""
    return dataset.map(
        lambda row: {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant", "content": row["completion"]}],
        },
        remove_columns=[name for name in dataset.column_names if name not in REQUIRED_COLUMNS],
    )
