"""The model folder's README.md: Hub metadata, a description of the model and its training, and a `model-index` of
`emovit eval` results mirrored by a results table.

Built with huggingface_hub's `ModelCard` / `ModelCardData` / `EvalResult` (`evaluate.push_to_hub` is broken against
huggingface_hub 1.x and later). Training writes the card (`write_model_card`, replacing TRL's template); each
evaluation then merges its results into it (`update_model_card`): a new evaluation replaces only the entries it
re-measured. The body is a list of sections; the evaluation section sits between markers and is regenerated from
the `model-index` on every update, so new metrics or figures appear there without touching the rest.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult
from huggingface_hub import ModelCard
from huggingface_hub import ModelCardData

from dataset_builder.schema import CITATION
from modeling_emovit.tiny_models import is_tiny_model

# Hub task ids and names: emotion recognition is classification over a label space; the judged tasks are free text.
TASKS = {
    "classification": ("image-classification", "Visual emotion recognition"),
    "reasoning": ("image-text-to-text", "Affective reasoning"),
    "humor": ("image-text-to-text", "Humour understanding"),
}
# (results.json key, Hub metric id, display name); calibration and sensitivity appear only when measured.
CARD_METRICS = [
    ("accuracy", "accuracy", "Accuracy"),
    ("macro_f1", "f1", "Macro-F1"),
    ("weighted_f1", "f1", "Weighted-F1"),
    ("polarity_accuracy", "accuracy", "Polarity accuracy"),
    ("unmapped_rate", "unmapped_rate", "Unmapped answers"),
    ("ece", "ece", "Expected calibration error"),
    ("brier", "brier", "Brier score"),
    # EmoCaliber's columns (`classification_metrics.peer_calibration`), comparable with its published figures
    ("ece_10_bins_x100", "ece", "ECE x100 (10 equal-width bins, as EmoCaliber reports it)"),
    ("top_label_brier_x100", "brier", "Top-label Brier score x100 (as EmoCaliber reports it)"),
    # the reasoning answer format's stated confidence (`classification_metrics.reasoning_figures`)
    ("format_compliance", "format_compliance", "Answers in the reasoning format"),
    ("verbalised_ece_10_bins_x100", "ece", "Stated confidence: ECE x100 (10 equal-width bins)"),
    ("verbalised_brier_x100", "brier", "Stated confidence: Brier score x100"),
    ("verbalised_auroc", "roc_auc", "Stated confidence: AUROC, right answers against wrong ones (0.5: blind)"),
    ("rank_ece_10_bins_x100", "ece", "Rank probabilities of the same images: ECE x100 (10 equal-width bins)"),
    ("nll", "nll", "Negative log-likelihood"),
    ("top_3_accuracy", "accuracy", "Top-3 accuracy"),
    ("instruction_sensitivity", "instruction_sensitivity", "Instruction sensitivity"),
    ("relative_score", "relative_score", "Reasoning relative score (LLM judge)"),
    ("preference_rate", "preference_rate", "Humour preference rate (LLM judge)"),
]
TABLE_START, TABLE_END = "<!-- emovit-eval-start -->", "<!-- emovit-eval-end -->"
CALIBRATION_START, CALIBRATION_END = "<!-- emovit-calibration-start -->", "<!-- emovit-calibration-end -->"
OVERLAP_START, OVERLAP_END = "<!-- emovit-overlap-start -->", "<!-- emovit-overlap-end -->"
NO_RESULTS = "Not evaluated yet: `emovit eval --model THIS_FOLDER ...` adds results here and to the `model-index`."
TAGS = ["emovit", "emotion", "visual-emotion-analysis", "image-text-to-text"]


@dataclass
class ModelDescription:
    """What a card says about a model beyond its results; training fills every field, `update_model_card` the defaults.

    `base_model`: the Hub id (or local folder, shown by name only) the weights started from; `trained` / `frozen`:
    top-level modules that changed or stayed fixed; `adapter`: LoRA settings when the folder holds a PEFT adapter;
    `data`: the training datasets (Hub ids or local folders); `hyperparameters`: name -> value as the recipe set them.
    """

    architecture: str = "EmoVIT"
    emovit: bool = True  # an EmoVIT/InstructBLIP model (remote code, `emovit serve`), else another transformers VLM
    base_model: str | None = None
    trained: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    adapter: dict | None = None
    data: list[str] = field(default_factory=list)
    data_note: str = ""
    hyperparameters: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # training outcome: steps, final loss, runtime
    license: str = "other"
    training_tags: list[str] = field(default_factory=list)  # the trainer's own Hub tags (TRL's: "trl", "sft"/"grpo")


def eval_results_from(results: dict) -> list[EvalResult]:
    """One EvalResult per reported metric of one `emovit eval` results.json (mode or judge in metric_config); a run
    whose calibration applied gives each metric twice: `rank (calibrated)` and, from its `uncalibrated_metrics`,
    `rank` (the softmax of the raw log-likelihoods, what an uncalibrated run reports)."""
    headline = _eval_results(results, results["metrics"], _metric_config(results))
    if not results.get("uncalibrated_metrics"):
        return headline
    return headline + _eval_results(results, results["uncalibrated_metrics"], results["mode"])


def _eval_results(results: dict, metrics: dict, metric_config: str) -> list[EvalResult]:
    dataset = display_name(results["data"])
    task = results.get("task", "classification")
    label_space = results.get("label_space")
    task_type, task_name = TASKS[task]
    return [
        EvalResult(
            task_type=task_type,
            task_name=task_name,
            dataset_type=dataset,
            dataset_name=f"{dataset} ({label_space or task})",
            dataset_config=results["config"],
            dataset_split=results["split"],
            dataset_args={"label_space": label_space} if label_space else None,
            metric_type=metric_type,
            metric_name=name,
            metric_config=metric_config,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, metric_type, name in CARD_METRICS
        if metrics.get(key) is not None
    ]


def _metric_config(results: dict) -> str:
    """How the numbers were made: the classification mode (and decoding preset), or the judge (and its rules)."""
    if results.get("calibrated"):
        return f"{results['mode']} (calibrated)"
    if results.get("mode"):
        notes = []
        if results["mode"] == "generate" and results.get("generation", "default") != "default":
            notes.append(f"{results['generation']} decoding")
        if results.get("answer_format", "categorical") != "categorical":
            notes.append(f"{results['answer_format']} answer format")
        return results["mode"] + (f" ({', '.join(notes)})" if notes else "")
    rules = f", rules: {results['judge_rules']}" if results.get("judge_rules") else ""
    return f"judge: {results['judge_model']}{rules}"


def write_model_card(model_dir: str | Path, model: ModelDescription, model_name: str | None = None) -> ModelCard:
    """Writes a fresh MODEL_DIR/README.md for a newly trained model (earlier results described other weights).

    Metadata holds only values the Hub accepts: `base_model` and `datasets` only as Hub ids (a local folder is named
    in the text by its folder name, never by its path).
    """
    data = ModelCardData(
        library_name="peft" if model.adapter else "transformers",
        pipeline_tag="image-text-to-text",
        license=model.license,
        base_model=_base_model_id(model.base_model) if model.base_model else None,
        datasets=[name for name in model.data if _is_hub_id(name)] or None,
        tags=TAGS + model.training_tags + (["lora"] if model.adapter else []),
        model_name=model_name or Path(model_dir).resolve().name,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{card_body(data.model_name, model, [])}")
    card.save(Path(model_dir) / "README.md")
    return card


def update_model_card(
    model_dir: str | Path,
    results: list[dict] = (),
    base_model: str | None = None,
    datasets: str | list[str] | None = None,
) -> ModelCard:
    """Writes MODEL_DIR/README.md with library_name, pipeline_tag, base_model, datasets and a merged model-index.

    `results`: results.json dicts of `emovit eval`; an entry for the same dataset, config, split, label space, mode
    and metric replaces the old one. Existing metadata and body text are kept unless given anew. Local paths never
    reach the card: a local base model gives its own card's base_model (if any), a local dataset is left out.
    """
    path = Path(model_dir) / "README.md"
    card = ModelCard.load(path) if path.exists() else None
    data = card.data if card else ModelCardData()
    data.library_name = data.library_name or "transformers"
    data.pipeline_tag = "image-text-to-text"
    data.base_model = (_base_model_id(base_model) if base_model else None) or data.base_model
    datasets = [datasets] if isinstance(datasets, str) else datasets
    data.datasets = [name for name in datasets or () if _is_hub_id(name)] or data.datasets
    data.model_name = data.model_name or Path(model_dir).resolve().name
    data.eval_results = _merge(data.eval_results or [], [r for result in results for r in eval_results_from(result)])
    if card is None:
        body = card_body(data.model_name, ModelDescription(), [])
    elif TABLE_START not in card.text:  # a card written by hand or by another tool: kept, the results appended
        body = f"{card.text.rstrip()}\n\n## Evaluation\n\n{TABLE_START}\n{TABLE_END}\n"
    else:
        body = card.text
    body = with_overlap_section(with_calibration_section(body, results), results)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{_with_table(body, data.eval_results)}")
    card.save(path)
    return card


def card_body(model_name: str, model: ModelDescription, eval_results: list[EvalResult]) -> str:
    """The Markdown below the metadata: one section per concern, the evaluation section between its markers."""
    sections = [
        f"# {model_name}\n\n{_summary(model)}",
        f"## Intended use and limits\n\n{_intended_use(model)}",
        f"## Training\n\n{_training(model)}",
        f"## Evaluation\n\n{TABLE_START}\n{evaluation_section(eval_results)}\n{TABLE_END}",
        f"## How to use\n\n{_usage(model_name, model)}",
        f"## Citation\n\n```bibtex\n{CITATION}\n```",
        f"## Licence\n\n{_licence(model)}",
    ]
    return "\n" + "\n\n".join(sections) + "\n"


def evaluation_section(eval_results: list[EvalResult]) -> str:
    """The Markdown between the evaluation markers: a table with one row per `model-index` entry."""
    if not eval_results:
        return NO_RESULTS
    rows = ["| Dataset | Split | Mode | Metric | Value |", "|---|---|---|---|---|"]
    rows += [f"| {r.dataset_name} | {r.dataset_split} | {r.metric_config} | {r.metric_name} | {r.metric_value} |"
             for r in eval_results]
    return "\n".join(rows)


def _summary(model: ModelDescription) -> str:
    base = f"`{display_name(model.base_model)}`" if model.base_model else "its base model"
    if model.emovit:
        what = (f"An EmoVIT model (Xie et al., \"EmoVIT: Revolutionizing Emotion Insights with Visual Instruction "
                f"Tuning\", CVPR 2024): an InstructBLIP-style vision-language model, started from {base} and "
                f"instruction-tuned to recognise and explain the emotions images evoke.")
    else:
        what = (f"A {model.architecture} vision-language model, started from {base} and fine-tuned on EmoVIT-style "
                f"emotion instruction data (Xie et al., CVPR 2024).")
    parts = [what]
    if model.adapter:
        parts.append(f"This folder holds a LoRA adapter (PEFT; rank {model.adapter.get('r')}, alpha "
                     f"{model.adapter.get('lora_alpha')}) on that base, not full weights.")
    if model.trained or model.frozen:
        parts.append(f"Trained: {_modules(model.trained)}. Frozen: {_modules(model.frozen)}.")
    return " ".join(parts)


def _intended_use(model: ModelDescription) -> str:
    return (
        "Research on visual emotion analysis: predicting which emotion an image evokes (answering EmoVIT's "
        "categorical instruction with `Predict emotion: <label>`), and describing or reasoning about the visual cues "
        "behind it. The emotions an image evokes differ between people and cultures; the labels it learned are one "
        "annotator pool's majority view over a fixed label space. Do not use it to judge, profile or make decisions "
        "about people, or for anything with consequences for them. Answers outside the label space and free-text "
        "reasoning can be wrong while sounding confident; check the results below on data like yours first."
    )


def _training(model: ModelDescription) -> str:
    if not model.hyperparameters:
        return "Not recorded: this folder was not written by `emovit` training (`recipes/sft.py`)."
    data = ", ".join(f"`{display_name(name)}`" for name in model.data) or "not recorded"
    lines = [f"Data: {data}{model.data_note}.", "", "| Setting | Value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in model.hyperparameters.items()]
    if model.results:
        lines += ["", "Outcome: " + ", ".join(f"{name} {value}" for name, value in model.results.items()) + "."]
    return "\n".join(lines)


def _usage(model_name: str, model: ModelDescription) -> str:
    remote = ", trust_remote_code=True" if model.emovit else ""
    load = "AutoModelForImageTextToText.from_pretrained"
    lines = ["```python", "from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline", ""]
    comment = "  # the base named in adapter_config.json, then this adapter" if model.adapter else ""
    lines += [f'model = {load}("{model_name}"{remote}){comment}']
    lines += [f'processor = AutoProcessor.from_pretrained("{model_name}"{remote})']
    if not model.adapter:
        lines += [f'chat = pipeline("image-text-to-text", model="{model_name}"{remote})']
    lines += ["```"]
    if model.emovit:
        lines += ["", f"Evaluate it with `emovit eval --model {model_name} --data DATA --mode rank`."]
    if model.emovit and not model.adapter:
        lines[-1] += f" Serve it with OpenAI-compatible chat completions: `emovit serve {model_name}`."
    elif model.adapter:
        lines += ["", "Recipes with `merge_adapter: true` also write the merged model (full weights) to `merged/`."]
    return "\n".join(lines)


def _licence(model: ModelDescription) -> str:
    if model.license == "apache-2.0":
        return "Apache-2.0: the weights were initialised and trained with this package, from no third-party weights."
    return ("The weights derive from the base model and follow its licence (InstructBLIP-Vicuna inherits the "
            "Vicuna/LLaMA terms); the training data keeps its sources' terms (EmoSet: non-commercial research). "
            "The code is Apache-2.0.")


def _modules(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "nothing"


def _merge(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    fresh = {_key(result): result for result in new}
    return [result for result in old if _key(result) not in fresh] + list(fresh.values())


def _key(result: EvalResult) -> tuple:
    return (result.dataset_type, result.dataset_config, result.dataset_split,
            json.dumps(result.dataset_args, sort_keys=True), result.metric_name, result.metric_config)


def _with_table(body: str, eval_results: list[EvalResult]) -> str:
    """Replaces the text between the evaluation markers (if the body has them) with `evaluation_section`."""
    if TABLE_START not in body or TABLE_END not in body:
        return body
    table = f"{TABLE_START}\n{evaluation_section(eval_results)}\n{TABLE_END}"
    return _replace_marked(body, TABLE_START, TABLE_END, table)


def _replace_marked(body: str, start: str, end: str, replacement: str) -> str:
    """`body` with the text from marker `start` through marker `end` (both present) replaced by `replacement`."""
    head, rest = body.split(start, 1)
    return head + replacement + rest.split(end, 1)[1]


def _is_hub_id(name: str) -> bool:
    """A name the Hub could resolve: not a local path, and a valid repository id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _base_model_id(base_model: str) -> str | list[str] | None:
    """A Hub model id as given; for a local folder, the base_model its own card names (None without one); None for
    a tiny random model built offline (`tiny-random`, `small-random-t5`, ...)."""
    if is_tiny_model(base_model):
        return None
    if not Path(base_model).exists():
        return base_model if _is_hub_id(base_model) else None
    card = Path(base_model) / "README.md"
    return ModelCard.load(card).data.base_model if card.is_file() else None


