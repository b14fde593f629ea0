"""GPT-assisted emotion instruction generation: captions and clues -> conversation and reasoning Q/A pairs.

Modules: `prompts` (package-data prompt files, clue text), `validation` (reply -> checked pairs), `client`
(reusable concurrent/rate-limited/retrying/cached chat runner, also used by the LLM judge), `pipeline` (resumable
JSONL output, `rules` and `openai` backends), `batch` (OpenAI Batch API backend), `rules` (offline pairs),
`captions` (batched image captioning), `pricing` (cost estimate), `cli` (`emovit data caption|generate`).
"""
