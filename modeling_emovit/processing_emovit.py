"""EmoVIT processor: raw images and instructions (plus answers, for training) to model inputs.

Differs from transformers' `InstructBlipProcessor` in four ways:
- it keeps its chat template through save/load (the stock class drops it), so `apply_chat_template`, the
  `image-text-to-text` pipeline and `transformers serve` work;
- every image is converted to 8-bit RGB first, and unreadable images are refused by name (`image_utils`);
- text without an image is refused with `EmoVITInputError` (the model cannot answer without one; `emovit serve`
  turns it into HTTP 400);
- `build_training_inputs` lays out [image tokens][instruction][answer + eos] with labels on the answer only,
  while the Q-Former sees the instruction alone (LAVIS `blip2_vicuna_instruct.forward`); an over-long instruction
  loses its beginning, an over-long answer its end, as in LAVIS.
"""

import json
from pathlib import Path

import torch
from transformers import BatchFeature, InstructBlipProcessor

from .errors import EmoVITInputError
from .image_utils import open_image_input

IGNORE_INDEX = -100  # positions the loss skips (transformers / PyTorch cross-entropy convention)
QFORMER_TOKENIZER_DIR = "qformer_tokenizer"  # where InstructBlipProcessor saves the Q-Former's (BERT) tokenizer
# Single-turn InstructBLIP prompting: the instruction is the user's text, images are added by the processor.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}"
    "{%- endif -%}{%- if not loop.last %} {% endif -%}"
    "{%- endfor -%}"
)


def _as_rgb(images):
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        return [_as_rgb(image) for image in images]
    if isinstance(images, (str, bytes)) or hasattr(images, "__fspath__") or hasattr(images, "mode"):
        return open_image_input(images)  # chat requests (`transformers serve`) send URLs
    return images


