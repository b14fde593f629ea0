"""The instruction-tuning entry point behind `recipes/sft.py` and `emovit train sft` (the same `main`).

    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml -m emovit.training.sft \
        --config recipes/emovit-vicuna-7b/sft.yaml

Flow: recipe YAML + flags (`TrlParser`) -> data -> model -> collator -> `SFTTrainer` -> checkpoint. EmoVIT (Xie et
al., CVPR 2024, Sec. 4.1): InstructBLIP with the ViT and the LLM frozen, ln_vision, the Q-Former, query tokens and
projection trained with the causal-LM loss on the answer tokens; other vision-language models train the stock TRL way.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

from modeling_emovit.errors import EmoVITInputError, reading

from .augmentation import AUGMENTATIONS
from .launch import cpu_default
from .schedule import SCHEDULES
from .text_processors import TEXT_PROCESSORS

logger = logging.getLogger(__name__)


@dataclass
class EmoVITScriptArguments(ScriptArguments):
    """TRL's script arguments plus EmoVIT's truncation lengths, the vision-feature cache and the release protocol."""

    max_prompt_length: int = field(default=128, metadata={"help": "Instruction tokens kept (LAVIS max_txt_len)."})
    max_completion_length: int = field(default=256, metadata={"help": "Answer tokens kept (LAVIS max_output_txt_len)."})
    vision_feature_cache: str | None = field(
        default=None, metadata={"help": "Folder written by `emovit train cache-features`: train without the ViT."}
    )
    # The release's training protocol (docs/fidelity.md): its schedule, image transform and text processing.
    lr_schedule: str = field(default="transformers", metadata={
        "choices": list(SCHEDULES),
        "help": "lavis: LAVIS linear_warmup_cosine_lr (warmup in epoch 0 only, cosine stepped once per epoch, min_lr "
                "from lr_scheduler_kwargs); transformers: lr_scheduler_type as given."})
    warmup_start_lr: float = field(default=0.0, metadata={"help": "lr_schedule lavis: LAVIS warmup_lr."})
    augmentation: str = field(default="none", metadata={
        "choices": list(AUGMENTATIONS),
        "help": "lavis: LAVIS blip2_image_train (random resized crop, scale 0.5-1, and horizontal flip)."})
    text_processor: str = field(default="none", metadata={
        "choices": list(TEXT_PROCESSORS),
        "help": "lavis: the instruction through LAVIS blip_caption; release: that and 'Complex' deleted from answers."})
    merge_adapter: bool = field(
        default=False, metadata={"help": "With use_peft: also write the adapter merged into its base to OUTPUT_DIR/merged."}
    )


def parse_recipe(argv: list[str] | None = None, dataclasses=None, command: str = "emovit train sft"):
    """`(script_args, training_args, model_args, mixture_args)` from `--config recipe.yaml` plus flags (`dataclasses`:
    the parser's, default SFT's; `emovit.training.grpo` passes its own).

    A value of the wrong type (`max_steps: four`), an unknown key, a recipe that is not YAML or a setting that
    TrainingArguments refuses is one `EmoVITInputError` naming the recipe or the command line.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    recipe = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else "the command line"
    parser = TrlParser(dataclasses or (EmoVITScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig))
    parser.error = lambda message: _refuse_value(message, recipe, argv, command)  # not usage text and exit 2
    parser.set_defaults(**cpu_default())  # the recipe's keys and the flags override it
    try:
        with reading(recipe):
            *parsed, unknown_in_recipe, unknown_flags = parser.parse_args_and_config(
                argv, return_remaining_strings=True, separate_remaining_strings=True
            )
    except (EmoVITInputError, UnicodeDecodeError):  # already one sentence, or the boundary's to translate
        raise
    except ValueError as error:  # TrainingArguments' own checks, or a recipe that is not a mapping
        raise EmoVITInputError(f"{recipe}: {' '.join(str(error).split())}") from None
    unknown = [item[2:] for item in unknown_in_recipe + unknown_flags if item.startswith("--")]
    if unknown:
        raise EmoVITInputError(
            f"{recipe if unknown_in_recipe else 'the command line'}: unknown recipe key(s) {', '.join(unknown)}; "
            f"see `{command} --help` for the keys its recipe takes (TRL's config, ModelConfig and script arguments)."
        )
    return tuple(parsed)


def check_release_options(script_args, training_args) -> None:
    """Refuses, in one sentence, release-protocol options that cannot work together."""
    if script_args.augmentation != "none" and script_args.vision_feature_cache:
        raise EmoVITInputError(
            "augmentation: lavis draws a new crop of every image each epoch, which a vision-feature cache cannot hold; "
            "set augmentation: none to train from the cache (a departure from the release) or drop vision_feature_cache."
        )
    if script_args.lr_schedule == "lavis":
        from .schedule import min_lr_of

        min_lr_of(training_args)  # fails before the model loads when min_lr is missing


