"""The original release's data mix (its `emo/all.py`) as a build option: `emovit data build --mix release`.

Flow: EmoSet `train.json` -> `release_mix` (image id -> tasks) -> `write_manifests` keeps those images, each with its
tasks. The release's scripts number each emotion's images by their position among that emotion's entries of EmoSet's
`train.json` (`all_data[i][j]`, the file's order), and give positions 0-99 reasoning (`gpt4_reasoning.py`,
`range(0, 100)`), 0-999 conversation (`gpt4_conversation.py`, `range(0, 1000)`) and 1000-5599 categorical
(`all.py`, `range(1000, 5600)`: 4,600 per emotion). Categorical and conversation images are thus disjoint and the
reasoning images are a subset of the conversation ones. `all.py` then shuffles its list with no seed; the selection
here depends only on `train.json`, and the trainer's sampler shuffles with the recipe's seed.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

from .records import EmotionRecord
from .report import BuildReport

MIXES = ("release",)
RELEASE_POSITIONS = {"reasoning": range(0, 100), "conversation": range(0, 1000), "categorical": range(1000, 5600)}


def release_mix(root, split: str) -> dict[str, tuple[str, ...]]:
    """image id -> the tasks the release gave it, from EmoSet's `train.json` under `root`."""
    if split != "train":
        raise EmoVITInputError(f"--mix release picks images of EmoSet's train split, not {split!r}; use --split train.")
    path = Path(root) / "train.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmoVITInputError(f"{path}: --mix release needs EmoSet's train.json (--source emoset).") from None
    except json.JSONDecodeError as error:
        raise EmoVITInputError(f"{path}: not valid JSON ({error}).") from None
    seen_per_emotion: dict[str, int] = {}
    tasks = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3):
            continue  # the EmoSet reader counts malformed entries
        emotion, image = entry[0], entry[1]
        position = seen_per_emotion.get(emotion, 0)
        seen_per_emotion[emotion] = position + 1
        chosen = tuple(task for task, positions in RELEASE_POSITIONS.items() if position in positions)
        if chosen:
            tasks[Path(image).stem] = chosen
    return tasks


def mixed(records: Iterable[EmotionRecord], mix: dict[str, tuple[str, ...]], generations: dict,
          report: BuildReport) -> Iterator[EmotionRecord]:
    """The records `mix` names, each limited to its tasks; every image and generation it leaves out is counted."""
    for record in records:
        tasks = mix.get(record.id)
        if not tasks:
            report.skip("image not in the release mix", record.id)
            for task in generations.pop(record.id, {}):
                report.skip("generation for an image not in the release mix", f"{record.id}:{task}")
            continue
        for task in list(generations.get(record.id, {})):
            if task not in tasks:
                report.note("generation for a task the release mix does not give this image (left out)",
                            f"{record.id}:{task}")
                del generations[record.id][task]
        yield replace(record, tasks=tasks)
