"""Which checkpoint a run resumes from: the one named, or with `resume_from_checkpoint: true` the newest complete one.

Flow: recipe -> this check (before anything loads) -> `Trainer.train(resume_from_checkpoint=...)`. A run killed while
it saved leaves a `checkpoint-N` folder that transformers cannot resume (only config.json, or weights cut short:
"Can't find a valid checkpoint", or a safetensors error naming no file). `Trainer._save_checkpoint` writes the weights
first and `trainer_state.json` after them, so a checkpoint is complete when its state parses and every weights file
it holds is whole (its safetensors header covers the file). `true` skips incomplete ones, newest first, and says so.
"""

import json
import logging
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
WEIGHTS = ("model.safetensors", "adapter_model.safetensors")  # plain or LoRA; sharded weights list an index


def incomplete_part(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed, naming the file ("trainer_state.json is missing", "model.safetensors is
    cut short (...)"), or None when it is complete."""
    state = checkpoint / STATE_FILE
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{state} is missing (the run stopped while saving)"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{state} is garbled"
    weights = [checkpoint / name for name in WEIGHTS if (checkpoint / name).is_file()]
    weights += [checkpoint / name for name in _shards(checkpoint)]
    if not weights and not any(checkpoint.glob("global_step*")):  # DeepSpeed keeps its weights in global_stepN/
        return f"{checkpoint} holds no model weights"
    for path in weights:
        problem = _safetensors_problem(path)
        if problem:
            return f"{path} is cut short or damaged ({problem})"
    return None


def _shards(checkpoint: Path) -> list[str]:
    index = checkpoint / "model.safetensors.index.json"
    if not index.is_file():
        return []
    return sorted(set(json.loads(index.read_text())["weight_map"].values()))


def _safetensors_problem(path: Path) -> str | None:
    """safetensors' own check of the header against the file's length (it reads no tensor)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt"):
            return None
    except (SafetensorError, OSError) as error:
        return str(error)


def checkpoint_to_resume(training_args) -> str | None:
    """What `resume_from_checkpoint` names: None, or a complete checkpoint folder (`true`/`last`: the newest
    complete `checkpoint-N` in output_dir, incomplete newer ones skipped with a warning); refuses, before anything
    loads, a folder that is not there or cannot be resumed."""
    resume = training_args.resume_from_checkpoint
    if resume in (None, "", "false", "False"):
        return None
    if resume in ("true", "True", "last"):
        return str(_newest_complete(Path(training_args.output_dir), resume))
    folder = Path(resume)
    if not folder.is_dir():
        raise EmoVITInputError(f"resume_from_checkpoint {resume}: no such checkpoint folder.")
    problem = incomplete_part(folder)
    if problem:
        raise EmoVITInputError(
            f"resume_from_checkpoint {resume}: {problem}; resume from an earlier checkpoint, or pass "
            f"--resume_from_checkpoint true to take the newest complete one."
        )
    return resume


def _newest_complete(output_dir: Path, flag: str) -> Path:
    numbered = sorted(
        (path for path in output_dir.glob("checkpoint-*") if path.is_dir() and path.name.split("-")[-1].isdigit()),
        key=lambda path: int(path.name.split("-")[-1]), reverse=True,
    ) if output_dir.is_dir() else []
    if not numbered:
        raise EmoVITInputError(
            f"resume_from_checkpoint {flag}: {output_dir} holds no checkpoint-N folder to resume from; drop the flag "
            "to start afresh, or name a checkpoint folder."
        )
    for checkpoint in numbered:
        problem = incomplete_part(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("Not resuming from %s: %s; trying the one before it.", checkpoint.name, problem)
    raise EmoVITInputError(
        f"resume_from_checkpoint {flag}: no checkpoint in {output_dir} is complete ({numbered[0].name}: "
        f"{incomplete_part(numbered[0])}); drop the flag to start afresh."
    )
