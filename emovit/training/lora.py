"""LoRA for recipes (`use_peft: true`): PEFT's `LoraConfig` from the recipe's `lora_*` keys, with EmoVIT's targets
when the recipe names none."""

# The Q-Former's self- and cross-attention and the LM's attention (Llama/OPT `q_proj|k_proj|v_proj`, T5
# `SelfAttention.q|k|v`); the projection into the LM trains fully, as in EmoVIT.
EMOVIT_LORA_TARGETS = (
    r".*qformer\.encoder\.layer\.\d+\.(attention|crossattention)\.attention\.(query|key|value)"
    r"|.*language_model\..*\.(q_proj|k_proj|v_proj|SelfAttention\.[qkv])"
)
EMOVIT_LORA_MODULES_TO_SAVE = ["language_projection"]


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


def record_base(model, processor, name: str, output_dir: str) -> str:
    """Makes the adapter's `base_model_name_or_path` a base that loads: the Hub id, or the absolute path of a local
    folder; a tiny random base (built in memory) is first saved to OUTPUT_DIR/base. Returns what was recorded.

    PEFT's `get_peft_model` (called by `SFTTrainer`) overwrites that field with `model.name_or_path`, which is empty
    for a model built in memory, so the name is set there.
    """
    from pathlib import Path

    from accelerate import PartialState

    from modeling_emovit.tiny_models import is_tiny_model

    if is_tiny_model(name):
        state, folder = PartialState(), Path(output_dir) / "base"
        if state.is_main_process:  # every rank built the same seeded model
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
        state.wait_for_everyone()
        name = str(folder)
    base = str(Path(name).resolve()) if Path(name).exists() else name
    model.name_or_path = base
    return base


def save_merged(trainer, processor, folder) -> None:
    """Writes the adapter merged into its base as a full model folder (weights, remote code, processor, card), on
    the main process. The trainer's model is merged in place: call this after the adapter is saved (and pushed)."""
    from evaluation.model_card import write_model_card

    from .card import describe_training

    description = describe_training(trainer, merged=True)  # read before merging removes the LoRA layers
    merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    if trainer.accelerator.is_main_process:
        merged.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_model_card(folder, description)
    trainer.accelerator.wait_for_everyone()
