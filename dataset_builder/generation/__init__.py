"""GPT-assisted emotion instruction generation: captions and clues -> conversation and reasoning Q/A pairs.

Modules: `prompts` (package-data prompt files, clue text), `validation` (reply -> checked pairs), `items` (what a
run works on), `backends` (`rules` offline, `openai` through `dataset_builder.chat`), `batch` (OpenAI Batch API),
`writer` (resumable JSONL output), `pipeline` (`generate_instructions`), `captions` (batched image captioning),
`pricing` (cost estimate), `rules` (the offline pairs), `screening` (pairs checked against their record).
"""

from .backends import OpenAIBackend, RulesBackend
from .captions import caption_records, read_captions
from .pipeline import estimate_instructions, generate_instructions
from .writer import failed_path

__all__ = ["OpenAIBackend", "RulesBackend", "caption_records", "estimate_instructions", "failed_path",
           "generate_instructions", "read_captions"]
