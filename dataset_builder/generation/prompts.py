"""Prompt files (package data) and the fixed-format user message: record + caption -> chat messages per task.

EmoVIT (CVPR 2024, Sec. 3.2) prompts GPT with an image's caption and its emotion and visual clues; the clue text
follows the original release: the caption, a blank line, then one `key: value` line per known clue.
"""

from dataclasses import dataclass
from functools import cache
from importlib import resources

from modeling_emovit.errors import EmoVITInputError

from ..records import EmotionRecord
from ..schema import CLUE_KEYS, GENERATED_TASKS

# JSON schema for structured output: {"pairs": [{"question", "answer"}]} (OpenAI strict mode needs every key
# required and no extra properties).
PAIRS_SCHEMA = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}
PAIRS_RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "emotion_instructions", "strict": True, "schema": PAIRS_SCHEMA},
}


@dataclass(frozen=True)
class Prompt:
    """One task's prompt file: `version` is part of every cache key, `pairs` the number of pairs to write."""

    task: str
    version: str
    pairs: int
    system: str
    json_note: str
    text_note: str

    def messages(self, clue_text: str, structured: bool = True) -> list[dict]:
        """Chat messages asking for JSON (structured output) or for `Question:`/`Answer:` lines (text fallback)."""
        note = self.json_note if structured else self.text_note
        return [{"role": "system", "content": f"{self.system}\n\n{note}"}, {"role": "user", "content": clue_text}]


@cache
def load_prompt(task: str) -> Prompt:
    """Read `prompts/<task>.txt`: `key: value` header lines, then `=== system`, `=== json`, `=== text` sections."""
    if task not in GENERATED_TASKS:
        raise EmoVITInputError(f"--tasks: unknown task {task!r}; choose from {', '.join(GENERATED_TASKS)}.")
    text = resources.files("dataset_builder.generation").joinpath("prompts", f"{task}.txt").read_text("utf-8")
    header, *sections = text.split("\n=== ")
    fields = dict(line.split(": ", 1) for line in header.strip().splitlines())
    body = {name: content.strip() for name, _, content in (section.partition("\n") for section in sections)}
    return Prompt(task, fields["version"], int(fields["pairs"]), body["system"], body["json"], body["text"])


def _clue_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def clue_text(record: EmotionRecord, caption: str | None = None) -> str:
    """Caption, blank line, then `emotion:` and the present clues, one `key: value` line each (EmoVIT format)."""
    caption = caption if caption is not None else record.caption
    lines = [f"emotion: {record.label}"] if record.label else []
    for key in CLUE_KEYS:
        value = record.attributes.get(key)
        if value not in (None, "", [], ()):
            lines.append(f"{key}: {_clue_value(value)}")
    clues = "\n".join(lines)
    return f"{caption.strip()}\n\n{clues}" if caption else clues
