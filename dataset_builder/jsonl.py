"""JSON Lines, read one way everywhere: split lists, generation and caption files, predictions, batch logs.

Two kinds of file:
- inputs a user hands in (`metadata.jsonl`, `--captions`, `--generations`): `iter_objects` yields each JSON object;
  a line that is not one (garbled, not UTF-8, a bare number) goes to `on_bad` to be counted, or, without `on_bad`,
  stops the run with one sentence naming the file and line;
- append-only outputs that a run resumes (`generations.jsonl`, `captions.jsonl`, `predictions.jsonl`):
  `read_resumable` cuts away a last line left unfinished by a kill and drops (and counts) garbled lines, so the
  items they held are simply done again.
"""

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError


def json_kind(value) -> str:
    """What a parsed JSON value is, in JSON's words ("a number", "an object"), for messages about a file's shape."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _object(line: bytes | str) -> dict | None:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def iter_objects(lines: Iterable[bytes | str], name: str, on_bad: Callable[[str], None] | None = None) -> Iterator[dict]:
    """The JSON objects of `lines`; blank lines are ignored, and any other line that is not a JSON object is passed
    to `on_bad("name:line")`, or refused in one sentence when `on_bad` is None."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        value = _object(line)
        if value is not None:
            yield value
        elif on_bad is None:
            raise EmoVITInputError(f"{name}: line {number} is not a JSON object (garbled, truncated or not UTF-8).")
        else:
            on_bad(f"{name}:{number}")


def read_objects(path: str | Path, on_bad: Callable[[str], None] | None = None, what: str = "file") -> list[dict]:
    """Every JSON object of the JSONL file at `path` (see `iter_objects`); a missing file is one sentence."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EmoVITInputError(f"{path}: cannot read the {what} ({error.strerror or error}).") from None
    return list(iter_objects(data.splitlines(), str(path), on_bad))


@dataclass
class ResumedRows:
    """The rows an append-only output already holds, and what was not usable: a cut last line, garbled lines."""

    rows: list[dict] = field(default_factory=list)
    cut_lines: int = 0
    garbled_lines: int = 0


def read_resumable(path: str | Path) -> ResumedRows:
    """The complete rows of an append-only JSONL output; a last line cut short by a kill is truncated away (so the
    next append starts on a fresh line) and garbled lines are dropped, both counted."""
    path = Path(path)
    if not path.exists():
        return ResumedRows()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    resumed = ResumedRows(cut_lines=int(len(complete) != len(data)))
    if resumed.cut_lines:
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))

    def garbled(_: str) -> None:
        resumed.garbled_lines += 1

    resumed.rows = list(iter_objects(complete.splitlines(), str(path), garbled))
    return resumed


def append_line(handle, row: dict) -> None:
    """One JSON line, written in one call and flushed: a kill can cut at most the line being written."""
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
