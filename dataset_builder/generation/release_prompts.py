"""The original EmoVIT release's GPT prompts, read from the user's clone of the release at run time.

Flow: `emovit data generate --prompts-from DIR` -> `load_release_prompts(DIR)` -> `OpenAIBackend(prompts=...)`.
The prompt texts are the release authors' words, so this package never copies them: it reads
`emo/prompt/conversation.txt` and `emo/prompt/reasoning.txt` (the reasoning file with its three in-context
examples) and sends each as it is, as the release's `emo/gpt4_conversation.py` and `emo/gpt4_reasoning.py` do:
the file (read in text mode, so its CRLF line ends arrive as LF) is the system message, the clue text in the
release's format (`prompts.release_clue_text`) the user message, and the reply free `Question:`/`Answer:` text.
The release's sampling (`model="gpt-4"`, `temperature=1`, no `max_tokens`) is the CLI's default in this mode.
Each prompt's version is the SHA-256 of its text, so the cache key and every output line record which file was used.
"""

import hashlib
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from ..schema import GENERATED_TASKS
from .prompts import Prompt

RELEASE_PROMPT_FILES = {"conversation": "conversation.txt", "reasoning": "reasoning.txt"}
RELEASE_MODEL = "gpt-4"
RELEASE_TEMPERATURE = 1.0


def release_prompt_folder(root: str | Path) -> Path:
    """`emo/prompt/` of a clone of the release; DIR may also be its `emo/` or `emo/prompt/` folder itself."""
    root = Path(root)
    for folder in (root / "emo" / "prompt", root / "prompt", root):
        if all((folder / name).is_file() for name in RELEASE_PROMPT_FILES.values()):
            return folder
    raise EmoVITInputError(
        f"--prompts-from {root}: no emo/prompt/conversation.txt and emo/prompt/reasoning.txt found there; give the "
        f"folder of a clone of the EmoVIT release (github aimmemotion/EmoVIT), or its emo/prompt folder."
    )


def load_release_prompts(root: str | Path, tasks=GENERATED_TASKS) -> dict[str, Prompt]:
    """task -> Prompt for the release's prompt files (sent verbatim; any number of question/answer pairs)."""
    folder = release_prompt_folder(root)
    prompts = {}
    for task in tasks:
        path = folder / RELEASE_PROMPT_FILES[task]
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise EmoVITInputError(f"{path}: not UTF-8 text ({error}).") from None
        if not text.strip():
            raise EmoVITInputError(f"{path}: the prompt file is empty.")
        version = f"release/{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
        prompts[task] = Prompt(task, version, pairs=None, system=text, clue_format="release")
    return prompts
