"""Backbone adapters: how one model family is asked EmoVIT's questions, chosen once per (model, processor).

Everything that turns images and instructions into model inputs asks an adapter and nothing else: rank and generate
evaluation, the emotion pipeline (and through it `emovit serve`), the judged tasks, captioning and the training
collator. The family is decided here, in `backbone_adapter`, and nowhere else (`tests/test_backbones.py` checks that
no other module reaches the families' own files). Two families:
- `InstructBlipAdapter` (`backbone_instructblip.py`): EmoVIT, InstructBLIP and BLIP-2 read the bare instruction,
  which the Q-Former reads too;
- `ChatTemplateAdapter` (`backbone_chat_template.py`): LLaVA, Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL and any other
  image-text-to-text model whose processor has a chat template: the user turn holds the image and the instruction,
  the assistant turn the answer.
A new family is one `BackboneAdapter` subclass, its line in `backbone_adapter`, and its tiny model in `testing_vlms`.

Saved beside the weights with the emotion pipeline: imports only torch, transformers and the modules next to it.
"""

from collections.abc import Sequence

import torch

from .candidate_scoring import DEFAULT_STRATEGY
from .decoding import generate_from_inputs
from .errors import EmoVITInputError


class BackboneAdapter:
    """One family's way of putting (image, instruction) pairs and candidate answers to a model.

    Subclasses implement `prompt_inputs`, `encode_candidates`, `answer_lengths`, `answer_log_likelihoods` and (unless
    `trl_native`) `training_batch`; the rest is shared. `family` names the family in results and errors.
    """

    family = "backbone"
    # Training through TRL's SFTTrainer: True when TRL's own vision collator and loss fit the family as they are
    # (chat templates); False when the family builds its own inputs (`training_batch`) and its forward returns the
    # loss (EmoVIT, whose Q-Former must not read the answer).
    trl_native = False

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self._candidates: dict[tuple, list[list[int]]] = {}  # (instruction, answers) -> their token ids

    def prompt_inputs(self, images: list, instructions: Sequence[str]):
        """Generation inputs (a `BatchFeature` on the model's device, floats in its dtype), left-padded: one
        instruction per image."""
        raise NotImplementedError

    def encode_candidates(self, instruction: str, answers: Sequence[str]) -> list[list[int]]:
        """Each answer's token ids as the model reads them after `instruction`, end of answer (eos or end of turn)
        included: what rank mode scores and what generation must produce."""
        raise NotImplementedError

    def answer_lengths(self, answers: Sequence[str]) -> list[int]:
        """Tokens each answer takes when generated, its end (eos or end of turn) included: a generation budget."""
        raise NotImplementedError

    def answer_log_likelihoods(self, images: list, instruction: str, answers: Sequence[str],
                               strategy: str = DEFAULT_STRATEGY) -> torch.Tensor:
        """`(batch, num_answers)`: sum over each answer's tokens of log p(token | image, instruction, earlier answer
        tokens), through the one scorer (`candidate_scoring.candidate_log_likelihoods`)."""
        raise NotImplementedError

    def training_batch(self, images: list | None, prompts: Sequence[str], completions: Sequence[str],
                       **options) -> dict:
        """Model inputs with `labels` on the answer tokens only, one (decoded image, instruction, answer) per row
        (`options`: the family's truncation settings; `images=None`: cached vision features stand in for them)."""
        raise NotImplementedError

    def freeze_for_instruction_tuning(self) -> dict[str, int] | None:
        """The family's own freezing policy before instruction tuning, with its parameter counts; None when the
        recipe alone decides what trains (chat models: every weight, or LoRA)."""
        return None

    def scores_answers(self) -> bool:
        """Whether this model can be asked EmoVIT's instruction and have candidate answers scored."""
        return True

    def require_emotion_questions(self, name: str) -> None:
        """Refuses, in one sentence naming `name` (the model's folder or id), a model that cannot be asked EmoVIT's
        instruction (evaluation, the emotion pipeline, serving); captioning needs no such check."""
        if not self.scores_answers():
            raise EmoVITInputError(
                f"{name}: its processor ({type(self.processor).__name__}) has no chat template and is not EmoVIT's, "
                f"so there is no way to put EmoVIT's instruction to the model; save the processor with a chat "
                f"template (processor.chat_template = ...)."
            )

    def candidates(self, instruction: str, answers: Sequence[str]) -> list[list[int]]:
        """`encode_candidates`, tokenized once per (instruction, answers) and kept."""
        key = (instruction, tuple(answers))
        if key not in self._candidates:
            self._candidates[key] = self.encode_candidates(instruction, answers)
        return self._candidates[key]

    def image_inputs(self, images: list):
        """Inputs for images alone (captioning without a prompt)."""
        return self.processor(images=images, return_tensors="pt").to(self.model.device, dtype=self.model.dtype)

    def generate(self, images: list, instructions: Sequence[str] | None = None, max_new_tokens: int = 30,
                 generated_repetition_penalty: float | None = None, **generate_kwargs) -> list[str]:
        """Greedy text for each image, after its instruction when given (captions otherwise), special tokens and
        prompt removed (`decoding.generate_from_inputs`)."""
        inputs = self.prompt_inputs(images, instructions) if instructions else self.image_inputs(images)
        return generate_from_inputs(self.model, self.processor, inputs, max_new_tokens, generated_repetition_penalty,
                                    **generate_kwargs)


def uses_chat_template(processor) -> bool:
    """Whether instructions reach the model through the processor's chat template: any processor with one, except
    InstructBLIP-style processors (EmoVIT, InstructBLIP, BLIP-2), which take the bare instruction EmoVIT trains on."""
    from transformers import Blip2Processor, InstructBlipProcessor

    if isinstance(processor, (InstructBlipProcessor, Blip2Processor)):
        return False
    return getattr(processor, "chat_template", None) is not None


def backbone_adapter(model, processor) -> BackboneAdapter:
    """The adapter for this model and processor: the chat-template family when the processor renders a chat
    template, else the InstructBLIP family (the bare prompt, as EmoVIT, InstructBLIP, BLIP-2 and plain captioners
    read it)."""
    from .backbone_chat_template import ChatTemplateAdapter
    from .backbone_instructblip import InstructBlipAdapter

    return (ChatTemplateAdapter if uses_chat_template(processor) else InstructBlipAdapter)(model, processor)
