"""`emovit eval` for emotion classification: dataset -> predictions.jsonl -> metrics -> results.json, PNG, card.

Held-in (EmoSet) and held-out datasets (FI, EmotionROI, Emotion6, WEBEmo, UnbiasedEmo) are scored over their own
label space: the candidates the model chooses from are that space's labels. Flow: settings -> data and label space
-> model (its backbone adapter) -> predictions (`prediction_loop.predict_split`: resumable, sharded) -> metrics ->
results, confusion matrix and model card.
"""

import json
from dataclasses import asdict
from pathlib import Path

from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.loading import check_processor_folder, load_model_and_processor

from .calibration import calibrate, calibration_results, uncalibrated_rows
from .classification_metrics import compute_metrics
from .label_space import in_label_space, resolve_label_space
from .model_card import display_name, update_model_card
from .plots import plot_confusion_matrix
from .prediction_loop import check_out, eval_process_state, predict_split
from .settings import EvalSettings

RESULTS_FILE = "results.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
RELIABILITY_DIAGRAM_FILE = "reliability_diagram.png"


def load_adapter(model: str, trust_remote_code: bool = False):
    """The backbone adapter (`modeling_emovit.backbone`) of EmoVIT (an InstructBLIP folder is read by EmoVIT's
    classes) or of any image-text-to-text model whose processor has a chat template (LLaVA, Idefics3/SmolVLM,
    Qwen2-VL, ...), model in eval mode, loaded once; a model's own code runs only with `trust_remote_code`.

    A local folder without a processor is refused by name from its files alone; a model that cannot be asked
    EmoVIT's instruction once loaded.
    """
    from modeling_emovit.backbone import backbone_adapter

    check_processor_folder(model, "`emovit eval`")
    try:
        network, processor = load_model_and_processor(model, trust_remote_code=trust_remote_code)
    except OSError as error:
        raise EmoVITInputError(f"{model}: cannot load the model or its processor ({error}).") from None
    adapter = backbone_adapter(network.eval(), processor)
    adapter.require_emotion_questions(model)
    return adapter


def run_eval(settings: EvalSettings, base_model: str | None = None, training_data: str | None = None) -> dict | None:
    """Runs the whole evaluation; returns the results on the main process (None on the others).

    A local model folder gets its README.md model-index updated (`evaluation.model_card.update_model_card`);
    `base_model` and `training_data` fill the card's metadata when given.
    """
    settings.check()
    state = eval_process_state()
    dataset = load_split(settings.data, settings.config, settings.split)
    space = resolve_label_space(dataset, settings.label_space, settings.data)
    dataset = in_label_space(dataset, space)
    if state.is_main_process:
        check_out(settings)  # another run's output is refused before the model loads
    adapter = load_adapter(settings.model, settings.trust_remote_code)
    adapter.model.to(state.device)
    fit = calibrate(settings, adapter, space) if settings.calibrate_on else None
    split = predict_split(settings, dataset, _classification_task(settings, adapter, space))
    if not state.is_main_process:
        return None
    if not split.rows:
        raise EmoVITInputError(
            f"{settings.data}: no image of split {settings.split!r} decodes ({split.skipped['count']} skipped, e.g. "
            f"{', '.join(split.skipped['ids'][:3])}); nothing to score."
        )
    results = _results(settings, space, dataset, split, adapter, state.num_processes)
    if results["calibrated"]:
        calibration = adapter.model.config.emotion_calibration
        results["calibration"] = calibration_results(
            split.rows, space, calibration, fit, Path(settings.out) / RELIABILITY_DIAGRAM_FILE,
            f"{Path(settings.data).name} ({space.name})")
    _write_outputs(settings, space, results, base_model, training_data)
    return results


def _classification_task(settings: EvalSettings, adapter, space):
    from .predictors import ClassificationTask, GeneratePredictor, RankPredictor, ReasoningPredictor

    if settings.mode == "rank":
        predictor = RankPredictor(adapter, space)
    else:
        generator = ReasoningPredictor if settings.answer_format == "reasoning" else GeneratePredictor
        predictor = generator(adapter, space, settings.max_new_tokens, settings.generation)
    return ClassificationTask(predictor, space, settings.paraphrases, settings.mode)


def _results(settings: EvalSettings, space, dataset, split, adapter, num_processes: int) -> dict:
    """results.json's content: the settings, the metrics, per-class figures, confusion matrix and progress.

    `calibrated` (rank mode): whether the model's calibration applied to this label space, and so made the run's
    probabilities and predictions; then `uncalibrated_metrics` holds the same metrics from the raw softmax."""
    from modeling_emovit.calibration_emovit import calibration_applies

    rank = settings.mode == "rank"
    metrics = compute_metrics(split.rows, space, settings.data, with_scores=rank)
    calibrated = rank and calibration_applies(space.labels, getattr(adapter.model.config, "emotion_calibration", None))
    uncalibrated = {"uncalibrated_metrics": _headline(compute_metrics(
        uncalibrated_rows(split.rows, space.labels), space, settings.data, with_scores=True))} if calibrated else {}
    return {
        "task": "classification",
        **asdict(settings),
        "label_space": space.name,
        "backbone": adapter.family,
        "num_examples": len(dataset),
        "skipped_images": split.skipped,
        "num_processes": num_processes,
        "calibrated": calibrated if rank else None,
        "metrics": _headline(metrics),
        **uncalibrated,
        "per_class": metrics["per_class"],
        "confusion_matrix": {"labels": metrics["labels"], "counts": metrics["confusion_matrix"]},
        "progress": {**split.progress, "images_per_second": _rate(split.progress)},
        **_seen_in_training(settings.model, dataset),
    }


def _seen_in_training(model: str, dataset) -> dict:
    """`{"seen_in_training": {"count", "of", "ids"}}` when the model folder records its training images
    (`dataset_builder.training_images`), else nothing."""
    from dataset_builder.training_images import seen_in_training

    seen = seen_in_training(model, dataset) if Path(model).is_dir() else None
    return {"seen_in_training": seen} if seen is not None else {}


def _write_outputs(settings: EvalSettings, space, results: dict, base_model: str | None,
                   training_data: str | None) -> None:
    """results.json, the confusion-matrix PNG and, for a local model folder, its card's model-index."""
    out = Path(settings.out)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    confusion = results["confusion_matrix"]
    plot_confusion_matrix(
        confusion["counts"], confusion["labels"], out / CONFUSION_MATRIX_FILE,
        f"{display_name(settings.model)} on {display_name(settings.data)}, split {settings.split}: "
        f"{space.name} labels, {settings.mode} mode",
    )
    if Path(settings.model).is_dir():
        update_model_card(settings.model, [results], base_model=base_model, datasets=training_data)


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("per_class", "confusion_matrix", "labels")}


def _rate(progress: dict) -> float | None:
    """Images (example x paraphrase) per second over what this run computed; None when everything was resumed."""
    return progress["computed"] / progress["seconds"] if progress["computed"] else None
