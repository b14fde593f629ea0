"""Batched image captioning with any transformers image-to-text model: the caption half of EmoVIT's GPT input.

EmoVIT captioned EmoSet with BLIP-2 OPT-2.7B; any `AutoModelForImageTextToText` checkpoint or local folder works
here (an EmoVIT folder too, with `trust_remote_code=True`). Output: `{"id", "caption", "model"}` JSON lines,
appended per batch; a re-run skips ids already written.
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dataset_builder.records import EmotionRecord

from .pipeline import complete_rows, unique_records


@dataclass
class CaptionReport:
    done: int = 0
    resumed: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        lines = [f"captioned {self.done}, already written {self.resumed}"]
        return "\n".join(lines + [f"  skipped: {count} x {reason}" for reason, count in self.skipped.most_common()])


def load_captioner(model: str, device: str | None = None):
    """(model, processor) in eval mode on `device` (CUDA when available)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    captioner = AutoModelForImageTextToText.from_pretrained(model, trust_remote_code=True).to(device).eval()
    return captioner, AutoProcessor.from_pretrained(model, trust_remote_code=True)


def caption_batch(model, processor, images: list, prompt: str = "", max_new_tokens: int = 30) -> list[str]:
    """Greedy captions for PIL images; `prompt` conditions the caption (instruction models need one)."""
    import torch

    text = {"text": [prompt] * len(images), "padding": True} if prompt else {}
    inputs = processor(images=images, return_tensors="pt", **text).to(model.device)
    with torch.inference_mode():
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    prompt_ids = inputs.get("input_ids")
    if prompt_ids is not None and generated.shape[1] > prompt_ids.shape[1] and torch.equal(
        generated[:, : prompt_ids.shape[1]], prompt_ids
    ):  # decoder-only models return the prompt before the new tokens
        generated = generated[:, prompt_ids.shape[1]:]
    return [caption.strip() for caption in processor.batch_decode(generated, skip_special_tokens=True)]


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
                    device: str | None = None, progress: bool = True) -> CaptionReport:
    """Caption every record not yet in `out`; unreadable images are counted in `report.skipped`."""
    from modeling_emovit.errors import EmoVITInputError
    from modeling_emovit.image_utils import InvalidImageError, open_image
    from tqdm.auto import tqdm

    report = CaptionReport()
    written = {str(row["id"]) for row in complete_rows(out)}
    todo = []
    for record in unique_records(records, max_records, report.skipped):
        if record.id in written:
            report.resumed += 1
        else:
            todo.append(record)
    if not todo:  # a resumed run with nothing left: do not load the model
        return report
    captioner, processor = load_captioner(model, device)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as output, tqdm(total=len(todo), desc="caption", disable=not progress) as bar:
        for batch in _batches(todo, batch_size):
            images, kept = [], []
            for record in batch:
                try:
                    images.append(open_image(record.image_path))
                    kept.append(record)
                except InvalidImageError:
                    report.skipped["unreadable image"] += 1
            if images:
                try:
                    captions = caption_batch(captioner, processor, images, prompt, max_new_tokens)
                except (TypeError, ValueError) as error:
                    if prompt:
                        raise
                    raise EmoVITInputError(
                        f"--model {model}: cannot caption without an instruction ({type(error).__name__}); "
                        "pass --prompt, e.g. 'Describe the image briefly.'"
                    ) from None
                output.write("".join(
                    json.dumps({"id": record.id, "caption": caption, "model": str(model)}, ensure_ascii=False) + "\n"
                    for record, caption in zip(kept, captions)
                ))
                output.flush()
                report.done += len(kept)
            bar.update(len(batch))
    return report