def _refuse_release_options(script_args, model: str) -> None:
    """The release-protocol options act through EmoVIT's collator and trainer: a family that trains through TRL's
    own collator (`trl_native`) cannot take them."""
    chosen = {key: getattr(script_args, key) for key in ("lr_schedule", "augmentation", "text_processor")}
    chosen = {key: value for key, value in chosen.items() if value not in ("none", "transformers")}
    if script_args.vision_feature_cache:
        chosen["vision_feature_cache"] = script_args.vision_feature_cache
    if chosen:
        raise EmoVITInputError(
            f"{', '.join(f'{key}: {value}' for key, value in chosen.items())} apply to EmoVIT/InstructBLIP models, "
            f"not {model}; leave them at their defaults."
        )


def _refuse_value(message: str, recipe: str, argv: list[str], command: str):
    """argparse's complaint ("argument --max_steps: invalid int value: 'four'") as one sentence naming its source."""
    flag = message.split(":", 1)[0].removeprefix("argument ").split("/")[0].strip()
    source = "the command line" if flag in argv else recipe
    raise EmoVITInputError(f"{source}: {message.removeprefix('argument ')}; see `{command} --help`.")


def train(script_args, training_args, model_args, mixture_args) -> dict:
    """Loads the data and the model, trains, saves; returns the training metrics."""
    from .card import TrainingRecipe
    from .data import check_model_reads, load_train_dataset
    from .label_space import record_label_space, training_label_space

    resume = _check_before_loading(script_args, training_args)

    ###############
    # Load the data (first: a bad dataset is named before a 7B model loads)
    ###############
    train_dataset, train_rows = load_train_dataset(script_args, mixture_args, training_args)  # streamed: rows may be None
    check_model_reads(train_dataset, model_args.model_name_or_path, training_args.trust_remote_code)
    label_space = training_label_space(train_dataset, script_args.dataset_name or "the dataset mixture")

    ###############
    # Load the model, and its backbone adapter (which decides how the family trains); the data's label space goes
    # into its config (what the emotion pipeline and `emovit serve` default to)
    ###############
    adapter = _load_for_training(model_args, training_args)
    record_label_space(adapter.model.config, label_space)

    ###############
    # Collate and train
    ###############
    loaded = train_dataset  # as read, for the record of which images trained the model
    train_dataset, collator = _collation(adapter, train_dataset, script_args, training_args)
    trainer = _trainer(adapter, train_dataset, collator, script_args, training_args, model_args)
    trainer.recipe = TrainingRecipe(script_args, model_args, mixture_args, train_rows)  # for the model card
    result = trainer.train(resume_from_checkpoint=resume)
    trainable = sum(parameter.numel() for parameter in trainer.model.parameters() if parameter.requires_grad)
    metrics = {**result.metrics, "train_samples": train_rows, "trainable_parameters": trainable}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)  # train_results.json
    trainer.save_state()

    ###############
    # Save (and push)
    ###############
    _save(trainer, adapter, loaded, script_args, training_args, model_args)
    return metrics


def _check_before_loading(script_args, training_args):
    """The launch, the release options, the trackers and the checkpoint to resume, checked before anything loads;
    returns that checkpoint (or None)."""
    from .checkpoints import checkpoint_to_resume
    from .launch import check_launch
    from .trackers import check_trackers

    check_launch(training_args)
    check_release_options(script_args, training_args)
    if training_args.include_num_input_tokens_seen == "all":
        # "all" counts the elements of the model's main input, which for InstructBLIP is pixel values; count the
        # language model's non-padding tokens instead (TrainingArguments' "non_padding", which YAML's `true` cannot
        # name: the parser reads this field as a boolean).
        training_args.include_num_input_tokens_seen = "non_padding"
    check_trackers(training_args)
    return checkpoint_to_resume(training_args)


def _load_for_training(model_args, training_args):
    """The model's backbone adapter, its family's freezing policy applied (EmoVIT's unless LoRA trains instead) and
    a LoRA adapter's base recorded so that the adapter loads."""
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.loading import load_model_and_processor

    from .lora import record_base

    model, processor = load_model_and_processor(
        model_args.model_name_or_path, model_args.dtype, training_args.trust_remote_code, training_args.seed
    )
    adapter = backbone_adapter(model, processor)
    if not model_args.use_peft:
        adapter.freeze_for_instruction_tuning()
    else:  # the adapter's base_model_name_or_path must load
        record_base(model, processor, model_args.model_name_or_path, training_args.output_dir)
    return adapter


