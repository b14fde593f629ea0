"""Tiny random models by name, for smoke recipes, tests and benchmarks: `tiny-random`, `small-random-t5`, ... (a random
EmoVIT built offline, `testing.tiny_emovit`) and `tiny-random-llava`, `small-random-qwen2.5-vl`, ... (a random
chat-template VLM, `testing_vlms.tiny_vlm`).

The one place where a model name can mean "build it here" instead of "read it from a folder or the Hub":
`loading.load_model_and_processor` asks `is_tiny_model` first and hands such names to `build_tiny_model`.
"""

import re

# size: "tiny" (fastest) or "small" (hidden 128: large enough to learn the demo task)
TINY_MODEL = re.compile(
    r"^(?P<size>tiny|small)-random(?:-(?P<text_model>llama|opt|t5)|-(?P<vlm>llava|idefics3|qwen2-vl|qwen2\.5-vl))?$"
)


def is_tiny_model(name: str) -> bool:
    return TINY_MODEL.match(str(name)) is not None


def tiny_model_type(name: str) -> str:
    """The `model_type` a tiny name builds ("emovit", "llava", "qwen2_5_vl", ...)."""
    tiny = TINY_MODEL.match(name)
    return _vlm_kind(tiny["vlm"]) if tiny["vlm"] else "emovit"


def build_tiny_model(name: str, seed: int = 0):
    """`(model, processor)` of a tiny name, built offline with `seed`."""
    tiny = TINY_MODEL.match(name)
    if tiny["vlm"]:
        from .testing_vlms import tiny_vlm

        return tiny_vlm(_vlm_kind(tiny["vlm"]), size=tiny["size"], seed=seed)
    from .testing import tiny_emovit

    return tiny_emovit(text_model=tiny["text_model"] or "llama", size=tiny["size"], seed=seed)


def _vlm_kind(name: str) -> str:
    """`qwen2.5-vl` (as in the tiny-model name) -> `qwen2_5_vl` (the model type, a `tiny_vlm` kind)."""
    return name.replace(".", "_").replace("-", "_")
