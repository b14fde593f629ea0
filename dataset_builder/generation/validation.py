"""Model reply -> validated question/answer pairs, or a rejection with its reason.

Structured output (JSON `{"pairs": [...]}`) is parsed first; servers without `json_schema` support answer in text,
parsed from `Question:`/`Answer:` lines. The original EmoVIT scripts split free text with regular expressions and
leaked labels such as "Complex question:" into the data: here a leaked label is a rejection, never data. Given the
record, pairs are also screened against it (`screening`: no other emotion stated, no instruction-like text).
"""

import json
import re

from ..chat import RejectedOutput
from ..records import EmotionRecord
from .screening import screening_rejection

# A label that prefixes a question or answer ("Complex question:", "Q2:", "Answer 1 -").
LEAKED_LABEL = re.compile(r"^\s*(\*\*)?\s*(complex\s+)?(question|answer|q|a)\s*\d*\s*(\*\*)?\s*[:：\-]", re.I)
REFUSAL = re.compile(
    r"^\s*(i'm sorry|i am sorry|sorry,|i can(no|')t|i am unable|i'm unable|i won't)|as an ai (language )?model", re.I
)
# The model pretends to see the image: it must never reveal how it was told what is in it.
MENTIONS_INPUT = re.compile(r"\b(captions?|attributes?)\b", re.I)
# A `Question:` / `Answer:` line of a text reply (optionally numbered, bold or "Complex question:").
TEXT_LABEL = re.compile(r"^[\s*#\d.)]*(?:complex\s+)?(question|answer)\s*\d*\s*\**\s*:\s*\**\s*(.*)$", re.I)


def _json_pairs(text: str):
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    data = json.loads(fenced.group(1) if fenced else text)
    pairs = data.get("pairs") if isinstance(data, dict) else data
    if not isinstance(pairs, list) or not all(isinstance(pair, dict) for pair in pairs):
        raise RejectedOutput("json without a list of question/answer objects")
    return [{"question": str(pair.get("question") or ""), "answer": str(pair.get("answer") or "")} for pair in pairs]


def _text_pairs(text: str):
    pairs, field = [], None
    for line in text.splitlines():
        label = TEXT_LABEL.match(line)
        if label and (label[1].lower() == "question" or pairs):
            field = label[1].lower()
            if field == "question":
                pairs.append({"question": "", "answer": ""})
            pairs[-1][field] = label[2]
        elif field:
            pairs[-1][field] += "\n" + line
    return [{key: value.strip().strip("*").strip() for key, value in pair.items()} for pair in pairs]


def parse_pairs(text: str) -> list[dict]:
    """JSON pairs when the reply is JSON, else `Question:`/`Answer:` pairs; raise RejectedOutput when neither."""
    try:
        return _json_pairs(text)
    except (json.JSONDecodeError, AttributeError):
        pairs = _text_pairs(text)
    if not pairs:
        raise RejectedOutput("no question/answer pairs found in the reply")
    return pairs


def validate_pairs(pairs: list[dict], expected: int | None, record: EmotionRecord | None = None) -> list[dict]:
    """Return `pairs` if there are `expected` of them (None: any number), none empty, refused, labelled or revealing
    the input, and (given `record`) none failing `screening`."""
    if expected is not None and len(pairs) != expected:
        raise RejectedOutput(f"expected {expected} pairs, got {len(pairs)}")
    for pair in pairs:
        for field in ("question", "answer"):
            text = pair[field]
            if not text.strip():
                raise RejectedOutput(f"empty {field}")
            if REFUSAL.search(text):
                raise RejectedOutput("refusal")
            if LEAKED_LABEL.match(text):
                raise RejectedOutput(f"leaked label in {field}: {text[:30]!r}")
            if MENTIONS_INPUT.search(text):
                raise RejectedOutput(f"{field} mentions the caption or attributes")
        screened = screening_rejection(pair, record) if record is not None else None
        if screened:
            raise RejectedOutput(screened)
    return pairs


def reply_parser(expected: int | None, record: EmotionRecord | None = None):
    """A `parse(content) -> pairs` for `chat.run_chat_requests` that validates `expected` pairs (None: any) and,
    given the `record` they are written for, screens them against it."""

    def parse(content: str) -> list[dict]:
        return validate_pairs(parse_pairs(content), expected, record)

    return parse
