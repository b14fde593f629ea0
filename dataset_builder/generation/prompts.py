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
    """One task's prompt: `version` is part of every cache key, `pairs` the number of pairs to write (None: any).

    This package's prompts ask for JSON (`json_note`, structured output) with a text fallback (`text_note`); the
    original release's prompts (`release_prompts`) have neither note: they are sent as they are, answered in text,
    with the clue text in the release's own format (`clue_format="release"`).
    """

    task: str
    version: str
    pairs: int | None
    system: str
    json_note: str | None = None
    text_note: str | None = None
    clue_format: str = "emovit"

    @property
    def structured(self) -> bool:
        return self.json_note is not None

    def messages(self, clue_text: str, structured: bool = True) -> list[dict]:
        """Chat messages asking for JSON (structured output) or for `Question:`/`Answer:` lines (text fallback)."""
        note = self.json_note if structured else self.text_note
        system = f"{self.system}\n\n{note}" if note else self.system
        return [{"role": "system", "content": system}, {"role": "user", "content": clue_text}]

    def clue(self, record: EmotionRecord, caption: str | None = None) -> str:
        """The user message: the record's clue text in this prompt's format."""
        return (release_clue_text if self.clue_format == "release" else clue_text)(record, caption)


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


# The release's clue keys in its order (`emo/cap-anno.py`): no scene.
RELEASE_CLUE_KEYS = ("brightness", "colorfulness", "object", "facial_expression", "human_action")


def release_clue_text(record: EmotionRecord, caption: str | None = None) -> str:
    """The original release's clue text (`emo/cap-anno.py`): the caption as written, a blank line, `emotion: `, then a
    `key: value` line for each annotation key present, values printed with Python's `str` (so objects read
    `['Toy']` and numbers keep every digit); no scene, no trailing newline."""
    caption = caption if caption is not None else record.caption
    lines = [f"emotion: {record.label}"]
    lines += [f"{key}: {record.attributes[key]}" for key in RELEASE_CLUE_KEYS if record.attributes.get(key) is not None]
    return f"{caption or ''}\n\n" + "\n".join(lines)
