"""`emovit eval` for emotion classification: dataset -> predictions.jsonl -> metrics -> results.json, PNG, card.

Held-in (EmoSet) and held-out datasets (FI, EmotionROI, Emotion6, WEBEmo, UnbiasedEmo) are scored over their own
label space: the candidates the model chooses from are that space's labels. Under `accelerate launch` every process
predicts its shard (accelerate's `PartialState.split_between_processes`) and the main process gathers and writes.
Predictions are appended batch by batch, so an interrupted run resumes where it stopped.
"""

import json
import time
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError

METRICS_DIR = Path(__file__).parent / "metrics"
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
RUN_FILE = "run.json"  # the settings the predictions belong to, so a resume never mixes two runs


@dataclass
class EvalSettings:
    model: str
    data: str
    out: str
    config: str = "categorical"
    split: str = "test"
    label_space: str | None = None  # default: the dataset's own `label_space` column
    mode: str = "rank"  # "rank" | "generate"
    paraphrases: int = 1  # instruction paraphrases asked per image (1: EmoVIT's instruction only)
    batch_size: int = 8
    max_new_tokens: int | None = None  # generate mode; default: longest candidate answer + 4

    def identity(self) -> dict:
        """What must match for `out` to be resumed: every setting but `out` and the batch size."""
        return {k: v for k, v in asdict(self).items() if k not in ("out", "batch_size")}


# --- Inputs ------------------------------------------------------------------------------------------------------
def resolve_label_space(dataset, requested: str | None, data: str):
    """The chosen label space, after checking that every reference emotion of the split is one of its labels."""
    from dataset_builder.emotions import get_label_space

    declared = sorted(set(dataset["label_space"])) if "label_space" in dataset.column_names else []
    if requested is None and len(declared) != 1:
        raise EmoVITInputError(f"{data}: the split declares label spaces {declared}; choose one with --label-space.")
    space = get_label_space(requested or declared[0])
    unknown = sorted(set(dataset["emotion"]) - set(space.labels))
    if unknown:
        raise EmoVITInputError(
            f"{data}: emotions {unknown} are not labels of the {space.name!r} label space ({', '.join(space.labels)}); "
            f"pass the dataset's own --label-space (it declares {declared})."
        )
    return space


def load_model(model: str):
    """EmoVIT (an InstructBLIP folder is read by EmoVIT's classes) + processor, loaded once; other models are refused.

    A local folder without a processor and a model of another architecture (LLaVA, ...) are refused by name.
    """
    from transformers import AutoConfig

    from emovit.training.loading import EMOVIT_MODEL_TYPES
    from emovit.training.loading import TINY_MODEL
    from emovit.training.loading import load_model_and_processor

    folder = Path(model)
    if folder.is_dir() and not any((folder / name).exists() for name in ("processor_config.json", "preprocessor_config.json")):
        raise EmoVITInputError(
            f"{model}: the model folder has no processor (processor_config.json); save it there with "
            f"processor.save_pretrained({model!r})."
        )
    try:
        if not TINY_MODEL.match(model):  # the config alone tells the architecture: no weights are loaded to refuse one
            model_type = AutoConfig.from_pretrained(model, trust_remote_code=True).model_type
            if model_type not in EMOVIT_MODEL_TYPES:
                raise EmoVITInputError(
                    f"{model} is a {model_type!r} model, but `emovit eval` scores EmoVIT/InstructBLIP models only."
                )
        network, processor = load_model_and_processor(model)
    except OSError as error:
        raise EmoVITInputError(f"{model}: cannot load the model or its processor ({error}).") from None
    return network.eval(), processor


# --- Predictions (resumable, sharded) ----------------------------------------------------------------------------
def read_predictions(path: Path) -> tuple[dict, int]:
    """Rows by (id, paraphrase), and how many lines an interruption cut short (truncated away, then recomputed)."""
    from dataset_builder.generation.pipeline import complete_rows

    cut = _ends_mid_line(path)
    return {(row["id"], row["paraphrase"]): row for row in complete_rows(path)}, int(cut)


