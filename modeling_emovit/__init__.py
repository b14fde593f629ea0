"""EmoVIT models for transformers: config, model and processor, on the Auto classes.

    import modeling_emovit
    modeling_emovit.register()  # or use any class below: the first use registers "emovit" with the Auto classes
    model = AutoModelForImageTextToText.from_pretrained(folder_or_repo)

Importing the package is cheap (no torch, no transformers), so the dataset and generation tools that only need
`errors` or `image_utils` start fast. The model classes load on first attribute access, and that first access
registers "emovit" with AutoConfig, AutoModel, AutoModelForImageTextToText and AutoProcessor. A saved folder also
loads without this package: `from_pretrained(folder, trust_remote_code=True)` reads the code saved beside it.
"""

import importlib

# name -> submodule; the first group needs no torch or transformers.
_LIGHT = {
    "EmoVITInputError": "errors",
    "InvalidImageError": "image_utils",
    "ensure_rgb": "image_utils",
    "open_image": "image_utils",
    "MIKELS_EMOTIONS": "labels",
}
_MODELS = {
    "AUTO_MAP": "configuration_emovit",
    "EmoVITConfig": "configuration_emovit",
    "EmoVITModel": "modeling_emovit",
    "EmoVITForConditionalGeneration": "modeling_emovit",
    "EmoVITProcessor": "processing_emovit",
    "IGNORE_INDEX": "processing_emovit",
}
__all__ = sorted([*_LIGHT, *_MODELS, "register"])
_registered = False


def register() -> None:
    """Registers "emovit" with transformers' Auto classes (idempotent; loading a folder needs it only without
    `trust_remote_code=True`)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from .configuration_emovit import EmoVITConfig
    from .modeling_emovit import EmoVITForConditionalGeneration, EmoVITModel
    from .processing_emovit import EmoVITProcessor

    AutoConfig.register(EmoVITConfig.model_type, EmoVITConfig, exist_ok=True)
    AutoModel.register(EmoVITConfig, EmoVITModel, exist_ok=True)
    AutoModelForImageTextToText.register(EmoVITConfig, EmoVITForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(EmoVITConfig, EmoVITProcessor, exist_ok=True)
    _registered = True


def __getattr__(name: str):
    if name in _MODELS:
        register()
        return getattr(importlib.import_module(f".{_MODELS[name]}", __name__), name)
    if name in _LIGHT:
        return getattr(importlib.import_module(f".{_LIGHT[name]}", __name__), name)
    raise AttributeError(f"module 'modeling_emovit' has no attribute {name!r}")
