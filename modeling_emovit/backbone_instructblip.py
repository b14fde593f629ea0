"""The InstructBLIP family's adapter: EmoVIT, InstructBLIP and BLIP-2 read the bare instruction (as LAVIS
`blip2_vicuna_instruct` does), and the Q-Former reads it too; plain captioners that take a text prompt are asked the
same way.

Layout (LAVIS `blip2_vicuna_instruct.forward`): [query embeddings][instruction][answer + eos] for a decoder-only LM,
the answer as T5's decoder target otherwise; the processor builds it (`EmoVITProcessor.build_training_inputs`,
`encode_answers`). Only EmoVIT's processor scores answers (`encode_answers`); others caption. Chosen by
`backbone.backbone_adapter`; saved beside the weights with the emotion pipeline.
"""

from collections.abc import Sequence

import torch

from .backbone import BackboneAdapter
from .candidate_scoring import DEFAULT_STRATEGY, candidate_log_likelihoods


class InstructBlipAdapter(BackboneAdapter):
    """The bare instruction after the `<image>` placeholders; candidates end with the LM's eos."""

    family = "instructblip"

    @property
    def trl_native(self) -> bool:
        """EmoVIT's processor lays out LAVIS's training inputs itself; another bare-prompt processor (BLIP-2) trains
        the stock TRL way."""
        return not hasattr(self.processor, "build_training_inputs")

    def freeze_for_instruction_tuning(self) -> dict[str, int] | None:
        """EmoVIT's policy (`EmoVITForConditionalGeneration.freeze_for_instruction_tuning`): ViT and LLM frozen."""
        freeze = getattr(self.model, "freeze_for_instruction_tuning", None)
        return freeze() if freeze is not None else None

    def scores_answers(self) -> bool:
        return hasattr(self.processor, "encode_answers")

    def prompt_inputs(self, images: list, instructions: Sequence[str]):
        return self.processor(images=images, text=list(instructions), padding=True, return_tensors="pt").to(
            self.model.device, dtype=self.model.dtype)

    def encode_candidates(self, instruction: str, answers: Sequence[str]) -> list[list[int]]:
        """The answers' tokens plus eos; the instruction does not change them (it is a separate segment)."""
        return self.processor.encode_answers(list(answers))

    def answer_lengths(self, answers: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.processor.encode_answers(list(answers))]

    def answer_log_likelihoods(self, images: list, instruction: str, answers: Sequence[str],
                               strategy: str = DEFAULT_STRATEGY) -> torch.Tensor:
        inputs = self.processor(images=images, text=[instruction] * len(images), return_tensors="pt")
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)
        return candidate_log_likelihoods(self.model, dict(inputs), self.candidates(instruction, answers),
                                         strategy=strategy)

    def training_batch(self, images: list | None, prompts: Sequence[str], completions: Sequence[str],
                       max_prompt_length: int = 128, max_completion_length: int = 256,
                       release_truncation: bool = False, **unused) -> dict:
        """`EmoVITProcessor.build_training_inputs`: the Q-Former reads the instruction only, labels cover the answer
        and eos (`release_truncation`: long answers cut as the release's tokenizer call did); `images=None` (cached
        vision features) leaves out the pixels."""
        return self.processor.build_training_inputs(images, list(prompts), list(completions),
                                                    max_prompt_length=max_prompt_length,
                                                    max_completion_length=max_completion_length,
                                                    release_truncation=release_truncation)
