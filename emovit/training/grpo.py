"""Emotion reasoning trained with verifiable rewards: a cold-start SFT stage, then TRL's GRPO, behind `recipes/grpo.py`
and `emovit train grpo` (the same `main`).

    accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml -m emovit.training.grpo \
        --config recipes/qwen2.5-vl-3b/grpo.yaml

Flow: recipe YAML + flags (`TrlParser` over `GRPOConfig`) -> data (`grpo_data`) -> model and its backbone adapter ->
stage 1, the cold start: `SFTTrainer` on the `reasoning` config rewritten into the answer format
(`dataset_builder.reasoning_format`), saved to OUTPUT_DIR/cold-start -> stage 2: `GRPOTrainer` with the rewards of
`rewards.py`, weighted by `reward_weights` -> OUTPUT_DIR (loads and evaluates like an SFT output; its card names
both stages). The RL recipe is EMO-R3's and DSPO's kind (GRPO over a think-then-answer format, rewards checked against
the label) with EmoCaliber's verbalised confidence and a Brier-style reward for it.

Chat-template families only (the adapter's `trl_native`): GRPOTrainer puts the prompt through the processor's chat
template and forwards a fixed set of image inputs (`pixel_values`, `image_grid_thw`, ...) to the policy, so
EmoVIT's Q-Former instruction input never reaches it (recipes/README.md says what it would take).
"""

import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from trl import DatasetMixtureConfig, GRPOConfig, ModelConfig, ScriptArguments

from modeling_emovit.errors import EmoVITInputError

from .rewards import REWARDS

logger = logging.getLogger(__name__)
COLD_START_FOLDER = "cold-start"
COMMAND = "emovit train grpo"
# GRPOConfig fields the cold start takes from the recipe as they are (its steps, rate and saving are its own).
SHARED_WITH_COLD_START = (
    "gradient_accumulation_steps", "seed", "bf16", "fp16", "use_cpu",
    "gradient_checkpointing", "gradient_checkpointing_kwargs", "logging_steps", "report_to", "weight_decay",
    "lr_scheduler_type", "warmup_steps", "dataloader_num_workers", "trust_remote_code",
)


@dataclass
class GRPOScriptArguments(ScriptArguments):
    """TRL's script arguments plus the rewards and the cold start."""

    reward_funcs: list[str] = field(default_factory=lambda: list(REWARDS), metadata={
        "help": f"Rewards, in the order reward_weights weighs them: any of {', '.join(REWARDS)} (emovit.training.rewards)."})
    cold_start_config: str = field(default="reasoning", metadata={
        "help": "Dataset config whose GPT-written reasoning answers become the cold start's <think> text."})
    cold_start_max_steps: int = field(default=0, metadata={
        "help": "Optimizer steps of the cold-start SFT stage before GRPO (0: none, the model already writes the format)."})
    cold_start_learning_rate: float = field(default=1e-5, metadata={"help": "The cold start's learning rate."})
    cold_start_batch_size: int = field(default=16, metadata={
        "help": "Rows per device per cold-start step (GRPO's per_device_train_batch_size counts completions: images "
                "x num_generations)."})
    cold_start_reasoning_sentences: int = field(default=0, metadata={
        "help": "Sentences of each reasoning answer kept as the cold start's <think> (0: all; fewer, shorter rollouts)."})
    cold_start_confidence: float = field(default=0.8, metadata={
        "help": "The confidence the cold-start answers state (the data has none per image), or the middle of the "
                "numbers they state with cold_start_confidence_spread."})
    cold_start_confidence_spread: float = field(default=0.0, metadata={
        "help": "Half-width of the confidences the cold-start answers state, in turn, around cold_start_confidence "
                "(0: all the same, and GRPO samples no other number to reward)."})
    cold_start_confidence_samples: int = field(default=0, metadata={
        "help": "With N > 0, the cold start's last cold_start_confidence_steps steps state each image's own "
                "confidence: the share of N answers, sampled from the model at GRPO's temperature, that were right "
                "(emovit.training.confidence_targets). 0: the fixed numbers above throughout."})
    cold_start_confidence_steps: int = field(default=0, metadata={
        "help": "Steps of cold_start_max_steps (the last ones) that train on the sampled per-image confidences; only "
                "the images they reach are sampled."})
    merge_adapter: bool = field(
        default=False, metadata={"help": "With use_peft: also write the adapter merged into its base to OUTPUT_DIR/merged."}
    )


