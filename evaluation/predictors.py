"""The two ways `emovit eval` turns (image, instruction) pairs into emotion predictions, through the model's backbone
adapter (`modeling_emovit.backbone`), whatever its family.

- `rank`: scores every candidate answer "Predict emotion: <label>" by its log-likelihood given the image and the
  instruction (the adapter's `answer_log_likelihoods`, the scorer the image-emotion-classification pipeline also
  uses: one forward over the shared prefix per image, one over all candidates), then turns the scores into per-label
  probabilities with the model's calibration (`modeling_emovit.calibration_emovit`). Never an unparseable answer.
- `generate`: EmoVIT's protocol: greedy decoding (the adapter's `generate`), the answer parsed with the dataset
  builder's normaliser.
- `generate` with the reasoning answer format (`--answer-format reasoning`, what `recipes/grpo.py` trains): the
  reasoning question, greedy decoding, the answer and the stated confidence read from their tags
  (`dataset_builder.reasoning_format`); each image is also ranked as in `rank` mode, so that the verbalised
  confidence's calibration sits beside the rank probabilities'.
"""

from dataclasses import dataclass

import torch

from dataset_builder.emotions import LabelSpace, normalize_emotion
from dataset_builder.instructions import categorical_answer, categorical_instruction
from dataset_builder.reasoning_format import parse_reasoned_answer, reasoning_instruction
from modeling_emovit.calibration_emovit import emotion_probabilities
from modeling_emovit.candidate_scoring import DEFAULT_STRATEGY
from modeling_emovit.decoding import GENERATION_PRESETS


@dataclass
class Prediction:
    label: str | None  # a label of the label space, or None when the answer names none
    answer: str  # the generated text (generate) or the best candidate answer (rank)
    scores: dict[str, float] | None = None  # per-label probability, calibrated when the model has a calibration (rank)
    log_likelihoods: dict[str, float] | None = None  # per-label raw answer log-likelihood (rank)
    confidence: float | None = None  # the stated confidence (reasoning format), None when unreadable
    well_formed: bool | None = None  # whether the answer is in the reasoning format (reasoning format)
    rank_scores: dict[str, float] | None = None  # the same image's rank-mode probabilities (reasoning format)


class RankPredictor:
    """Ranks the label space's candidate answers by log-likelihood; probabilities through `calibration` (default:
    the model config's `emotion_calibration`, None for the plain softmax)."""

    def __init__(self, adapter, space: LabelSpace, calibration: dict | None = None, strategy: str = DEFAULT_STRATEGY):
        self.adapter, self.space, self.strategy = adapter, space, strategy
        self.answers = [categorical_answer(label) for label in space.labels]
        config = adapter.model.config
        self.calibration = calibration if calibration is not None else getattr(config, "emotion_calibration", None)

    def instruction(self, paraphrase: int) -> str:
        return categorical_instruction(self.space.labels, paraphrase)

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
        """`(batch, num_labels)`: sum over answer tokens (and their end) of log p(token | image, instruction)."""
        return self.adapter.answer_log_likelihoods(images, prompt, self.answers, strategy=self.strategy)


class GeneratePredictor:
    """Greedy decoding of the answer, parsed into a label with `normalize_emotion` (EmoVIT's protocol).

    `preset`: a `modeling_emovit.decoding.GENERATION_PRESETS` name ("release": the release's LAVIS decoding).
    """

    def __init__(self, adapter, space: LabelSpace, max_new_tokens: int | None = None, preset: str = "default"):
        self.adapter, self.space = adapter, space
        answers = [categorical_answer(label) for label in space.labels]
        self.options = dict(GENERATION_PRESETS[preset])
        preset_budget = self.options.pop("max_new_tokens", None)
        self.max_new_tokens = max_new_tokens or preset_budget or max(adapter.answer_lengths(answers)) + 4

    def instruction(self, paraphrase: int) -> str:
        return categorical_instruction(self.space.labels, paraphrase)

    def answers(self, images: list, prompt: str) -> list[str]:
        """The generated text for each image, greedy, within the budget."""
        return self.adapter.generate(images, [prompt] * len(images), self.max_new_tokens, **self.options)

    def predict(self, images: list, prompt: str) -> list[Prediction]:
        return [Prediction(normalize_emotion(answer, self.space), answer) for answer in self.answers(images, prompt)]


class ReasoningPredictor(GeneratePredictor):
    """Greedy decoding after the reasoning question, the emotion and confidence read from their tags; beside it,
    the image ranked on EmoVIT's instruction (`rank_scores`). Budget: 256 new tokens unless given."""

    def __init__(self, adapter, space: LabelSpace, max_new_tokens: int | None = None, preset: str = "default"):
        super().__init__(adapter, space, max_new_tokens or 256, preset)
        self.ranker = RankPredictor(adapter, space)

    def instruction(self, paraphrase: int) -> str:
        return reasoning_instruction(self.space.labels)

    def predict(self, images: list, prompt: str) -> list[Prediction]:
        answers = self.answers(images, prompt)
        ranked = self.ranker.predict(images, self.ranker.instruction(0))
        predictions = []
        for answer, rank in zip(answers, ranked):
            read = parse_reasoned_answer(answer, self.space)
            predictions.append(Prediction(read.label, answer, confidence=read.confidence,
                                          well_formed=read.well_formed, rank_scores=rank.scores))
        return predictions


@dataclass
class ClassificationTask:
    """Emotion classification as the prediction loop asks it (`prediction_loop.PredictionTask`): paraphrase p of
    EmoVIT's categorical instruction listing the label space's candidates, answered by `predictor`."""

    predictor: "RankPredictor | GeneratePredictor | ReasoningPredictor"
    space: LabelSpace
    paraphrases: int = 1
    mode: str = "rank"

    @property
    def description(self) -> str:
        return f"eval ({self.mode})"

    def rows(self, examples, images: list, kept: list[int], paraphrase: int) -> list[dict]:
        predictions = self.predictor.predict(images, self.predictor.instruction(paraphrase))
        ids, emotions = examples["id"], examples["emotion"]
        return [
            {"id": ids[k], "paraphrase": paraphrase, "reference": emotions[k], "prediction": prediction.label,
             "answer": prediction.answer, "scores": prediction.scores, "log_likelihoods": prediction.log_likelihoods,
             **self._reasoning_columns(prediction)}
            for k, prediction in zip(kept, predictions)
        ]

    def _reasoning_columns(self, prediction: Prediction) -> dict:
        if not isinstance(self.predictor, ReasoningPredictor):
            return {}
        return {"confidence": prediction.confidence, "well_formed": prediction.well_formed,
                "rank_scores": prediction.rank_scores}
