"""The reasoning answer format: a reasoning chain, then the emotion, then a verbalised confidence, in one string.

    <think>dark water, a lone figure, no faces</think><answer>sadness</answer><confidence>0.7</confidence>

Where it sits: the cold-start stage before GRPO trains on it (`reasoned_answer` over the GPT-written reasoning
instructions, `emovit.training.grpo_data`), GRPO's rewards check it (`emovit.training.rewards`), `emovit eval --mode
generate --answer-format reasoning` parses it back (`parse_reasoned_answer`), and the judge can score its reasoning.
The tags are this package's choice: reasoning before the answer, as in the R1-style emotion models (EMO-R3, DSPO),
and a confidence after it, as EmoCaliber verbalises one.
"""

import re
from dataclasses import dataclass

from .emotions import LabelSpace, normalize_emotion

TAGS = ("think", "answer", "confidence")
_WHOLE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*<confidence>(.*?)</confidence>\s*",
                    re.DOTALL)


def reasoning_instruction(labels) -> str:
    """The question GRPO and the cold start ask: the candidates listed, the three tags described."""
    return (
        f"Which emotion does this image evoke? Choose one of: {', '.join(labels)}. First reason about what you see "
        f"inside <think></think>, then give the emotion inside <answer></answer>, then how sure you are, a number "
        f"between 0 and 1, inside <confidence></confidence>."
    )


def reasoned_answer(reasoning: str, label: str, confidence: float) -> str:
    """The format written out: what the cold start teaches and a well-formed completion looks like."""
    return f"<think>{reasoning.strip()}</think><answer>{label}</answer><confidence>{confidence:g}</confidence>"


@dataclass(frozen=True)
class ReasonedAnswer:
    """What a completion says, tag by tag (None where a tag is missing or its content unreadable)."""

    reasoning: str | None
    label: str | None  # the answer tag's text normalised onto the label space (synonyms included)
    confidence: float | None  # a number in [0, 1]; text, a percentage or a number outside it reads as None
    well_formed: bool  # the three tags once each, in order, nothing around them, every one readable


def parse_reasoned_answer(text: str, space: LabelSpace) -> ReasonedAnswer:
    """Reads each tag on its own, so that a completion with one tag missing still gives the others."""
    reasoning, answer, confidence = (tag_content(text, tag) for tag in TAGS)
    label = normalize_emotion(answer.strip(), space) if answer is not None else None
    value = _confidence(confidence)
    whole = _WHOLE.fullmatch(text) is not None and all(text.count(f"<{tag}>") == 1 for tag in TAGS)
    return ReasonedAnswer(reasoning.strip() if reasoning is not None else None, label, value,
                          whole and label is not None and value is not None and bool(reasoning.strip()))


def tag_content(text: str, tag: str) -> str | None:
    """The text inside the first <tag>...</tag> of `text` (None without one)."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return match[1] if match else None


def _confidence(text: str | None) -> float | None:
    """"0.8" -> 0.8; "high", "80%", "1.5", "nan", "" -> None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if 0.0 <= value <= 1.0 else None  # NaN fails both comparisons
