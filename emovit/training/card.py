"""The model card of a training run, written where TRL would write its own (each checkpoint, the end, a push).

Flow: trainer -> checkpoint -> this card -> `emovit eval` adds results -> Hub. TRL's template names no base model
for a model built in memory ("fine-tuned version of None"), suggests a text-generation pipeline and leaves the
licence a placeholder; this card (`evaluation.model_card.write_model_card`) says what the model is, what was trained
and frozen, the recipe's settings, how to load it, and holds only valid Hub metadata.
"""

from dataclasses import dataclass
from pathlib import Path

from trl import GRPOTrainer, SFTTrainer

from evaluation.model_card import ModelDescription, write_model_card
from modeling_emovit.tiny_models import is_tiny_model

# Recipe settings (SFTConfig fields) a card reports, in this order; unset ones are left out.
CARD_SETTINGS = (
    "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "num_train_epochs", "max_steps",
    "per_device_train_batch_size", "gradient_accumulation_steps", "optim", "weight_decay", "adam_beta1",
    "adam_beta2", "max_grad_norm", "bf16", "fp16", "gradient_checkpointing", "seed",
)
PEFT_PREFIX = "base_model.model."


@dataclass
class TrainingRecipe:
    """What the card reports of a run beside the trainer's own arguments (set by `emovit.training.sft.train`)."""

    script_args: object  # `EmoVITScriptArguments`: the data and EmoVIT's options
    model_args: object  # TRL's `ModelConfig`: the base model and LoRA settings
    mixture_args: object  # TRL's `DatasetMixtureConfig`
    training_rows: int | None  # None: streamed from a source that does not say its size
    training_images: int | None = None  # distinct images recorded in training_images.npy (None: not recorded)
    stages: dict[str, str] | None = None  # a chained run's stages, one line each (GRPO: cold start, then RL)


class ProjectModelCard:
    """A TRL trainer whose README.md is the project's model card; `recipe` is set by the training script."""

    recipe: TrainingRecipe | None = None

    def create_model_card(self, model_name=None, dataset_name=None, tags=None, **kwargs):
        if self.recipe is None:
            return super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        if self.is_world_process_zero():
            name = model_name or Path(self.args.output_dir).resolve().name
            write_model_card(self.args.output_dir, describe_training(self), model_name=name)


class ModelCardSFTTrainer(ProjectModelCard, SFTTrainer):
    """`SFTTrainer` writing the project's card (`emovit.training.sft`)."""


class ModelCardGRPOTrainer(ProjectModelCard, GRPOTrainer):
    """`GRPOTrainer` writing the project's card (`emovit.training.grpo`), both stages named."""


def describe_training(trainer: ProjectModelCard, merged: bool = False) -> ModelDescription:
    """What the card says about the trainer's model: base, trained and frozen parts, data, settings and outcome.

    `merged`: describe the adapter's merged model (full weights) rather than the adapter.
    """
    from modeling_emovit.modeling_emovit import EmoVITForConditionalGeneration

    recipe = trainer.recipe
    script_args, model_args, mixture_args = recipe.script_args, recipe.model_args, recipe.mixture_args
    model = trainer.accelerator.unwrap_model(trainer.model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trained, frozen = module_groups(model)
    adapter = None if merged else lora_settings(model)
    data = [dataset.path for dataset in mixture_args.datasets] if mixture_args.datasets else [script_args.dataset_name]
    settings = dict(recipe.stages or {})
    settings |= {name: getattr(value, "value", value) for name in CARD_SETTINGS  # enums by their recipe value
                 if (value := getattr(trainer.args, name)) not in (None, {}, -1)}
    if trainer.args.max_steps > 0:
        settings.pop("num_train_epochs", None)  # max_steps decides the length
    settings["processes"] = trainer.args.world_size
    if adapter:
        settings["LoRA target modules"] = f"`{adapter['target_modules']}`"
    # log_history: one {"loss", "step", ...} per logging step, then the run's summary, whose train_loss is the mean
    step_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    mean_losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    outcome = {"optimizer steps": trainer.state.global_step}
    if step_losses:
        outcome["training loss (last logged step)"] = round(float(step_losses[-1]), 4)
    if mean_losses:
        outcome["training loss (mean over the run)"] = round(float(mean_losses[-1]), 4)
    return ModelDescription(
        architecture=type(base).__name__.removesuffix("ForConditionalGeneration"),
        emovit=isinstance(base, EmoVITForConditionalGeneration),
        base_model=model_args.model_name_or_path,
        trained=trained,
        frozen=frozen,
        adapter=adapter,
        data=data,
        data_note=f" (config `{script_args.dataset_config or 'default'}`, split `{script_args.dataset_train_split}`, "
                  f"{'streamed' if recipe.training_rows is None else f'{recipe.training_rows} rows'}"
                  f"{_images_note(recipe.training_images)})",
        hyperparameters=settings,
        results=outcome,
        license=base_licence(model_args.model_name_or_path),
        training_tags=list(getattr(trainer, "_tag_names", [])),  # TRL's trainers name themselves for the Hub
    )


def module_groups(model) -> tuple[list[str], list[str]]:
    """Modules with trainable parameters and modules without, named at the top level ("qformer (LoRA)" when only
    LoRA weights train); a top-level module that trains only in part is split one level down (EmoVIT trains the
    vision encoder's final LayerNorm alone: `vision_model.post_layernorm`, and `vision_model` except it, frozen)."""
    groups: dict[str, dict[str, set[str]]] = {}
    for name, parameter in model.named_parameters():
        name = name.removeprefix(PEFT_PREFIX)
        parts = name.split(".")
        start = 1 if parts[0] == "model" and len(parts) > 2 else 0  # LLaVA & co.: model.<tower>.
        group, child = parts[start], parts[start + 1] if len(parts) > start + 1 else ""
        kinds = groups.setdefault(group, {}).setdefault(child, set())
        kinds.add(("lora" if ".lora_" in name else "full") if parameter.requires_grad else "frozen")
    trained, frozen = [], []
    for group, children in sorted(groups.items()):
        kinds = set().union(*children.values())
        if kinds == {"frozen"}:
            frozen.append(group)
        elif "full" not in kinds:  # LoRA weights beside frozen ones
            trained.append(f"{group} (LoRA)")
        elif "frozen" not in kinds:
            trained.append(group)
        else:
            parts = sorted(child for child, child_kinds in children.items() if child_kinds == {"full"})
            trained += [f"{group}.{child}" for child in parts]
            frozen.append(f"{group} except {', '.join(parts)}" if parts else f"{group} (in part)")
    return trained, frozen


def lora_settings(model) -> dict | None:
    """The LoRA settings of a PEFT-wrapped model (None for plain weights)."""
    config = getattr(model, "peft_config", {}).get("default")
    if config is None:
        return None
    return {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": config.target_modules}


def base_licence(base: str) -> str:
    """Hub licence id of the trained weights: Apache-2.0 for a tiny random model built here, the base folder's card
    licence when it has one, else "other" (the card's text says the weights follow the base model's licence)."""
    if is_tiny_model(base):
        return "apache-2.0"
    card = Path(base) / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        return ModelCard.load(card).data.license or "other"
    return "other"


def _images_note(count: int | None) -> str:
    """The data line's note on the record of the training images (`dataset_builder.training_images`)."""
    if count is None:
        return ""
    return f"; {count} distinct images, their fingerprints in `training_images.npy` for test-set overlap checks"
