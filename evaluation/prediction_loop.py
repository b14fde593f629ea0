"""The one prediction loop of `emovit eval`, resumable and sharded: predictions.jsonl grows batch by batch.

Every task runs through it: classification in rank or generate mode, the judged tasks' free-text answers and
calibration's validation split. A task (`PredictionTask`) says what is asked of a batch of examples and which row
each answer becomes; this loop decides what is left to do, shards it, decodes the images and writes the rows.

Under `accelerate launch` every process predicts its shard (accelerate's `PartialState.split_between_processes`)
and the main process gathers and appends; an interrupted run (even `kill -9`) resumes where it stopped, asking
nothing twice, and `run.json` keeps a resume from mixing two runs' predictions. Images are decoded here, so that
one that does not decode is skipped and counted (it gets no prediction, and is tried again by a resumed run)
instead of ending the run.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
    """Refuses (writing nothing) an `out` that holds another run's predictions, predictions whose run.json is
    garbled, or predictions without a run.json."""
    out = Path(settings.out)
    run_file = out / RUN_FILE
    if (out / PREDICTIONS_FILE).exists() and not run_file.exists():
        raise EmoVITInputError(
            f"{out / PREDICTIONS_FILE}: predictions without the run.json that says which run made them (copied from "
            "elsewhere?), so they cannot be resumed; pass a new --out or delete the file."
        )
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


class PredictionTask(Protocol):
    """What an evaluation asks of each example: `rows` answers a batch of one paraphrase's examples (their decoded
    images, and the positions in `examples` those came from) with one predictions.jsonl row per image, keyed by
    `id` and `paraphrase`."""

    description: str  # the progress bar's label
    paraphrases: int  # instructions asked per example (paraphrase 0 is EmoVIT's own)

    def rows(self, examples, images: list, kept: list[int], paraphrase: int) -> list[dict]: ...


@dataclass
class SplitPredictions:
    """A split's predictions once every process has written its shard: the split's rows as read back from
    predictions.jsonl (its ids and asked paraphrases only), this run's counts and timing, and the images that did not
    decode (`{"count", "ids"}`)."""

    rows: list[dict]
    progress: dict
    skipped: dict


def eval_process_state():
    """accelerate's state for this process. Without an accelerator, accelerate needs cpu=True to join the
    launcher's processes (gloo) instead of each process running alone on the whole dataset."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.accelerator.is_available())


def predict_split(settings: EvalSettings, dataset, task: PredictionTask) -> SplitPredictions:
    """Prepares `settings.out` (the main process writes run.json), predicts whatever of `dataset` it does not hold yet
    and reads the split's rows back, on every process (so each can compute the same thing from them)."""
    from accelerate import PartialState

    state = PartialState()  # the one `eval_process_state` set up
    out = prepare_out(settings) if state.is_main_process else Path(settings.out)
    state.wait_for_everyone()
    progress = predict_all(task, dataset, out, settings.batch_size)
    skipped = {"count": progress.pop("skipped_images"), "ids": progress.pop("skipped_image_ids")}
    rows, _ = read_predictions(out / PREDICTIONS_FILE)
    wanted = set(dataset["id"])
    rows = [row for row in rows.values() if row["id"] in wanted and row["paraphrase"] < task.paraphrases]
    return SplitPredictions(rows, progress, skipped)


def predict_all(task: PredictionTask, dataset, out: Path, batch_size: int) -> dict:
    """Predicts every (example, paraphrase) not yet in predictions.jsonl; returns counts and timing, and the ids of
    images skipped because they do not decode."""
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from datasets import Image
    from tqdm.auto import tqdm

    state = PartialState()
    with state.main_process_first():  # the main process truncates a cut last line (and counts it) before the others read
        done, partial = read_predictions(out / PREDICTIONS_FILE)
    state.wait_for_everyone()  # every process has read the file before the main process appends to it
    resumed = len(done)
    ids = dataset["id"]
    todo = [(p, i) for p in range(task.paraphrases) for i in range(len(dataset)) if (ids[i], p) not in done]
    undecoded = dataset.cast_column("image", Image(decode=False))  # decoded here, one image at a time
    skipped: dict[str, str] = {}  # image id -> why it was skipped
    started = time.perf_counter()
    progress = tqdm(total=len(todo), desc=task.description, unit="image", disable=not state.is_main_process)
    if todo:
        with state.split_between_processes(todo, apply_padding=True) as shard:  # padded: equal batch counts
            for start in range(0, len(shard), batch_size):
                rows = gather_object(_predict_batch(shard[start : start + batch_size], undecoded, task))
                if state.is_main_process:
                    skipped.update((row["id"], row["skipped"]) for row in rows if "skipped" in row)
                    _append(out / PREDICTIONS_FILE, [row for row in rows if "skipped" not in row], done)
                    progress.update(min(len(rows), progress.total - progress.n))  # padding repeats rows
    progress.close()
    state.wait_for_everyone()
    seconds = time.perf_counter() - started
    return {"computed": len(todo), "resumed": resumed, "partial_lines_dropped": partial, "seconds": seconds,
            "skipped_images": len(skipped), "skipped_image_ids": sorted(skipped)[:20]}


def _predict_batch(batch: list[tuple[int, int]], dataset, task: PredictionTask) -> list[dict]:
    """The task's rows for (paraphrase, example index) pairs, one paraphrase at a time. An image that does not
    decode gives `{"id", "paraphrase", "skipped": reason}` instead."""
    rows = []
    for paraphrase in sorted({p for p, _ in batch}):
        examples = dataset.select([i for p, i in batch if p == paraphrase])
        images, kept, skipped = decoded_images(examples["id"], examples["image"])
        rows += [{"id": example_id, "paraphrase": paraphrase, "skipped": reason} for example_id, reason in skipped.items()]
        if images:
            rows += task.rows(examples, images, kept, paraphrase)
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
