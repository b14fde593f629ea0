"""The model folder's README.md: Hub metadata plus a `model-index` of `emovit eval` results.

Built with huggingface_hub's `ModelCard` / `ModelCardData` / `EvalResult` (`evaluate.push_to_hub` is broken against
huggingface_hub 1.x and later). Results accumulate: a new evaluation replaces only the entries it re-measured.
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult
from huggingface_hub import ModelCard
from huggingface_hub import ModelCardData

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
    ("top_3_accuracy", "accuracy", "Top-3 accuracy"),
    ("instruction_sensitivity", "instruction_sensitivity", "Instruction sensitivity"),
    ("relative_score", "relative_score", "Reasoning relative score (LLM judge)"),
    ("preference_rate", "preference_rate", "Humour preference rate (LLM judge)"),
]
TABLE_START, TABLE_END = "<!-- emovit-eval-start -->", "<!-- emovit-eval-end -->"
CARD_BODY = """
# {model_name}

An EmoVIT model: InstructBLIP instruction-tuned for visual emotion understanding (Xie et al., "EmoVIT:
Revolutionizing Emotion Insights with Visual Instruction Tuning", CVPR 2024), packaged for transformers.

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{model_name}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{model_name}", trust_remote_code=True)
```

## Evaluation

{table_start}
{table_end}
"""


def eval_results_from(results: dict) -> list[EvalResult]:
    """One EvalResult per reported metric of one `emovit eval` results.json (mode or judge in metric_config)."""
    dataset = _dataset_id(results["data"])
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
            metric_config=_metric_config(results),
            metric_value=round(float(results["metrics"][key]), 4),
        )
        for key, metric_type, name in CARD_METRICS
        if results["metrics"].get(key) is not None
    ]


def _metric_config(results: dict) -> str:
    """How the numbers were made: the classification mode (and decoding preset), or the judge (and its rules)."""
    if results.get("mode"):
        generation = results.get("generation", "default")
        return results["mode"] if generation == "default" or results["mode"] != "generate" else (
            f"{results['mode']} ({generation} decoding)")
    rules = f", rules: {results['judge_rules']}" if results.get("judge_rules") else ""
    return f"judge: {results['judge_model']}{rules}"


def update_model_card(
    model_dir: str | Path,
    results: list[dict] = (),
    base_model: str | None = None,
    datasets: str | list[str] | None = None,
) -> ModelCard:
    """Writes MODEL_DIR/README.md with library_name, pipeline_tag, base_model, datasets and a merged model-index.

    `results`: results.json dicts of `emovit eval`; an entry for the same dataset, config, split, label space, mode
    and metric replaces the old one. Existing metadata and body text are kept unless given anew. Local paths never
    reach the card: a local base model gives its own card's base_model (if any), a local dataset its folder name.
    """
    path = Path(model_dir) / "README.md"
    card = ModelCard.load(path) if path.exists() else None
    data = card.data if card else ModelCardData()
    data.library_name = "transformers"
    data.pipeline_tag = "image-text-to-text"
    data.base_model = (_base_model_id(base_model) if base_model else None) or data.base_model
    datasets = [datasets] if isinstance(datasets, str) else datasets
    data.datasets = [_dataset_id(dataset) for dataset in datasets or ()] or data.datasets
    data.model_name = data.model_name or Path(model_dir).resolve().name
    data.eval_results = _merge(data.eval_results or [], [r for result in results for r in eval_results_from(result)])
    body = card.text if card else CARD_BODY.format(model_name=data.model_name, table_start=TABLE_START, table_end=TABLE_END)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{_with_table(body, data.eval_results)}")
    card.save(path)
    return card


def _merge(old: list[EvalResult], new: list[EvalResult]) -> list[EvalResult]:
    fresh = {_key(result): result for result in new}
    return [result for result in old if _key(result) not in fresh] + list(fresh.values())


def _key(result: EvalResult) -> tuple:
    return (result.dataset_type, result.dataset_config, result.dataset_split,
            json.dumps(result.dataset_args, sort_keys=True), result.metric_name, result.metric_config)


def _with_table(body: str, eval_results: list[EvalResult]) -> str:
    """Replaces the text between the evaluation markers (if the body has them) with a Markdown table."""
    if TABLE_START not in body or TABLE_END not in body:
        return body
    rows = ["| Dataset | Split | Mode | Metric | Value |", "|---|---|---|---|---|"]
    rows += [f"| {r.dataset_name} | {r.dataset_split} | {r.metric_config} | {r.metric_name} | {r.metric_value} |"
             for r in eval_results]
    head, rest = body.split(TABLE_START, 1)
    return f"{head}{TABLE_START}\n" + "\n".join(rows) + f"\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}"


def _base_model_id(base_model: str) -> str | list[str] | None:
    """A Hub model id as given; for a local folder, the base_model its own card names (None without one)."""
    if not Path(base_model).exists():
        return base_model
    card = Path(base_model) / "README.md"
    return ModelCard.load(card).data.base_model if card.is_file() else None


def _dataset_id(data: str) -> str:
    """A Hub dataset id as given; for a local folder, its name (the card must not leak local paths)."""
    return Path(data).name if Path(data).exists() else data
