"""The two ways `emovit eval` turns (image, instruction) pairs into emotion predictions.

- `rank`: scores every candidate answer "Predict emotion: <label>" by its log-likelihood given the image and the
  instruction. The image and the Q-Former are encoded once per image; with a decoder-only LM the shared prefix
  ([image][instruction]) too, and the candidates' answer tokens are one batched forward over its KV cache.
  Yields a probability per label (softmax over the candidates' summed answer-token log-probs) and never an
  unparseable answer.
- `generate`: EmoVIT's protocol: greedy decoding, the answer parsed with the dataset builder's normaliser.
"""

from dataclasses import dataclass

import torch
from transformers.models.instructblip.modeling_instructblip import BaseModelOutputWithVisionQformerOutputs

from dataset_builder.emotions import LabelSpace, normalize_emotion
from dataset_builder.instructions import categorical_answer
from modeling_emovit.generation import GENERATION_PRESETS, generate_text
from modeling_emovit.processing_emovit import IGNORE_INDEX


@dataclass
class Prediction:
    label: str | None  # a label of the label space, or None when the answer names none
    answer: str  # the generated text (generate) or the best candidate answer (rank)
    scores: dict[str, float] | None = None  # per-label probability (rank only)


class RankPredictor:
    """Ranks the label space's candidate answers by log-likelihood (one image encoding, one LM forward per batch)."""

    def __init__(self, model, processor, space: LabelSpace):
        self.model, self.processor, self.space = model, processor, space
        self.answers = [categorical_answer(label) for label in space.labels]
        self._candidate_inputs = {}  # instruction -> its C candidate sequences (the same for every image)

    @torch.no_grad()
    def predict(self, images: list, prompt: str) -> list[Prediction]:
        probabilities = self.answer_log_likelihoods(images, prompt).softmax(dim=-1)
        best = probabilities.argmax(dim=-1).tolist()
        return [
            Prediction(self.space.labels[i], self.answers[i], dict(zip(self.space.labels, row)))
            for i, row in zip(best, probabilities.tolist())
        ]

    def answer_log_likelihoods(self, images: list, prompt: str) -> torch.Tensor:
        """`(batch, num_labels)`: sum over answer tokens (and eos) of log p(token | image, instruction, prefix)."""
        text = self._candidates(prompt)
        pixel_values = self.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        features = self.model.get_image_features(
            pixel_values=pixel_values.to(self.model.device, self.model.dtype),
            qformer_input_ids=text["qformer_input_ids"][:1].expand(len(images), -1),
            qformer_attention_mask=text["qformer_attention_mask"][:1].expand(len(images), -1),
        ).pooler_output  # (batch, num_query_tokens, text_hidden)
        if self.processor.decoder_only:
            return self._decoder_only_scores(features, text)
        return self._encoder_decoder_scores(features, text)

    def _decoder_only_scores(self, features: torch.Tensor, text: dict) -> torch.Tensor:
        """The shared prefix ([image][instruction]) runs once per image; the candidates continue from its KV cache."""
        batch, candidates = features.shape[0], len(self.answers)
        start = int((text["labels"][0] != IGNORE_INDEX).nonzero()[0])  # where the answers begin (same for all)
        prefix = self.model(
            input_ids=text["input_ids"][:1, :start].expand(batch, -1),
            mm_encoder_outputs={"image": BaseModelOutputWithVisionQformerOutputs(pooler_output=features)},
            use_cache=True,
        )
        cache = prefix.language_model_outputs.cache
        cache.batch_repeat_interleave(candidates)  # image-major: image b's candidates are rows b*C .. b*C + C-1
        answers = text["input_ids"][:, start:].repeat(batch, 1)
        answer_mask = text["attention_mask"][:, start:].repeat(batch, 1)
        continuation = self.model.language_model(
            input_ids=answers,
            attention_mask=torch.cat([answer_mask.new_ones(answers.shape[0], start), answer_mask], dim=1),
            cache=cache,
        ).logits
        # Answer token 0 is predicted by the prefix's last position, token j by continuation position j - 1.
        first = prefix.logits[:, -1:].repeat_interleave(candidates, dim=0)
        logits = torch.cat([first, continuation[:, :-1]], dim=1)
        labels = text["labels"][:, start:].repeat(batch, 1)
        return _answer_log_likelihood(logits.float(), labels).view(batch, candidates)

    def _encoder_decoder_scores(self, features: torch.Tensor, text: dict) -> torch.Tensor:
        """T5: one batched forward over every (image, candidate); the decoder inputs are built from the labels."""
        batch, candidates = features.shape[0], len(self.answers)
        repeated = BaseModelOutputWithVisionQformerOutputs(pooler_output=features.repeat_interleave(candidates, dim=0))
        labels = text["labels"].repeat(batch, 1)
        logits = self.model(
            input_ids=text["input_ids"].repeat(batch, 1),
            attention_mask=text["attention_mask"].repeat(batch, 1),
            labels=labels,
            mm_encoder_outputs={"image": repeated},
        ).logits
        return _answer_log_likelihood(logits.float(), labels).view(batch, candidates)

    def _candidates(self, prompt: str):
        """The C (instruction, candidate answer) sequences, text only: the images are encoded once, apart."""
        if prompt not in self._candidate_inputs:
            inputs = self.processor.build_training_inputs(None, [prompt] * len(self.answers), self.answers)
            self._candidate_inputs[prompt] = {k: v.to(self.model.device) for k, v in inputs.items()}
        return self._candidate_inputs[prompt]


def _answer_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log-softmax at the label positions, skipping IGNORE_INDEX (no full log-softmax tensor kept)."""
    answer = labels != IGNORE_INDEX
    targets = labels.clamp(min=0).unsqueeze(-1)
    token_log_probs = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(dim=-1)
    return (token_log_probs * answer).sum(dim=-1)


class GeneratePredictor:
    """Greedy decoding of the answer, parsed into a label with `normalize_emotion` (EmoVIT's protocol).

    `preset`: a `modeling_emovit.generation.GENERATION_PRESETS` name ("release": the release's LAVIS decoding).
    """

    def __init__(self, model, processor, space: LabelSpace, max_new_tokens: int | None = None, preset: str = "default"):
        self.model, self.processor, self.space = model, processor, space
        longest_answer = max(map(len, processor.encode_answers([categorical_answer(l) for l in space.labels])))
        self.options = dict(GENERATION_PRESETS[preset])
        self.max_new_tokens = max_new_tokens or self.options.pop("max_new_tokens", None) or longest_answer + 4
        self.options.pop("max_new_tokens", None)

    def predict(self, images: list, prompt: str) -> list[Prediction]:
        answers = generate_text(self.model, self.processor, images, [prompt] * len(images), self.max_new_tokens,
                                **self.options)
        return [Prediction(normalize_emotion(answer, self.space), answer) for answer in answers]