def parse_recipe(argv: list[str] | None = None):
    """`(script_args, grpo_args, model_args, mixture_args)`, bad values refused as `emovit.training.sft.parse_recipe`
    refuses them."""
    from .sft import parse_recipe as parse

    return parse(argv, (GRPOScriptArguments, GRPOConfig, ModelConfig, DatasetMixtureConfig), COMMAND)


def train(script_args, grpo_args, model_args, mixture_args) -> dict:
    """Cold start (when asked), then GRPO, then the save; returns GRPO's training metrics."""
    from .card import TrainingRecipe
    from .label_space import record_label_space
    from .sft import _save

    resume = _check_before_loading(script_args, grpo_args, mixture_args)

    ###############
    # Load the data (first: a dataset without labels is named before a model loads)
    ###############
    rows, space = _load_prompt_rows(script_args)

    ###############
    # Load the policy and its backbone adapter; the data's label space goes into its config
    ###############
    adapter, start = _load_policy(script_args, grpo_args, model_args, space.labels)
    record_label_space(adapter.model.config, space)

    ###############
    # Stage 1: the cold start, so that the model writes the format before RL rewards it
    ###############
    cold_start = _cold_start(adapter, script_args, grpo_args, model_args, space, start, resume)
    _point_kl_reference_at_start(adapter, grpo_args, model_args, start, cold_start)

    ###############
    # Stage 2: GRPO
    ###############
    from .grpo_data import grpo_prompts

    prompts = grpo_prompts(rows, space.labels, script_args.dataset_name)
    trainer = _grpo_trainer(adapter, prompts, script_args, grpo_args, model_args)
    trainer.recipe = TrainingRecipe(script_args, model_args, mixture_args, len(prompts),
                                    stages=_stage_settings(script_args, grpo_args, cold_start))
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {**result.metrics, "train_samples": len(prompts), "cold_start_steps": cold_start or 0}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    ###############
    # Save (and push)
    ###############
    _save(trainer, adapter, rows, script_args, grpo_args, model_args)
    return metrics


def _check_before_loading(script_args, grpo_args, mixture_args) -> str | None:
    """The launch, the trackers, the rewards and their weights, checked before anything loads; returns the checkpoint
    to resume (or None)."""
    from .checkpoints import checkpoint_to_resume
    from .launch import check_launch
    from .trackers import check_trackers

    check_launch(grpo_args)
    check_trackers(grpo_args)
    if mixture_args.datasets or not script_args.dataset_name:
        raise EmoVITInputError("dataset_name: GRPO trains on one built dataset (a folder or Hub id); set dataset_name.")
    unknown = [name for name in script_args.reward_funcs if name not in REWARDS]
    if unknown or not script_args.reward_funcs:
        raise EmoVITInputError(f"reward_funcs: {unknown or 'none given'}; name rewards among {', '.join(REWARDS)}.")
    weights = grpo_args.reward_weights
    if weights is not None and len(weights) != len(script_args.reward_funcs):
        raise EmoVITInputError(
            f"reward_weights: {len(weights)} weight(s) for {len(script_args.reward_funcs)} reward(s) "
            f"({', '.join(script_args.reward_funcs)}); give one number per reward, in the same order."
        )
    center, spread = script_args.cold_start_confidence, script_args.cold_start_confidence_spread
    if not (spread >= 0 and 0.0 <= center - spread and center + spread <= 1.0):
        raise EmoVITInputError(f"cold_start_confidence {center} +/- cold_start_confidence_spread {spread} is not "
                               f"within 0 and 1.")
    _check_sampled_confidence(script_args)
    return checkpoint_to_resume(grpo_args)


