"""The chat-template family's adapter: EmoVIT's instruction and answers through the processor's chat template, for
LLaVA, Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL and any other image-text-to-text model whose processor has one.

The conversation is the one training used (TRL's collator, `recipes/sft.py`): a user turn holding the image and the
instruction, then the assistant turn `Predict emotion: <label>`, rendered by the processor's template and tokenized
without special tokens (templates write their own BOS). A candidate answer's tokens are those of the whole
conversation after the prompt rendered with the generation prompt, end-of-turn included, so that prompt must be a
token prefix of the conversation (it is for these families; a generation prompt ending in a space is not, and is
refused by name).

Rank scoring goes through the one scorer (`candidate_scoring.candidate_log_likelihoods`); this module supplies its
inputs: images whose prompts tokenize alike (Qwen2-VL and Idefics3 give an image as many tokens as its size needs)
form one prefix batch, and Qwen2-VL's multimodal rotary positions continue after the image (`_MRopeModel`).
Training goes through TRL's own vision collator and loss, which render the same conversation (`trl_native`).
Chosen by `backbone.backbone_adapter`, and imported by no other module; saved beside the weights with the pipeline:
imports only torch, transformers and modules next to it.
"""

from collections.abc import Sequence

import torch

from .backbone import BackboneAdapter
from .candidate_scoring import DEFAULT_STRATEGY, candidate_log_likelihoods
from .errors import EmoVITInputError


class ChatTemplateAdapter(BackboneAdapter):
    """The user turn holds the image and the instruction; a candidate is the assistant turn's tokens, end of turn
    included."""

    family = "chat-template"
    trl_native = True

    def prompt_inputs(self, images: list, instructions: Sequence[str]):
        return chat_inputs(self.processor, images, list(instructions)).to(self.model.device, dtype=self.model.dtype)

    def encode_candidates(self, instruction: str, answers: Sequence[str]) -> list[list[int]]:
        return answer_token_ids(self.processor, instruction, list(answers))

    def answer_lengths(self, answers: Sequence[str]) -> list[int]:
        """The answer's own tokens plus one for the end of the turn (what the template's generation must emit)."""
        encoded = self.processor.tokenizer(list(answers), add_special_tokens=False)["input_ids"]
        return [len(ids) + 1 for ids in encoded]

    def answer_log_likelihoods(self, images: list, instruction: str, answers: Sequence[str],
                               strategy: str = DEFAULT_STRATEGY) -> torch.Tensor:
        return chat_candidate_log_likelihoods(self.model, self.processor, images, instruction, list(answers),
                                              strategy=strategy, candidates=self.candidates(instruction, answers))


def user_turn(instruction: str) -> dict:
    """The user message: one image placeholder (the processor inserts the image's tokens), then the instruction."""
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}


