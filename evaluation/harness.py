"""`emovit eval` for emotion classification: dataset -> predictions.jsonl -> metrics -> results.json, PNG, card.

Held-in (EmoSet) and held-out datasets (FI, EmotionROI, Emotion6, WEBEmo, UnbiasedEmo) are scored over their own
label space: the candidates the model chooses from are that space's labels. Flow: settings -> data and label space
-> model -> predictions (resumable, sharded) -> metrics -> results, confusion matrix and model card.
"""

import json
from dataclasses import asdict
from pathlib import Path

from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.loading import EMOVIT_MODEL_TYPES, check_processor_folder, load_model_and_processor, model_type_of

from .calibration import calibrate, calibration_results
from .label_space import resolve_label_space
from .model_card import display_name, update_model_card
from .plots import plot_confusion_matrix
from .predictions import PREDICTIONS_FILE, check_out, predict_all, prepare_out, read_predictions
from .scoring import compute_metrics
from .settings import EvalSettings

RESULTS_FILE = "results.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
RELIABILITY_DIAGRAM_FILE = "reliability_diagram.png"


def load_model(model: str, trust_remote_code: bool = False):
    """EmoVIT (an InstructBLIP folder is read by EmoVIT's classes) or any image-text-to-text model whose processor
    has a chat template (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...), with its processor, loaded once.

    A local folder without a processor is refused by name from its files alone; a model whose processor has no chat
    template (so no way to put EmoVIT's instruction to it) once loaded.
    """
    from modeling_emovit.chat_vlm import uses_chat_template

    check_processor_folder(model, "`emovit eval`")
    try:
        network, processor = load_model_and_processor(model, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise EmoVITInputError(f"{model}: cannot load the model or its processor ({error}).") from None
    if not uses_chat_template(processor) and model_type_of(model, trust_remote_code) not in EMOVIT_MODEL_TYPES:
        raise EmoVITInputError(
            f"{model}: its processor has no chat template, so `emovit eval` cannot put the instruction to this "
            f"{type(network).__name__}; save the processor with one (processor.chat_template = ...)."
        )
    return network.eval(), processor


def run_eval(settings: EvalSettings, base_model: str | None = None, training_data: str | None = None) -> dict | None:
    """Runs the whole evaluation; returns the results on the main process (None on the others).

    A local model folder gets its README.md model-index updated (`evaluation.model_card.update_model_card`);
    `base_model` and `training_data` fill the card's metadata when given.
    """
    import torch
    from accelerate import PartialState

    settings.check()
    # Without an accelerator, accelerate needs cpu=True to join the launcher's processes (gloo) instead of each
    # process running alone on the whole dataset.
    state = PartialState(cpu=not torch.accelerator.is_available())
    dataset = load_split(settings.data, settings.config, settings.split)
    space = resolve_label_space(dataset, settings.label_space, settings.data)
    if state.is_main_process:
        check_out(settings)  # another run's output is refused before the model loads
    model, processor = load_model(settings.model, settings.trust_remote_code)
    out = prepare_out(settings) if state.is_main_process else Path(settings.out)  # written once the model loaded
    state.wait_for_everyone()
    model.to(state.device)
    fit = calibrate(settings, model, processor, space) if settings.calibrate_on else None
    predictor = _predictor(settings, model, processor, space)
    progress = predict_all(settings, dataset, space, predictor, out)
    if not state.is_main_process:
        return None
    skipped = {"count": progress.pop("skipped_images"), "ids": progress.pop("skipped_image_ids")}
    rows, _ = read_predictions(out / PREDICTIONS_FILE)
    wanted = set(dataset["id"])
    rows = [row for row in rows.values() if row["id"] in wanted and row["paraphrase"] < settings.paraphrases]
    if not rows:
        raise EmoVITInputError(
            f"{settings.data}: no image of split {settings.split!r} decodes ({skipped['count']} skipped, e.g. "
            f"{', '.join(skipped['ids'][:3])}); nothing to score."
        )
    metrics = compute_metrics(rows, space, settings.data, with_scores=settings.mode == "rank")
    results = {
        "task": "classification",
        **asdict(settings),
        "label_space": space.name,
        "num_examples": len(dataset),
        "skipped_images": skipped,
        "num_processes": state.num_processes,
        "metrics": {k: v for k, v in metrics.items() if k not in ("per_class", "confusion_matrix", "labels")},
        "per_class": metrics["per_class"],
        "confusion_matrix": {"labels": metrics["labels"], "counts": metrics["confusion_matrix"]},
        "progress": {**progress, "images_per_second": _rate(progress)},
    }
    calibration = getattr(model.config, "emotion_calibration", None) if settings.mode == "rank" else None
    if calibration:
        results["calibration"] = calibration_results(rows, space, calibration, fit, out / RELIABILITY_DIAGRAM_FILE,
                                                     f"{Path(settings.data).name} ({space.name})")
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    plot_confusion_matrix(
        metrics["confusion_matrix"], metrics["labels"], out / CONFUSION_MATRIX_FILE,
        f"{display_name(settings.model)} on {display_name(settings.data)}, split {settings.split}: "
        f"{space.name} labels, {settings.mode} mode",
    )
    if Path(settings.model).is_dir():
        update_model_card(settings.model, [results], base_model=base_model, datasets=training_data)
    return results


def _predictor(settings: EvalSettings, model, processor, space):
    from .predictors import GeneratePredictor, RankPredictor

    if settings.mode == "rank":
        return RankPredictor(model, processor, space)
    return GeneratePredictor(model, processor, space, settings.max_new_tokens, settings.generation)


def _rate(progress: dict) -> float | None:
    """Images (example x paraphrase) per second over what this run computed; None when everything was resumed."""
    return progress["computed"] / progress["seconds"] if progress["computed"] else None