def display_name(name: str) -> str:
    """A Hub id as given, a local folder by its name only (cards must not leak local paths)."""
    if is_tiny_model(name):
        return f"{name}, random weights built offline"
    return Path(name).name if Path(name).exists() else name


def with_calibration_section(body: str, results: list[dict]) -> str:
    """The card body with a "Calibration" section for the last result that reports one (rank mode with a fitted
    calibration): the temperature, whether per-label biases were kept, and ECE/Brier/NLL/accuracy before and after.
    Replaces the section an earlier evaluation wrote, else follows the evaluation results; the body is unchanged when
    no result reports calibration."""
    calibrated = [result for result in results if result.get("calibration")]
    if not calibrated:
        return body
    result = calibrated[-1]
    calibration = result["calibration"]
    rows = [f"| {name} | {f['ece']:.4f} | {f['brier']:.4f} | {f['nll']:.4f} | {f['accuracy']:.4f} |"
            for name, f in (("softmax of the log-likelihoods", calibration["before"]), ("calibrated", calibration["after"]))]
    section = "\n".join([
        CALIBRATION_START,
        "## Calibration",
        "",
        f"Rank-mode probabilities are temperature-scaled (T = {calibration['temperature']:.4g}; per-label biases "
        f"{'kept' if calibration['bias_kept'] else 'not kept: they did not lower the cross-validated NLL'}), fitted on "
        f"{calibration['fitted_on']}. Measured on {display_name(result['data'])} ({result['split']}, "
        f"{result['num_examples']} images, {result['label_space']}):",
        "",
        "| probabilities | ECE (15 bins) | Brier | NLL | accuracy |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "The results above list each rank-mode metric twice: `rank (calibrated)` after this calibration (per-label "
        "biases can change which label ranks first, so accuracy too) and `rank` from the softmax of the raw "
        "log-likelihoods.",
        "",
        'The `image-emotion-classification` pipeline (`pipeline("image-emotion-classification", model=..., '
        'trust_remote_code=True)`) returns the calibrated probabilities (`"calibrated": true` in each result) when '
        f"its candidates are the labels the calibration was fitted on ({result['label_space']}'s, in that order); "
        'other candidates get the softmax of the raw log-likelihoods (`"calibrated": false`).',
        CALIBRATION_END,
    ])
    return _place_section(body, CALIBRATION_START, CALIBRATION_END, section)


def with_overlap_section(body: str, results: list[dict]) -> str:
    """The card body with a "Test images seen in training" section for the results that counted them (a model folder
    recording its training images, `dataset_builder.training_images`); the body is unchanged when none did."""
    counted = [result for result in results if result.get("seen_in_training")]
    if not counted:
        return body
    lines = [f"- {display_name(r['data'])} ({r['split']}): {r['seen_in_training']['count']} of "
             f"{r['seen_in_training']['of']} images" for r in counted]
    section = "\n".join([
        OVERLAP_START,
        "## Test images seen in training",
        "",
        "Test images byte-identical to an image this model was trained on (fingerprints in `training_images.npy`); "
        "the figures above include them:",
        "",
        *lines,
        OVERLAP_END,
    ])
    return _place_section(body, OVERLAP_START, OVERLAP_END, section)


def _place_section(body: str, start: str, end: str, section: str) -> str:
    """`section` (between `start` and `end`) in place of the one an earlier evaluation wrote, else right after the
    evaluation results."""
    if start in body and end in body:
        return _replace_marked(body, start, end, section)
    if TABLE_END in body:
        head, rest = body.split(TABLE_END, 1)
        return f"{head}{TABLE_END}\n\n{section}{rest}"
    return body.rstrip("\n") + "\n\n" + section + "\n"
