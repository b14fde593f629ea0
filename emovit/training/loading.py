"""What recipes/sft.py trains on: the model and processor (tiny random, EmoVIT, InstructBLIP, other VLM) and the data.

Flow: recipe -> `load_model_and_processor` / `load_train_dataset` -> collator -> trainer. EmoVIT and InstructBLIP
checkpoints become `EmoVITForConditionalGeneration` (an InstructBLIP config converts on load); any other
`AutoModelForImageTextToText` model (LLaVA, ...) is trained the stock TRL way on the same instruction data.
"""

import logging
import re

from modeling_emovit.errors import EmoVITInputError

from .collator import REQUIRED_COLUMNS, check_columns

logger = logging.getLogger(__name__)

# `tiny-random`, `small-random-t5`, ...: a random model built offline (`modeling_emovit.testing.tiny_emovit`).
TINY_MODEL = re.compile(r"^(?P<size>tiny|small)-random(?:-(?P<text_model>llama|opt|t5))?$")
EMOVIT_MODEL_TYPES = ("emovit", "instructblip")
# LoRA targets when the recipe names none: the Q-Former's self- and cross-attention and the LM's attention
# (Llama/OPT `q_proj|k_proj|v_proj`, T5 `SelfAttention.q|k|v`).
EMOVIT_LORA_TARGETS = (
    r".*qformer\.encoder\.layer\.\d+\.(attention|crossattention)\.attention\.(query|key|value)"
    r"|.*language_model\..*\.(q_proj|k_proj|v_proj|SelfAttention\.[qkv])"
)
EMOVIT_LORA_MODULES_TO_SAVE = ["language_projection"]


def load_model_and_processor(name: str, dtype: str | None = None, trust_remote_code: bool = True, seed: int = 0):
    """Returns `(model, processor)` for a tiny-random name, an EmoVIT/InstructBLIP folder or Hub id, or another VLM."""
    import modeling_emovit  # noqa: F401  (registers "emovit" with the Auto classes)
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    tiny = TINY_MODEL.match(name)
    if tiny:
        from modeling_emovit.testing import tiny_emovit

        return tiny_emovit(text_model=tiny["text_model"] or "llama", size=tiny["size"], seed=seed)
    config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    dtype = None if dtype in (None, "auto") else dtype
    if config.model_type in EMOVIT_MODEL_TYPES:
        from modeling_emovit import EmoVITForConditionalGeneration, EmoVITProcessor

        return EmoVITForConditionalGeneration.from_pretrained(name, dtype=dtype), EmoVITProcessor.from_pretrained(name)
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code)
    return model, AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)


def lora_config(model_args):
    """PEFT LoRA from the recipe's `lora_*` keys; EmoVIT's Q-Former + LM attention when no target is named."""
    from peft import LoraConfig

    targets = model_args.lora_target_modules or EMOVIT_LORA_TARGETS
    if isinstance(targets, list) and len(targets) == 1:
        targets = targets[0]  # one entry from the command line: a regex (PEFT full-matches a string)
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=targets,
        modules_to_save=model_args.lora_modules_to_save or EMOVIT_LORA_MODULES_TO_SAVE,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
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
