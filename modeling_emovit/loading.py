"""Loading a model and its processor by name: an EmoVIT or InstructBLIP folder or Hub id, a PEFT adapter folder
(merged into the base its adapter_config.json names), any other `AutoModelForImageTextToText` model, or a tiny random
model's name (`tiny_models`). Training (recipes), evaluation and captioning all load through here.
"""

import json
from contextlib import contextmanager
from pathlib import Path

from .errors import EmoVITInputError, reading
from .tiny_models import build_tiny_model, is_tiny_model, tiny_model_type
# Checkpoints read by EmoVIT's own classes (an InstructBLIP config converts on load).
EMOVIT_MODEL_TYPES = ("emovit", "instructblip")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
# Processors whose stock class needs torchvision (for its video processor), read images-only without it.
QWEN2_VL_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
# What transformers 5.24 says when it refuses to import a folder's own code (`auto_map`) without consent
# (`dynamic_module_utils.resolve_trust_remote_code`; pinned in tests/test_library_pins.py).
REFUSED_REMOTE_CODE = "trust_remote_code=True"


def check_processor_folder(model: str | Path, action: str) -> None:
    """Refuses, in one sentence, a local model folder saved without its processor (`action`: what needed it)."""
    folder = Path(model)
    if folder.is_dir() and not any((folder / name).is_file() for name in PROCESSOR_FILES):
        raise EmoVITInputError(
            f"{folder}: the model folder has no processor (processor_config.json), which {action} needs; save it "
            f"there with processor.save_pretrained({str(folder)!r})."
        )


def adapter_base(name: str) -> str | None:
    """The base model a PEFT adapter folder names (a folder with adapter_config.json and no config.json), else None."""
    folder = Path(name)
    if not (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
        return None
    base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise EmoVITInputError(
            f"{folder}/adapter_config.json names no base_model_name_or_path; set it to the base model's folder or Hub id."
        )
    return base


@contextmanager
def consent_to_remote_code(name: str):
    """Turns transformers' refusal to run a model's own code (a folder or Hub repo whose config names `.py` files in
    `auto_map` for classes transformers and this package lack) into one sentence naming the flag."""
    try:
        yield
    except ValueError as error:
        if type(error) is not ValueError or REFUSED_REMOTE_CODE not in str(error):
            raise
        raise EmoVITInputError(
            f"{name}: this model names its own Python code to run (auto_map), which happens only with "
            f"--trust-remote-code (trust_remote_code=True in Python); pass it only for a model you trust."
        ) from None


def model_type_of(name: str, trust_remote_code: bool = False) -> str:
    """The `model_type` of a tiny-random name ("emovit", "llava", "qwen2_vl", ...), folder, adapter folder or Hub id,
    from its config alone."""
    if is_tiny_model(name):
        return tiny_model_type(name)
    if adapter_base(name):
        return model_type_of(adapter_base(name), trust_remote_code)
    from transformers import AutoConfig

    from . import register

    register()
    try:
        with reading(name), consent_to_remote_code(name):
            return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code).model_type
    except ValueError as error:  # AutoConfig's complaints about config.json itself (no or unknown model_type)
        if type(error) is not ValueError:  # a decode error, or one already in one sentence: left to the boundary
            raise
        raise EmoVITInputError(f"{name}: {' '.join(str(error).split())}") from None


def load_model_and_processor(name: str, dtype: str | None = None, trust_remote_code: bool = False, seed: int = 0):
    """Returns `(model, processor)` for a tiny-random name, an EmoVIT/InstructBLIP folder or Hub id, or another VLM.
    A model's own code (`auto_map`) runs only with `trust_remote_code=True`; EmoVIT's classes are this package's."""
    from . import register

    register()
    if is_tiny_model(name):
        return build_tiny_model(name, seed)
    base = adapter_base(name)
    if base:  # LoRA output of a recipe: the adapter merged into its base, the processor saved beside the adapter
        from peft import PeftModel

        model, processor = load_model_and_processor(base, dtype, trust_remote_code, seed)
        if any((Path(name) / file).is_file() for file in PROCESSOR_FILES):
            processor = type(processor).from_pretrained(name)
        return PeftModel.from_pretrained(model, name).merge_and_unload(), processor
    dtype = None if dtype in (None, "auto") else dtype
    # a truncated weights file, a garbled tokenizer.json, ... is named by the error boundary
    with reading(name), consent_to_remote_code(name):
        model_type = model_type_of(name, trust_remote_code)
        if model_type in EMOVIT_MODEL_TYPES:
            from .modeling_emovit import EmoVITForConditionalGeneration
            from .processing_emovit import EmoVITProcessor

            model = EmoVITForConditionalGeneration.from_pretrained(name, dtype=dtype)
            return model, EmoVITProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import is_torchvision_available

        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, trust_remote_code=trust_remote_code)
        if model_type in QWEN2_VL_MODEL_TYPES and not is_torchvision_available():
            from .processing_qwen2_vl_image_only import Qwen2VLImageOnlyProcessor

            return model, Qwen2VLImageOnlyProcessor.from_pretrained(name)
        return model, AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
