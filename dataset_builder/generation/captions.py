"""Batched image captioning with any transformers image-to-text model: the caption half of EmoVIT's GPT input.

EmoVIT captioned EmoSet with BLIP-2 OPT-2.7B; any `AutoModelForImageTextToText` checkpoint or local folder works
here (an EmoVIT folder too; a model's own code runs only with `trust_remote_code=True`). Output: `{"id", "caption",
"model"}` JSON lines, appended per batch; a re-run skips ids already written.
"""

from pathlib import Path
from typing import Iterable

from modeling_emovit.errors import EmoVITInputError

from ..jsonl import append_line, read_objects, read_resumable
from ..records import EmotionRecord
from ..report import CaptionReport
from .items import unique_records


def read_captions(path: str | Path) -> dict[str, str]:
    """`{"id", "caption"}` lines of `emovit data caption` -> {id: caption}; a bad line is one sentence."""
    captions = {}
    for row in read_objects(path, what="captions file"):
        if not isinstance(row.get("id"), (str, int)) or not isinstance(row.get("caption"), str):
            raise EmoVITInputError(f"{path}: a line lacks a text `id` or `caption` ({str(row)[:60]}).")
        captions[str(row["id"])] = row["caption"]
    return captions


def load_captioner(model: str, device: str | None = None, trust_remote_code: bool = False):
    """The captioner's backbone adapter (`modeling_emovit.backbone`), model in eval mode on `device` (CUDA when
    available)."""
    import torch

    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.loading import load_model_and_processor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    captioner, processor = load_model_and_processor(model, trust_remote_code=trust_remote_code)
    return backbone_adapter(captioner.to(device).eval(), processor)


def _batches(records: Iterable[EmotionRecord], size: int):
    batch = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def caption_records(records: Iterable[EmotionRecord], model: str, out: str | Path, batch_size: int = 8,
                    prompt: str = "", max_new_tokens: int = 30, max_records: int | None = None,
                    device: str | None = None, progress: bool = True,
                    report: CaptionReport | None = None, trust_remote_code: bool = False) -> CaptionReport:
    """Caption every record not yet in `out`; unreadable images are counted in `report.skipped` (`report` may
    already hold the source reader's skips), garbled lines of `out` in its notes (their images are captioned
    again)."""
    from tqdm.auto import tqdm

    from modeling_emovit.image_utils import InvalidImageError, open_image

    report = report if report is not None else CaptionReport()
    resumed = read_resumable(out)
    for _ in range(resumed.garbled_lines):
        report.note("garbled line in the output dropped (its image is captioned again)", str(out))
    written = {str(row.get("id")) for row in resumed.rows}
    todo = []
    for record in unique_records(records, max_records, report):
        if record.id in written:
            report.resumed += 1
        else:
            todo.append(record)
    if not todo:  # a resumed run with nothing left: do not load the model
        return report
    captioner = load_captioner(model, device, trust_remote_code)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as output, tqdm(total=len(todo), desc="caption", disable=not progress) as bar:
        for batch in _batches(todo, batch_size):
            images, kept = [], []
            for record in batch:
                try:
                    images.append(open_image(record.image_path))
                    kept.append(record)
                except InvalidImageError:
                    report.skip("unreadable image", record.id)
            if images:
                try:
                    captions = captioner.generate(images, [prompt] * len(images) if prompt else None, max_new_tokens)
                except (TypeError, ValueError) as error:
                    if prompt:
                        raise
                    raise EmoVITInputError(
                        f"--model {model}: cannot caption without an instruction ({type(error).__name__}); "
                        "pass --prompt, e.g. 'Describe the image briefly.'"
                    ) from None
                for record, caption in zip(kept, captions):
                    append_line(output, {"id": record.id, "caption": caption, "model": str(model)})
                report.done += len(kept)
            bar.update(len(batch))
    return report