def _check_sampled_confidence(script_args) -> None:
    samples, steps = script_args.cold_start_confidence_samples, script_args.cold_start_confidence_steps
    if samples < 0 or (samples and not 0 < steps < script_args.cold_start_max_steps):
        raise EmoVITInputError(
            f"cold_start_confidence_steps: {steps} with cold_start_confidence_samples {samples} and "
            f"cold_start_max_steps {script_args.cold_start_max_steps}; sampled confidences need a cold start that "
            f"first learns the format (steps with fixed confidences), so give between 1 and "
            f"{script_args.cold_start_max_steps - 1} steps, and a sample count of 1 or more."
        )


def _load_prompt_rows(script_args):
    """`(rows, label space)`: the split GRPO prompts come from, refused when its rows carry no labels."""
    from dataset_builder.loading import load_split

    from .label_space import training_label_space

    data = script_args.dataset_name
    rows = load_split(data, script_args.dataset_config, script_args.dataset_train_split,
                      required=("id", "image", "emotion"))
    space = training_label_space(rows, data)
    if space is None or not space.labels:
        raise EmoVITInputError(f"{data}: the rows carry no emotion labels, and GRPO's rewards check each answer "
                               f"against its row's `emotion`; build the dataset from a labelled source.")
    return rows, space


def _load_policy(script_args, grpo_args, model_args, labels: tuple[str, ...]):
    """`(adapter, where the weights came from)`: the cold start's finished model when OUTPUT_DIR holds one (a run
    interrupted before GRPO's first checkpoint), else the recipe's model; refused when GRPO cannot drive its family,
    when it was trained on other labels, or when the completion budget cannot hold the format."""
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.loading import load_model_and_processor

    cold_start = Path(grpo_args.output_dir) / COLD_START_FOLDER
    start = str(cold_start) if (cold_start / "train_results.json").is_file() else model_args.model_name_or_path
    model, processor = load_model_and_processor(start, model_args.dtype, grpo_args.trust_remote_code, grpo_args.seed)
    adapter = backbone_adapter(model, processor)
    if not adapter.trl_native:
        raise EmoVITInputError(
            f"{start}: GRPO trains chat-template models (LLaVA, SmolVLM/Idefics3, Qwen2-VL, Qwen2.5-VL); TRL's "
            f"GRPOTrainer does not pass an EmoVIT/InstructBLIP model its Q-Former's instruction input "
            f"(recipes/README.md, 'GRPO')."
        )
    _check_trained_labels(model.config, labels, start, script_args.dataset_name)
    _check_completion_budget(adapter, labels, grpo_args.max_completion_length)
    return adapter, start


def _check_trained_labels(config, labels, model: str, data: str) -> None:
    """A model whose config records the labels it was trained on (`emotion_labels`, written by training) must be
    asked about those: the rewards' label space is the data's."""
    trained = getattr(config, "emotion_label_space", None) and getattr(config, "emotion_labels", None)
    if trained and set(trained) != set(labels):
        raise EmoVITInputError(
            f"{model} was trained on the labels {', '.join(trained)}, {data} has {', '.join(labels)}; GRPO "
            f"continues training on the model's own label space: use data with those labels, or SFT it on yours first."
        )


def _check_completion_budget(adapter, labels, budget: int) -> None:
    """max_completion_length must hold the shortest well-formed answer with the longest label."""
    from dataset_builder.reasoning_format import reasoned_answer

    shortest = max(adapter.answer_lengths([reasoned_answer("a", label, 0.5) for label in labels]))
    if budget < shortest:
        raise EmoVITInputError(
            f"max_completion_length: {budget} tokens cannot hold the answer format (a one-word reasoning with the "
            f"longest label already takes {shortest}); allow room for the reasoning, 128 or more."
        )