def assistant_turn(answer: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def render_chat(processor, instruction: str, answer: str | None = None) -> str:
    """The conversation as text: the user turn, then the answer, or the generation prompt when `answer` is None."""
    messages = [user_turn(instruction)] + ([assistant_turn(answer)] if answer is not None else [])
    return processor.apply_chat_template(messages, add_generation_prompt=answer is None, tokenize=False)


def chat_inputs(processor, images: list, instructions: list[str], **kwargs):
    """Model inputs for the prompts (generation prompt included), one image each; left-padded for generation."""
    texts = [render_chat(processor, instruction) for instruction in instructions]
    return processor(images=[[image] for image in images], text=texts, add_special_tokens=False, padding=True,
                     padding_side="left", return_tensors="pt", **kwargs)


def answer_token_ids(processor, instruction: str, answers: list[str]) -> list[list[int]]:
    """Each answer's tokens in the conversation: everything after the generation prompt (answer + end of turn)."""
    tokenizer = processor.tokenizer
    prompt = tokenizer(render_chat(processor, instruction), add_special_tokens=False)["input_ids"]
    candidates = []
    for answer in answers:
        full = tokenizer(render_chat(processor, instruction, answer), add_special_tokens=False)["input_ids"]
        if full[: len(prompt)] != prompt:
            raise EmoVITInputError(
                f"The chat template's generation prompt does not tokenize as a prefix of the conversation (it ends "
                f"{tokenizer.decode(prompt[-3:])!r}, the conversation continues "
                f"{tokenizer.decode(full[len(prompt) - 3: len(prompt) + 2])!r}); answers cannot be scored "
                f"after it. Fix the template (a generation prompt should not end in a space)."
            )
        candidates.append(full[len(prompt):])
    return candidates


def prefix_groups(processor, images: list, instruction: str) -> list[tuple[list[int], dict]]:
    """`[(rows, prefix inputs)]`: the images grouped by their prompt's token sequence, each group one unpadded batch.

    One processor call over all images; images whose prompts differ in length (Qwen2-VL, Idefics3 with image
    splitting, at different image sizes) are processed again per group.
    """
    batch = chat_inputs(processor, images, [instruction] * len(images))
    groups: dict[tuple, list[int]] = {}
    for row, (ids, mask) in enumerate(zip(batch["input_ids"], batch["attention_mask"])):
        groups.setdefault(tuple(ids[mask.bool()].tolist()), []).append(row)
    if len(groups) == 1:
        return [(list(range(len(images))), dict(batch))]
    return [(rows, dict(chat_inputs(processor, [images[row] for row in rows], [instruction] * len(rows))))
            for rows in groups.values()]


def chat_candidate_log_likelihoods(model, processor, images: list, instruction: str, answers: list[str],
                                   strategy: str = DEFAULT_STRATEGY, candidates: list[list[int]] | None = None) -> torch.Tensor:
    """`(batch, num_answers)` log-likelihoods of each answer's tokens after the image and the instruction.

    `candidates`: `answer_token_ids(processor, instruction, answers)` when the caller has them already.
    """
    candidates = candidates if candidates is not None else answer_token_ids(processor, instruction, answers)
    scorer_model = _MRopeModel(model) if _has_mrope(model) else model
    scores = torch.empty(len(images), len(answers), device=model.device)
    for rows, prefix in prefix_groups(processor, images, instruction):
        prefix = {key: value.to(model.device) for key, value in prefix.items()}
        if torch.is_floating_point(prefix["pixel_values"]):
            prefix["pixel_values"] = prefix["pixel_values"].to(model.dtype)
        scores[rows] = candidate_log_likelihoods(scorer_model, prefix, candidates, language_model=scorer_model,
                                                 strategy=strategy).to(scores.device)
    return scores


def _has_mrope(model) -> bool:
    """Multimodal rotary positions (Qwen2-VL, Qwen2.5-VL): positions come from `get_rope_index`, not token counts."""
    return hasattr(getattr(model, "model", None), "get_rope_index")


class _MRopeModel:
    """Qwen2-VL as the scorer calls it (the model itself continues from the cache, its forward runs without images).

    Two things the scorer cannot know: the answer tokens it appends to the prefix are text (`mm_token_type_ids` 0),
    and text after an image sits at (sequence index + the prefix's rope delta) on all three rotary axes (time,
    height, width), the delta being the image's positional span minus its token count. The prefix forward stores
    each row's delta in `model.model.rope_deltas` (as generation uses it); the scorer's position ids are sequence
    indices, shifted here.
    """

    def __init__(self, model):
        self.model, self.config, self.dtype = model, model.config, model.dtype

    def __call__(self, input_ids, position_ids=None, **kwargs):
        types = kwargs.get("mm_token_type_ids")
        if types is not None and types.shape[1] < input_ids.shape[1]:
            kwargs["mm_token_type_ids"] = torch.cat(
                [types, types.new_zeros(types.shape[0], input_ids.shape[1] - types.shape[1])], dim=1)
        if position_ids is not None:
            deltas = self.model.model.rope_deltas  # (prefix rows, 1); continuation rows are image-major
            position_ids = position_ids + deltas.to(position_ids.device).repeat_interleave(
                position_ids.shape[0] // deltas.shape[0], dim=0)
        return self.model(input_ids=input_ids, position_ids=position_ids, **kwargs)
