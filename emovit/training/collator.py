"""EmoVIT collator: dataset rows (`image`, `prompt`, `completion`) -> model inputs, passed to `SFTTrainer`.

Flow: `load_dataset` -> this collator -> `EmoVITSFTTrainer`. A thin wrapper over the model's backbone adapter
(`modeling_emovit.backbone`, `training_batch`), which for EmoVIT lays the batch out as LAVIS
`blip2_vicuna_instruct.forward` does: the Q-Former sees the instruction only, labels cover the answer (+ eos) only.
(Families whose adapter is `trl_native`, the chat templates, train through TRL's own collator instead.) The
collator adds what a long run needs: images decoded here (the dataset keeps bytes, `Image(decode=False)`), so an undecodable image is skipped and
counted instead of crashing the run, and cached vision features (`image_embeds`) used in place of pixels. The count
travels in the batch (`skipped_images`), since with `dataloader_num_workers > 0` the collator runs in worker
processes, each with its own copy; `EmoVITSFTTrainer` takes it out before the forward and logs the total.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.image_utils import InvalidImageError, open_image

from .text_processors import process_text

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image", "prompt", "completion")
IMAGE_EMBEDS = "image_embeds"  # column added by the vision-feature cache (`emovit.training.feature_cache`)
SKIPPED_IMAGES = "skipped_images"  # batch entry: rows of this batch dropped for an unreadable image


def check_columns(column_names, where: str) -> None:
    """Raises `EmoVITInputError` unless the dataset has the `image`, `prompt` and `completion` columns."""
    missing = [name for name in REQUIRED_COLUMNS if name not in column_names]
    if missing:
        raise EmoVITInputError(
            f"{where} lacks the column(s) {', '.join(missing)} (it has {', '.join(column_names)}); EmoVIT trains on "
            f"image/prompt/completion rows as written by `emovit data build`."
        )


def image_source(image) -> object:
    """What `open_image` accepts, from a decoded PIL image, a path, or an undecoded `{"bytes", "path"}` cell."""
    if isinstance(image, dict):
        return image.get("bytes") or image.get("path")
    return image


@dataclass
class EmoVITCollator:
    """Batches rows for EmoVIT training; the batch's `skipped_images` counts its rows dropped for an unreadable image.

    A row whose image does not decode is dropped; a batch left empty reuses the last readable row, so the step
    (and every rank's step count under DDP) still happens. `augment` (e.g. `augmentation.LavisTrainTransform`) draws
    a new random view of each image per batch; `text_processor` ("none", "lavis", "release") rewrites the text as
    the release's training did (`emovit.training.text_processors`), and "release" also cuts over-long answers as the
    release did (`EmoVITProcessor.encode_answers`).
    """

    adapter: object  # the model's `BackboneAdapter`
    max_prompt_length: int = 128
    max_completion_length: int = 256
    image_embeds_dtype: torch.dtype | None = None  # the model's dtype, for cached features stored in float32/16
    augment: Callable | None = None
    text_processor: str = "none"
    _last_readable: dict | None = field(default=None, init=False, repr=False)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        readable = [example for example in map(self._decode, examples) if example is not None]
        skipped = len(examples) - len(readable)
        if not readable:
            if self._last_readable is None:
                raise EmoVITInputError(
                    "Every image of the first training batch failed to decode; check the dataset's `image` column."
                )
            readable = [self._last_readable]
        self._last_readable = readable[-1]
        cached = IMAGE_EMBEDS in readable[0]
        images = None if cached else [example["image"] for example in readable]
        if images is not None and self.augment is not None:
            images = [self.augment(image) for image in images]
        texts = [process_text(self.text_processor, example["prompt"], example["completion"]) for example in readable]
        batch = self.adapter.training_batch(
            images,
            [prompt for prompt, _ in texts],
            [completion for _, completion in texts],
            max_prompt_length=self.max_prompt_length,
            max_completion_length=self.max_completion_length,
            release_truncation=self.text_processor == "release",
        )
        if cached:
            embeds = torch.stack([torch.as_tensor(example[IMAGE_EMBEDS]) for example in readable])
            batch[IMAGE_EMBEDS] = embeds.to(self.image_embeds_dtype or embeds.dtype)
        batch[SKIPPED_IMAGES] = skipped  # a plain int: no device copy, no sync to read it
        return batch

    def _decode(self, example: dict) -> dict | None:
        if IMAGE_EMBEDS in example:  # features are cached: the image itself is not needed
            return example
        try:
            return {**example, "image": open_image(image_source(example["image"]))}
        except InvalidImageError as error:
            logger.warning("Skipped row %s: %s", example.get("id", "?"), error)
            return None