def _cold_start(adapter, script_args, grpo_args, model_args, space, start: str, resume) -> int | None:
    """Stage 1 (`cold_start_max_steps` > 0): SFT on the reasoning rows in the answer format, stating fixed
    confidences, and with `cold_start_confidence_samples` its last `cold_start_confidence_steps` stating each image's
    sampled one; the model trained in place and saved to OUTPUT_DIR/cold-start (the fixed-confidence part's log in
    its `fixed-confidence/`). Skipped when the policy already came from there or GRPO resumes. Returns its optimizer
    steps (None when skipped)."""
    from dataset_builder.loading import load_split

    from .grpo_data import cold_start_rows, stated_confidence

    if script_args.cold_start_max_steps <= 0 or resume or start.endswith(COLD_START_FOLDER):
        if script_args.cold_start_max_steps > 0:
            logger.info("Cold start skipped: the policy comes from %s.", resume or start)
        return None
    data = f"{script_args.dataset_name} ({script_args.cold_start_config})"
    reasoning = load_split(script_args.dataset_name, script_args.cold_start_config, script_args.dataset_train_split,
                           required=("id", "image", "emotion", "completion"))
    center, spread = script_args.cold_start_confidence, script_args.cold_start_confidence_spread
    rows = cold_start_rows(reasoning, space.labels, script_args.cold_start_reasoning_sentences, data,
                           lambda k, row: stated_confidence(k, center, spread))
    sampled_steps = script_args.cold_start_confidence_steps if script_args.cold_start_confidence_samples else 0
    folder = Path(grpo_args.output_dir) / COLD_START_FOLDER
    fixed_steps = script_args.cold_start_max_steps - sampled_steps
    trainer = _cold_start_sft(adapter.model, adapter.processor, rows, fixed_steps,
                              folder / "fixed-confidence" if sampled_steps else folder, script_args, grpo_args,
                              model_args)
    if sampled_steps:
        rows, stated = _rows_with_sampled_confidence(adapter, reasoning, space, script_args, grpo_args, data)
        trainer = _cold_start_sft(trainer.model, adapter.processor, rows, sampled_steps, folder, script_args,
                                  grpo_args, model_args, {"sampled_confidences": stated})
    if model_args.use_peft:  # GRPO trains its own adapter over the cold-started weights
        adapter.model = trainer.model.merge_and_unload()
    trainer.save_model(trainer.args.output_dir)
    return fixed_steps + sampled_steps


def _cold_start_sft(model, processor, rows, steps: int, output_dir: Path, script_args, grpo_args, model_args,
                    recorded: dict | None = None):
    """One SFT pass of the cold start, `recorded` added to its train_results.json; a model that already carries the
    cold start's LoRA adapter keeps training it."""
    from peft import PeftModel

    from .card import ModelCardSFTTrainer
    from .lora import lora_config

    peft_config = lora_config(model_args) if model_args.use_peft and not isinstance(model, PeftModel) else None
    trainer = ModelCardSFTTrainer(model=model, args=_cold_start_args(script_args, grpo_args, steps, output_dir),
                                  train_dataset=rows, processing_class=processor, peft_config=peft_config)
    result = trainer.train()
    trainer.save_metrics("train", {**result.metrics, **(recorded or {})})  # train_results.json: this pass finished
    trainer.save_state()  # trainer_state.json: its loss curve
    return trainer


def _rows_with_sampled_confidence(adapter, reasoning, space, script_args, grpo_args, data: str):
    """`(rows, {stated confidence: images})`: the reasoning rows the sampled-confidence steps will see (shuffled, as
    many as those steps take), each stating its image's share of right answers among `cold_start_confidence_samples`
    sampled ones, and how many images state each number."""
    from accelerate import PartialState

    from .confidence_targets import sample_answers, smoothed_share_right
    from .grpo_data import cold_start_rows, first_row_per_image, image_key

    batch = script_args.cold_start_batch_size * grpo_args.gradient_accumulation_steps * PartialState().num_processes
    count = min(len(reasoning), script_args.cold_start_confidence_steps * batch)
    chosen = reasoning.shuffle(seed=grpo_args.seed).select(range(count))
    key = image_key(chosen)
    images = chosen.select(first_row_per_image(chosen))
    answers = sample_answers(adapter, list(images["image"]), space.labels, script_args.cold_start_confidence_samples,
                             grpo_args.temperature, grpo_args.max_completion_length)
    confidence = {name: smoothed_share_right(sampled, gold, space.labels)
                  for name, sampled, gold in zip(images[key], answers, images["emotion"])}
    stated = {f"{value:g}": n for value, n in sorted(Counter(confidence.values()).items())}
    return cold_start_rows(chosen, space.labels, script_args.cold_start_reasoning_sentences, data,
                           lambda k, row: confidence[row[key]]), stated


