"""GRPO's verifiable rewards: plain functions with TRL's reward signature, each checked against the gold label.

`trl.GRPOTrainer` calls each one as `reward(prompts=..., completions=..., completion_ids=..., **columns)`, the
dataset's other columns passed as lists (here `emotion`, the gold label, and `candidates`, the labels the prompt
lists), and sums them weighted by `GRPOConfig.reward_weights`. A completion is a string, or `[{"role": "assistant",
"content": ...}]` for conversational prompts. The format is `dataset_builder.reasoning_format`'s.

- `accuracy_reward`: 1 when the answer tag, read through the label space's synonyms, names the gold label;
- `format_reward`: 1 when the completion is think, answer, confidence, once each, every tag readable;
- `confidence_reward`: Brier-style 1 - (confidence - correct)^2, 0 without a readable confidence;
- `polarity_reward`, the partial credit: 1 when the answer has the gold label's polarity (an exact answer included).
  Polarity rather than Emotion6's per-image vote distributions (which built rows keep, in
  `attributes.label_distribution`): every built-in label space carries polarities, so the credit exists for every
  dataset GRPO trains on, EmoSet included, while Emotion6 (1,980 images) is one of EmoVIT's held-out test sets, whose
  distributions should stay out of training.
"""

from functools import lru_cache

from dataset_builder.emotions import LabelSpace, defined_label_space
from dataset_builder.reasoning_format import ReasonedAnswer, parse_reasoned_answer


def accuracy_reward(completions, emotion, candidates, **kwargs) -> list[float]:
    return [float(answer.label == gold) for answer, gold in zip(_read(completions, candidates), emotion)]


def format_reward(completions, candidates, **kwargs) -> list[float]:
    return [float(answer.well_formed) for answer in _read(completions, candidates)]


def confidence_reward(completions, emotion, candidates, **kwargs) -> list[float]:
    """1 - (confidence - correct)^2: a right answer said with confidence 1 earns 1, a wrong one said with 1 earns 0."""
    return [
        0.0 if answer.confidence is None else 1.0 - (answer.confidence - float(answer.label == gold)) ** 2
        for answer, gold in zip(_read(completions, candidates), emotion)
    ]


def polarity_reward(completions, emotion, candidates, **kwargs) -> list[float]:
    rewards = []
    for answer, gold, labels in zip(_read(completions, candidates), emotion, candidates):
        polarity = _space(tuple(labels)).polarity
        rewards.append(float(answer.label is not None and polarity.get(answer.label, "?") == polarity.get(gold)))
    return rewards


# The names a recipe's `reward_funcs` lists, in the order `reward_weights` weighs them.
REWARDS = {"accuracy": accuracy_reward, "format": format_reward, "confidence": confidence_reward,
           "polarity": polarity_reward}


def completion_text(completion) -> str:
    """A completion as text: a string as it is, a conversational completion's assistant content."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, list):  # structured blocks: [{"type": "text", "text": ...}]
        return "".join(part.get("text") or "" for part in content)
    return content or ""


def _read(completions, candidates) -> list[ReasonedAnswer]:
    return [_parsed(completion_text(completion), tuple(labels)) for completion, labels in zip(completions, candidates)]


@lru_cache(maxsize=4096)
def _parsed(text: str, labels: tuple[str, ...]) -> ReasonedAnswer:
    """A completion read once for all four rewards (TRL calls each reward on the same completions in turn)."""
    return parse_reasoned_answer(text, _space(labels))


@lru_cache(maxsize=32)
def _space(labels: tuple[str, ...]) -> LabelSpace:
    """The label space of a prompt's candidates (a built-in one when the labels are its own, for its synonyms)."""
    return defined_label_space(None, labels)
