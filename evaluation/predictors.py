"""The two ways `emovit eval` turns (image, instruction) pairs into emotion predictions.

- `rank`: scores every candidate answer "Predict emotion: <label>" by its log-likelihood given the image and the
  instruction (`modeling_emovit.scoring_emovit`, the scorer the image-emotion-classification pipeline also uses:
  one forward over the shared prefix per image, one over all candidates), then turns the scores into per-label
  probabilities with the model's calibration (`modeling_emovit.calibration_emovit`). Never an unparseable answer.
- `generate`: EmoVIT's protocol: greedy decoding, the answer parsed with the dataset builder's normaliser.
"""

from dataclasses import dataclass

import torch

from dataset_builder.emotions import LabelSpace, normalize_emotion
from dataset_builder.instructions import categorical_answer
from modeling_emovit.calibration_emovit import emotion_probabilities
from modeling_emovit.chat_vlm import answer_token_ids, chat_candidate_log_likelihoods, uses_chat_template
from modeling_emovit.generation import GENERATION_PRESETS, generate_text
from modeling_emovit.scoring_emovit import DEFAULT_STRATEGY, candidate_log_likelihoods


@dataclass
class Prediction:
    label: str | None  # a label of the label space, or None when the answer names none
    answer: str  # the generated text (generate) or the best candidate answer (rank)
    scores: dict[str, float] | None = None  # per-label probability, calibrated when the model has a calibration (rank)
    log_likelihoods: dict[str, float] | None = None  # per-label raw answer log-likelihood (rank)


class RankPredictor:
    """Ranks the label space's candidate answers by log-likelihood; probabilities through `calibration` (default:
    the model config's `emotion_calibration`, None for the plain softmax)."""

    def __init__(self, model, processor, space: LabelSpace, calibration: dict | None = None,
                 strategy: str = DEFAULT_STRATEGY):
        self.model, self.processor, self.space, self.strategy = model, processor, space, strategy
        self.answers = [categorical_answer(label) for label in space.labels]
        self.chat = uses_chat_template(processor)  # LLaVA, Idefics3, Qwen2-VL, ...: the assistant turn's tokens
        self.candidates = None if self.chat else processor.encode_answers(self.answers)
        self._chat_candidates: dict[str, list[list[int]]] = {}  # instruction -> its answers' template tokens
        self.calibration = calibration if calibration is not None else getattr(model.config, "emotion_calibration", None)

    def predict(self, images: list, prompt: str) -> list[Prediction]:
        log_likelihoods = self.answer_log_likelihoods(images, prompt)
        probabilities = emotion_probabilities(log_likelihoods, self.space.labels, self.calibration)
        best = probabilities.argmax(dim=-1).tolist()
        return [
            Prediction(self.space.labels[i], self.answers[i], dict(zip(self.space.labels, row)),
                       dict(zip(self.space.labels, raw)))
            for i, row, raw in zip(best, probabilities.tolist(), log_likelihoods.tolist())
        ]

    def answer_log_likelihoods(self, images: list, prompt: str) -> torch.Tensor:
        """`(batch, num_labels)`: sum over answer tokens (and eos) of log p(token | image, instruction, prefix)."""
        if self.chat:  # the answers' tokens depend on the instruction's rendering: tokenized once per instruction
            if prompt not in self._chat_candidates:
                self._chat_candidates[prompt] = answer_token_ids(self.processor, prompt, self.answers)
            return chat_candidate_log_likelihoods(self.model, self.processor, images, prompt, self.answers,
                                                  strategy=self.strategy, candidates=self._chat_candidates[prompt])
        inputs = self.processor(images=images, text=[prompt] * len(images), return_tensors="pt").to(self.model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return candidate_log_likelihoods(self.model, dict(inputs), self.candidates, strategy=self.strategy)


class GeneratePredictor:
    """Greedy decoding of the answer, parsed into a label with `normalize_emotion` (EmoVIT's protocol).

    `preset`: a `modeling_emovit.generation.GENERATION_PRESETS` name ("release": the release's LAVIS decoding).
    """

    def __init__(self, model, processor, space: LabelSpace, max_new_tokens: int | None = None, preset: str = "default"):
        self.model, self.processor, self.space = model, processor, space
        answers = [categorical_answer(label) for label in space.labels]
        if uses_chat_template(processor):  # the answer's tokens, plus one for the end of the turn
            lengths = [len(ids) + 1 for ids in processor.tokenizer(answers, add_special_tokens=False)["input_ids"]]
        else:
            lengths = list(map(len, processor.encode_answers(answers)))
        self.options = dict(GENERATION_PRESETS[preset])
        preset_budget = self.options.pop("max_new_tokens", None)
        self.max_new_tokens = max_new_tokens or preset_budget or max(lengths) + 4

    def predict(self, images: list, prompt: str) -> list[Prediction]:
        answers = generate_text(self.model, self.processor, images, [prompt] * len(images), self.max_new_tokens,
                                **self.options)
        return [Prediction(normalize_emotion(answer, self.space), answer) for answer in answers]