def _point_kl_reference_at_start(adapter, grpo_args, model_args, start: str, cold_start_steps: int | None) -> None:
    """With `beta` > 0, TRL loads GRPO's reference model from the policy config's `_name_or_path` (under LoRA the
    reference is the model with its adapter disabled: the cold-started weights, which `_cold_start` merged). Without
    this, that name is the recipe's model, so the KL term would pull towards the model before its cold start, and a
    tiny-random model (built in memory, no name) fails to load. The reference becomes the weights GRPO starts from:
    OUTPUT_DIR/cold-start, or the start itself (a tiny-random one saved to OUTPUT_DIR/base first)."""
    from modeling_emovit.loading import adapter_base

    from .lora import record_base

    if grpo_args.beta == 0 or model_args.use_peft:
        return
    if cold_start_steps:
        reference = str(Path(grpo_args.output_dir) / COLD_START_FOLDER)
    elif adapter_base(start):
        raise EmoVITInputError(f"{start}: a LoRA adapter cannot be GRPO's reference model (beta {grpo_args.beta}); "
                               f"start from its merged folder (`--merge_adapter`), or set beta 0.")
    else:
        reference = record_base(adapter.model, adapter.processor, start, grpo_args.output_dir)
    adapter.model.config._name_or_path = reference


def _cold_start_args(script_args, grpo_args, steps: int, output_dir: Path):
    from trl import SFTConfig

    shared = {name: getattr(grpo_args, name) for name in SHARED_WITH_COLD_START}
    return SFTConfig(output_dir=str(output_dir), max_steps=steps, learning_rate=script_args.cold_start_learning_rate,
                     per_device_train_batch_size=script_args.cold_start_batch_size,
                     save_strategy="no", max_length=None, **shared)


def _grpo_trainer(adapter, prompts, script_args, grpo_args, model_args):
    from .card import ModelCardGRPOTrainer
    from .lora import lora_config

    return ModelCardGRPOTrainer(
        model=adapter.model,
        reward_funcs=[REWARDS[name] for name in script_args.reward_funcs],
        args=grpo_args,
        train_dataset=prompts,
        processing_class=adapter.processor,
        peft_config=lora_config(model_args) if model_args.use_peft else None,
    )


def _stage_settings(script_args, grpo_args, cold_start_steps: int | None) -> dict:
    """The card's lines for both stages (the GRPO stage's trainer settings follow them)."""
    weights = grpo_args.reward_weights or [1.0] * len(script_args.reward_funcs)
    cold_start = (f"SFT, {cold_start_steps} steps of {script_args.cold_start_batch_size} rows per device on the "
                  f"`{script_args.cold_start_config}` config in the answer format, learning rate "
                  f"{script_args.cold_start_learning_rate}, stated confidence "
                  f"{script_args.cold_start_confidence} +/- {script_args.cold_start_confidence_spread}"
                  f"{_sampled_confidence_setting(script_args)}" if cold_start_steps else "none in this run")
    return {
        "stage 1: cold start": cold_start,
        "stage 2: GRPO": (f"rewards {', '.join(f'{name} x {weight:g}' for name, weight in zip(script_args.reward_funcs, weights))}; "
                          f"{grpo_args.num_generations} generations per prompt, temperature {grpo_args.temperature}, "
                          f"beta {grpo_args.beta}, max_completion_length {grpo_args.max_completion_length}, "
                          f"loss {grpo_args.loss_type}"),
    }


def _sampled_confidence_setting(script_args) -> str:
    samples = script_args.cold_start_confidence_samples
    return (f", then for its last {script_args.cold_start_confidence_steps} steps each image's share of right answers "
            f"among {samples} sampled (smoothed)" if samples else "")


def main(argv: list[str] | None = None) -> int:
    """Parses the recipe and trains; bad input is one sentence on stderr and exit code 2 (`emovit.error_boundary`)."""
    from .sft import run_recipe

    return run_recipe("grpo", parse_recipe, train, argv)


if __name__ == "__main__":
    sys.exit(main())