def _collation(adapter, train_dataset, script_args, training_args):
    """(the dataset as the collator reads it, the collator): TRL's own collator and chat template for a `trl_native`
    family (None: SFTTrainer builds it), else EmoVIT's collator over the adapter, decoding images itself so that one
    that fails is skipped and counted."""
    from datasets import Image

    from .augmentation import training_transform
    from .collator import EmoVITCollator
    from .data import as_conversations, is_conversational
    from .feature_cache import attach_vision_features

    if adapter.trl_native:
        _refuse_release_options(script_args, type(adapter.model).__name__)
        if not is_conversational(train_dataset):  # the `messages` config is read as it is
            train_dataset = as_conversations(train_dataset.cast_column("image", Image()))
        return train_dataset, None
    train_dataset = train_dataset.cast_column("image", Image(decode=False))
    collator = EmoVITCollator(
        adapter, script_args.max_prompt_length, script_args.max_completion_length,
        augment=training_transform(script_args.augmentation, adapter.processor),
        text_processor=script_args.text_processor,
    )
    training_args.remove_unused_columns = False
    if script_args.vision_feature_cache:
        train_dataset, _ = attach_vision_features(train_dataset, script_args.vision_feature_cache, adapter.model)
        collator.image_embeds_dtype = adapter.model.dtype
    return train_dataset, collator


def _trainer(adapter, train_dataset, collator, script_args, training_args, model_args):
    """EmoVIT's trainer (the model's own loss, LAVIS's schedule on request) or, for a `trl_native` family, TRL's
    SFTTrainer writing the project's model card."""
    from .card import ModelCardSFTTrainer
    from .lora import lora_config
    from .trainer import EmoVITSFTTrainer

    if adapter.trl_native:
        trainer_class, schedule = ModelCardSFTTrainer, {}
    else:
        trainer_class = EmoVITSFTTrainer
        schedule = dict(lr_schedule=script_args.lr_schedule, warmup_start_lr=script_args.warmup_start_lr)
    return trainer_class(
        **schedule,
        model=adapter.model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=adapter.processor,
        data_collator=collator,
        peft_config=lora_config(model_args) if model_args.use_peft else None,
    )


def _save(trainer, adapter, loaded, script_args, training_args, model_args) -> None:
    """The model, its processor, the record of its training images and its card (and the emotion pipeline beside a
    transformers model), then the push and the merged LoRA model when asked."""
    from .lora import save_merged

    trainer.save_model(training_args.output_dir)  # processor saved beside it (Trainer saves processing_class)
    beside_weights = adapter.trl_native  # EmoVIT's save_pretrained saves the emotion pipeline itself
    if beside_weights:
        save_emotion_pipeline_beside(trainer, training_args.output_dir)
    trainer.recipe.training_images = record_training_images(trainer, loaded, training_args.output_dir)
    trainer.create_model_card()  # README.md: the project's card (the push below writes it again)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    if model_args.use_peft and script_args.merge_adapter:
        save_merged(trainer, adapter.processor, f"{training_args.output_dir}/merged")
        record_training_images(trainer, loaded, f"{training_args.output_dir}/merged")
        if beside_weights:
            save_emotion_pipeline_beside(trainer, f"{training_args.output_dir}/merged")
    trainer.accelerator.wait_for_everyone()
    trainer.end()


def record_training_images(trainer, dataset, folder) -> int | None:
    """FOLDER/training_images.npy (`dataset_builder.training_images`), on the main process: which images trained the
    model, so that `emovit eval` can count the test images it saw. A streamed dataset is not read twice: None."""
    from datasets import IterableDataset

    from dataset_builder.training_images import write_training_images

    if isinstance(dataset, IterableDataset):
        logger.warning("Streamed training data: its images are not recorded (training_images.npy), so `emovit eval` "
                       "cannot count the test images the model saw.")
        return None
    if not trainer.accelerator.is_main_process:
        return None
    return write_training_images(folder, dataset)


def save_emotion_pipeline_beside(trainer, folder) -> None:
    """The image-emotion-classification pipeline beside a full model folder of one of transformers' own classes
    (LLaVA, Idefics3, Qwen2-VL, ...), on the main process; the model's config gets the `custom_pipelines` entry too,
    so that a later save (the Hub push) keeps it. A LoRA adapter folder has no config.json to name it in: skipped
    (its merged folder gets it)."""
    from modeling_emovit.pipeline_emovit import CUSTOM_PIPELINES, save_emotion_pipeline

    if not (Path(folder) / "config.json").is_file():
        return
    trainer.accelerator.unwrap_model(trainer.model).config.custom_pipelines = {
        task: dict(entry) for task, entry in CUSTOM_PIPELINES.items()}
    if trainer.accelerator.is_main_process:
        save_emotion_pipeline(folder)
    trainer.accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> int:
    """Parses the recipe and trains; bad input and known library failures are one sentence on stderr and exit
    code 2 (`emovit.error_boundary`); `--debug` or EMOVIT_DEBUG=1 shows the traceback instead."""
    return run_recipe("sft", parse_recipe, train, argv)


def run_recipe(name: str, parse, train_stage, argv: list[str] | None) -> int:
    """A recipe script's main: `train_stage(*parse(argv))` inside the error boundary, `--debug` taken out of argv."""
    from emovit.error_boundary import run_guarded
    from emovit.package_names import check_package_names

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [item for item in argv if item != "--debug"]

    def run() -> int:
        check_package_names()  # before training imports dataset_builder and evaluation
        train_stage(*parse(argv))
        return 0

    return run_guarded(name, run, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