def _check_qformer_tokenizer(folder) -> None:
    """Refuses, naming the file, a local processor folder whose `qformer_tokenizer/` is absent or holds an empty or
    unreadable JSON file (a Hub id is left to transformers' download)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    subfolder = folder / QFORMER_TOKENIZER_DIR
    if not subfolder.is_dir():
        raise EmoVITInputError(
            f"{folder}: no {QFORMER_TOKENIZER_DIR}/ folder, so the Q-Former would read the language model's tokenizer; "
            f"save the processor there again with processor.save_pretrained({str(folder)!r})."
        )
    for path in sorted(subfolder.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            size = path.stat().st_size
            raise EmoVITInputError(
                f"{path}: {'empty' if size == 0 else f'not valid JSON ({size} bytes)'}, so the Q-Former's tokenizer "
                f"cannot load; copy that folder again from where the model came from."
            ) from None


def _keep_the_end(tokenizer, texts: list[str], max_length: int, **kwargs):
    """Tokenizes, cutting over-long texts from the left: LAVIS truncates instructions on that side (its BERT and LLM
    tokenizers use `truncation_side="left"` for the instruction), so the end of an instruction always survives."""
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"
    try:
        return tokenizer(texts, truncation=True, max_length=max_length, **kwargs)
    finally:
        tokenizer.truncation_side = side


class EmoVITProcessor(InstructBlipProcessor):
    """Image processor + LM tokenizer + Q-Former (BERT) tokenizer, with EmoVIT's training layout."""

    def __init__(
        self,
        image_processor,
        tokenizer,
        qformer_tokenizer,
        num_query_tokens=32,
        chat_template=None,
        decoder_only: bool | None = None,
        **kwargs,
    ):
        """`decoder_only`: the LM's layout (Vicuna/OPT/Llama: True, Flan-T5: False); by default, whether the
        LM tokenizer has a BOS token, which holds for the InstructBLIP checkpoints."""
        if num_query_tokens is None:
            raise ValueError("EmoVITProcessor needs num_query_tokens (the model's config.num_query_tokens).")
        super().__init__(image_processor, tokenizer, qformer_tokenizer, num_query_tokens=num_query_tokens, **kwargs)
        self.chat_template = chat_template or DEFAULT_CHAT_TEMPLATE
        self.decoder_only = tokenizer.bos_token is not None if decoder_only is None else decoder_only

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' loading, after refusing a local folder whose Q-Former tokenizer is missing, empty or garbled:
        transformers would then read the language model's tokenizer for the Q-Former, silently (5.24: "Falling back
        to loading from the root directory"), and the first forward would fail on ids its embeddings lack."""
        _check_qformer_tokenizer(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.image_token.content)

    def __call__(self, images=None, text=None, **kwargs) -> BatchFeature:
        """Inference inputs: InstructBLIP's layout, after converting every image to RGB; text needs an image."""
        # `not images` would fail on an array, which has no truth value
        if text is not None and (images is None or (isinstance(images, (list, tuple)) and not images)):
            raise EmoVITInputError(
                "EmoVIT answers questions about an image: send one image with the instruction (a message part of "
                "type image or image_url)."
            )
        return super().__call__(images=_as_rgb(images), text=text, **kwargs)

    def build_training_inputs(
        self,
        images,
        prompts: list[str],
        completions: list[str],
        max_prompt_length: int = 128,
        max_completion_length: int = 256,
        qformer_prompts: list[str] | None = None,
        release_truncation: bool = False,
    ) -> BatchFeature:
        """Training (and scoring) inputs for a batch of (image, instruction, answer), right-padded.

        The Q-Former reads `qformer_prompts` when given (default: the same instructions as the LM);
        `release_truncation` cuts over-long answers as the release did (`encode_answers`).

        Returns tensors: pixel_values `(batch, 3, H, W)`; qformer_input_ids / qformer_attention_mask
        `(batch, q_len)`; input_ids / attention_mask `(batch, seq_len)`; labels `(batch, seq_len)` for a
        decoder-only LM (-100 on image tokens, instruction and padding) or `(batch, answer_len)` for T5.
        `images=None` leaves out pixel_values (the caller passes cached `image_embeds` instead).
        """
        if not (len(prompts) == len(completions) == (len(prompts) if images is None else len(images))):
            raise ValueError(
                f"build_training_inputs got {len(images or ())} images, {len(prompts)} prompts and {len(completions)} "
                f"completions; they must be equally many."
            )
        qformer = _keep_the_end(
            self.qformer_tokenizer, list(qformer_prompts or prompts), max_prompt_length, padding=True, return_tensors="pt"
        )
        prompt_ids = _keep_the_end(self.tokenizer, list(prompts), max_prompt_length)["input_ids"]
        answer_ids = self.encode_answers(completions, max_completion_length, release_truncation)
        image_ids = [self.image_token_id] * self.num_query_tokens
        if self.decoder_only:
            sequences = [image_ids + p + a for p, a in zip(prompt_ids, answer_ids)]
            labels = [[IGNORE_INDEX] * (len(image_ids) + len(p)) + a for p, a in zip(prompt_ids, answer_ids)]
        else:
            sequences = [image_ids + p for p in prompt_ids]
            labels = answer_ids
        batch = {
            "qformer_input_ids": qformer["input_ids"],
            "qformer_attention_mask": qformer["attention_mask"],
            **self._right_pad(sequences, labels),
        }
        if images is not None:
            batch.update(self.image_processor(_as_rgb(list(images)), return_tensors="pt"))
        return BatchFeature(batch)

    def encode_answers(
        self, completions: list[str], max_length: int = 256, release_truncation: bool = False
    ) -> list[list[int]]:
        """Answer token ids, each ending with the LM's eos token (LAVIS appends `llm_tokenizer.eos_token`); an answer
        of `max_length` tokens or more keeps its first `max_length - 1` and the eos.

        `release_truncation`: cut as the release's `blip2_vicuna_instruct.forward` does for a decoder-only LM. It
        tokenizes `answer + "</s>"` with the BOS, truncated at `max_length` from the right, then drops the BOS: an
        answer of `max_length - 1` tokens or more keeps `max_length - 1` and no eos. (LAVIS's T5 tokenizer appends
        its eos after truncating, which the default already does.)
        """
        encoded = self.tokenizer(list(completions), add_special_tokens=False)["input_ids"]
        eos = [self.tokenizer.eos_token_id]
        if release_truncation and self.decoder_only:
            return [(ids + eos)[: max_length - 1] for ids in encoded]
        return [ids[: max_length - 1] + eos for ids in encoded]

    def _right_pad(self, sequences: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
        pad_id = self.tokenizer.pad_token_id
        width = max(map(len, sequences))
        label_width = max(map(len, labels))
        return {
            "input_ids": torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences]),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences]),
            "labels": torch.tensor([l + [IGNORE_INDEX] * (label_width - len(l)) for l in labels]),
        }


# save_pretrained copies this file (and its relative imports) beside the processor files.
EmoVITProcessor.register_for_auto_class("AutoProcessor")