def _ends_mid_line(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as file:
        file.seek(-1, 2)
        return file.read(1) != b"\n"


def prepare_out(settings: EvalSettings) -> Path:
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / RUN_FILE
    if run_file.exists() and (out / PREDICTIONS_FILE).exists():
        previous = json.loads(run_file.read_text())
        if previous != settings.identity():
            changed = sorted(k for k in settings.identity() if previous.get(k) != settings.identity()[k])
            raise EmoVITInputError(
                f"{out}: holds predictions of another run (different {', '.join(changed)}); pass a new --out or delete it."
            )
    run_file.write_text(json.dumps(settings.identity(), indent=2))
    return out


def predict_all(settings: EvalSettings, dataset, space, predictor, out: Path) -> dict:
    """Predicts every (example, paraphrase) not yet in predictions.jsonl; returns counts and timing."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    from dataset_builder.instructions import categorical_instruction

    state = PartialState()  # the one run_eval set up
    with state.main_process_first():  # the main process truncates a cut last line (and counts it) before the others read
        done, partial = read_predictions(out / PREDICTIONS_FILE)
    state.wait_for_everyone()  # every process has read the file before the main process appends to it
    resumed = len(done)
    ids = dataset["id"]
    todo = [(p, i) for p in range(settings.paraphrases) for i in range(len(dataset)) if (ids[i], p) not in done]
    prompts = [categorical_instruction(space.labels, p) for p in range(settings.paraphrases)]
    started = time.perf_counter()
    if todo:
        with state.split_between_processes(todo, apply_padding=True) as shard:  # padded: equal batch counts
            for start in range(0, len(shard), settings.batch_size):
                rows = _predict_batch(shard[start : start + settings.batch_size], dataset, prompts, predictor)
                rows = gather_object(rows)
                if state.is_main_process:
                    _append(out / PREDICTIONS_FILE, rows, done)
    state.wait_for_everyone()
    seconds = time.perf_counter() - started
    return {"computed": len(todo), "resumed": resumed, "partial_lines_dropped": partial, "seconds": seconds}


def _predict_batch(batch: list[tuple[int, int]], dataset, prompts: list[str], predictor) -> list[dict]:
    """One row per (paraphrase, example index); the predictor sees one instruction at a time."""
    rows = []
    for paraphrase in sorted({p for p, _ in batch}):
        indices = [i for p, i in batch if p == paraphrase]
        examples = dataset.select(indices)
        predictions = predictor.predict(list(examples["image"]), prompts[paraphrase])
        rows += [
            {"id": example_id, "paraphrase": paraphrase, "reference": reference, "prediction": prediction.label,
             "answer": prediction.answer, "scores": prediction.scores}
            for example_id, reference, prediction in zip(examples["id"], examples["emotion"], predictions)
        ]
    return rows


def _append(path: Path, rows: list[dict], done: dict) -> None:
    """Appends rows not yet written (padding repeats the last item of a shard) and flushes them to disk."""
    with path.open("a", encoding="utf-8") as file:
        for row in rows:
            key = (row["id"], row["paraphrase"])
            if key not in done:
                done[key] = row
                file.write(json.dumps(row) + "\n")


# --- Metrics and reports -----------------------------------------------------------------------------------------
def compute_metrics(rows: list[dict], space, data: str, with_scores: bool) -> dict:
    """Headline metrics on EmoVIT's own instruction (paraphrase 0); sensitivity across all paraphrases."""
    import evaluate

    from dataset_builder.emotions import polarity_of

    labels = list(space.labels)
    headline = [row for row in rows if row["paraphrase"] == 0]
    predictions = [row["prediction"] or "" for row in headline]
    references = [row["reference"] for row in headline]
    classification = evaluate.load(str(METRICS_DIR / "emotion_classification"))
    metrics = classification.compute(predictions=predictions, references=references, labels=labels)
    metrics["polarity_accuracy"] = sum(
        bool(row["prediction"]) and polarity_of(row["prediction"], space) == polarity_of(row["reference"], space)
        for row in headline
    ) / len(headline)
    if with_scores:
        calibration = evaluate.load(str(METRICS_DIR / "emotion_calibration"))
        metrics |= calibration.compute(
            predictions=[[row["scores"][label] for label in labels] for row in headline], references=references,
            labels=labels,
        )
    if len({row["paraphrase"] for row in rows}) > 1:
        sensitivity = evaluate.load(str(METRICS_DIR / "instruction_sensitivity"))
        spread = sensitivity.compute(
            predictions=[row["prediction"] or "" for row in rows], references=[row["reference"] for row in rows],
            paraphrases=[row["paraphrase"] for row in rows], datasets=[data] * len(rows), labels=labels,
        )
        metrics["instruction_sensitivity"] = spread["sensitivity"]
        metrics["accuracy_per_paraphrase"] = spread["per_dataset"][data]["accuracy_per_paraphrase"]
    return metrics


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """Counts per (reference, prediction), written as a PNG with matplotlib's non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2 + 0.5 * len(labels)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("prediction")
    axes.set_ylabel("reference")
    axes.set_title(title)
    for r, row in enumerate(matrix):
        for c, count in enumerate(row):
            axes.text(c, r, str(count), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- The command -------------------------------------------------------------------------------------------------
def run_eval(settings: EvalSettings, base_model: str | None = None, training_data: str | None = None) -> dict | None:
    """Runs the whole evaluation; returns the results on the main process (None on the others).

    A local model folder gets its README.md model-index updated (`evaluation.model_card.update_model_card`);
    `base_model` and `training_data` fill the card's metadata when given.
    """
    from accelerate import PartialState

    import torch

    _check_settings(settings)
    # Without an accelerator, accelerate needs cpu=True to join the launcher's processes (gloo) instead of each
    # process running alone on the whole dataset.
    state = PartialState(cpu=not torch.accelerator.is_available())
    dataset = load_split(settings.data, settings.config, settings.split)
    space = resolve_label_space(dataset, settings.label_space, settings.data)
    out = prepare_out(settings) if state.is_main_process else Path(settings.out)
    state.wait_for_everyone()
    model, processor = load_model(settings.model)
    model.to(state.device)
    predictor = _predictor(settings, model, processor, space)
    progress = predict_all(settings, dataset, space, predictor, out)
    if not state.is_main_process:
        return None
    rows, _ = read_predictions(out / PREDICTIONS_FILE)
    wanted = set(dataset["id"])
    rows = [row for row in rows.values() if row["id"] in wanted and row["paraphrase"] < settings.paraphrases]
    metrics = compute_metrics(rows, space, settings.data, with_scores=settings.mode == "rank")
    results = {
        "task": "classification",
        **asdict(settings),
        "label_space": space.name,
        "num_examples": len(dataset),
        "num_processes": state.num_processes,
        "metrics": {k: v for k, v in metrics.items() if k not in ("per_class", "confusion_matrix", "labels")},
        "per_class": metrics["per_class"],
        "confusion_matrix": {"labels": metrics["labels"], "counts": metrics["confusion_matrix"]},
        "progress": {**progress, "images_per_second": _rate(progress)},
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    plot_confusion_matrix(
        metrics["confusion_matrix"], metrics["labels"], out / CONFUSION_MATRIX_FILE,
        f"{Path(settings.data).name} ({space.name}, {settings.mode})",
    )
    if Path(settings.model).is_dir():
        from evaluation.model_card import update_model_card

        update_model_card(settings.model, [results], base_model=base_model, datasets=training_data)
    return results


def _check_settings(settings: EvalSettings) -> None:
    from dataset_builder.instructions import CATEGORICAL_PARAPHRASES

    if settings.mode not in ("rank", "generate"):
        raise EmoVITInputError(f"--mode must be 'rank' or 'generate', not {settings.mode!r}.")
    if not 1 <= settings.paraphrases <= len(CATEGORICAL_PARAPHRASES):
        raise EmoVITInputError(f"--paraphrases must be between 1 and {len(CATEGORICAL_PARAPHRASES)}, not {settings.paraphrases}.")
    if settings.batch_size < 1:
        raise EmoVITInputError(f"--batch-size must be at least 1, not {settings.batch_size}.")


def _predictor(settings: EvalSettings, model, processor, space):
    from evaluation.predictors import GeneratePredictor
    from evaluation.predictors import RankPredictor

    if settings.mode == "rank":
        return RankPredictor(model, processor, space)
    return GeneratePredictor(model, processor, space, settings.max_new_tokens)


def _rate(progress: dict) -> float | None:
    """Images (example x paraphrase) per second over what this run computed; None when everything was resumed."""
    return progress["computed"] / progress["seconds"] if progress["computed"] else None
