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
