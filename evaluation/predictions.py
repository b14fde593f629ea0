"""Predictions of an evaluation, resumable and sharded: predictions.jsonl grows batch by batch.

Under `accelerate launch` every process predicts its shard (accelerate's `PartialState.split_between_processes`)
and the main process gathers and appends; an interrupted run resumes where it stopped, and `run.json` keeps a
resume from mixing two runs' predictions. Images are decoded here, so that one that does not decode is skipped
and counted (it gets no prediction, and is tried again by a resumed run) instead of ending the run.
"""

import json
import time
from pathlib import Path

from dataset_builder.instructions import categorical_instruction
from dataset_builder.jsonl import append_line, read_resumable
from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.image_utils import InvalidImageError, open_image

from .settings import EvalSettings

PREDICTIONS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"  # the settings the predictions belong to, so a resume never mixes two runs


def read_predictions(path: Path) -> tuple[dict, int]:
    """Rows by (id, paraphrase), and how many lines were unusable (cut short by an interruption, garbled): they are
    dropped and predicted again."""
    resumed = read_resumable(path)
    rows = {(row["id"], row["paraphrase"]): row for row in resumed.rows if "id" in row and "paraphrase" in row}
    return rows, resumed.cut_lines + resumed.garbled_lines + len(resumed.rows) - len(rows)


def check_out(settings: EvalSettings) -> None:
    """Refuses (writing nothing) an `out` that holds another run's predictions, or predictions whose run.json is
    garbled."""
    out = Path(settings.out)
    run_file = out / RUN_FILE
    if run_file.exists() and (out / PREDICTIONS_FILE).exists():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = None
        if not isinstance(previous, dict):
            raise EmoVITInputError(
                f"{run_file}: garbled, so the predictions beside it cannot be matched to this run; delete the file "
                "(or the folder) or pass a new --out."
            )
        if previous != settings.identity():
            changed = sorted(k for k in settings.identity() if previous.get(k) != settings.identity()[k])
            raise EmoVITInputError(
                f"{out}: holds predictions of another run (different {', '.join(changed)}); pass a new --out or delete it."
            )


def prepare_out(settings: EvalSettings) -> Path:
    """Creates `out` (refused as by `check_out`) and records this run's settings in run.json."""
    check_out(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(settings.identity(), indent=2))
    return out


def predict_all(settings: EvalSettings, dataset, space, predictor, out: Path) -> dict:
    """Predicts every (example, paraphrase) not yet in predictions.jsonl; returns counts and timing, and the ids of
    images skipped because they do not decode."""
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from datasets import Image
    from tqdm.auto import tqdm

    state = PartialState()  # the one run_eval set up
    with state.main_process_first():  # the main process truncates a cut last line (and counts it) before the others read
        done, partial = read_predictions(out / PREDICTIONS_FILE)
    state.wait_for_everyone()  # every process has read the file before the main process appends to it
    resumed = len(done)
    ids = dataset["id"]
    todo = [(p, i) for p in range(settings.paraphrases) for i in range(len(dataset)) if (ids[i], p) not in done]
    prompts = [categorical_instruction(space.labels, p) for p in range(settings.paraphrases)]
    undecoded = dataset.cast_column("image", Image(decode=False))  # decoded here, one image at a time
    skipped: dict[str, str] = {}  # image id -> why it was skipped
    started = time.perf_counter()
    progress = tqdm(total=len(todo), desc=f"eval ({settings.mode})", unit="image", disable=not state.is_main_process)
    if todo:
        with state.split_between_processes(todo, apply_padding=True) as shard:  # padded: equal batch counts
            for start in range(0, len(shard), settings.batch_size):
                rows = _predict_batch(shard[start : start + settings.batch_size], undecoded, prompts, predictor)
                rows = gather_object(rows)
                if state.is_main_process:
                    skipped.update((row["id"], row["skipped"]) for row in rows if "skipped" in row)
                    _append(out / PREDICTIONS_FILE, [row for row in rows if "skipped" not in row], done)
                    progress.update(min(len(rows), progress.total - progress.n))  # padding repeats rows
    progress.close()
    state.wait_for_everyone()
    seconds = time.perf_counter() - started
    return {"computed": len(todo), "resumed": resumed, "partial_lines_dropped": partial, "seconds": seconds,
            "skipped_images": len(skipped), "skipped_image_ids": sorted(skipped)[:20]}


def _predict_batch(batch: list[tuple[int, int]], dataset, prompts: list[str], predictor) -> list[dict]:
    """One row per (paraphrase, example index); the predictor sees one instruction at a time. An image that does
    not decode gives `{"id", "paraphrase", "skipped": reason}` instead."""
    rows = []
    for paraphrase in sorted({p for p, _ in batch}):
        indices = [i for p, i in batch if p == paraphrase]
        examples = dataset.select(indices)
        images, kept, skipped = decoded_images(examples["id"], examples["image"])
        rows += [{"id": example_id, "paraphrase": paraphrase, "skipped": reason} for example_id, reason in skipped.items()]
        predictions = predictor.predict(images, prompts[paraphrase]) if images else []
        rows += [
            {"id": examples["id"][k], "paraphrase": paraphrase, "reference": examples["emotion"][k],
             "prediction": prediction.label, "answer": prediction.answer, "scores": prediction.scores,
             "log_likelihoods": prediction.log_likelihoods}
            for k, prediction in zip(kept, predictions)
        ]
    return rows


def decoded_images(ids: list[str], cells: list) -> tuple[list, list[int], dict[str, str]]:
    """The images among undecoded `{"bytes", "path"}` cells that decode, the positions they came from, and
    id -> reason for those that do not (skipped and counted, never fatal)."""
    images, kept, skipped = [], [], {}
    for position, (example_id, cell) in enumerate(zip(ids, cells)):
        try:
            images.append(open_image(cell))
            kept.append(position)
        except InvalidImageError as error:
            skipped[example_id] = str(error)
    return images, kept, skipped


def _append(path: Path, rows: list[dict], done: dict) -> None:
    """Appends rows not yet written (padding repeats the last item of a shard) and flushes them to disk."""
    with path.open("a", encoding="utf-8") as file:
        for row in rows:
            key = (row["id"], row["paraphrase"])
            if key not in done:
                done[key] = row
                append_line(file, row)
