"""EmoVIT models for transformers: config, model and processor, registered with the Auto classes on import.

    import modeling_emovit  # registers "emovit" with AutoConfig / AutoModel / AutoModelForImageTextToText / AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained(folder_or_repo, trust_remote_code=True)
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_emovit import AUTO_MAP, MIKELS_EMOTIONS, EmoVITConfig
from .errors import EmoVITInputError
from .image_utils import InvalidImageError, ensure_rgb, open_image
from .modeling_emovit import EmoVITForConditionalGeneration, EmoVITModel
from .processing_emovit import IGNORE_INDEX, EmoVITProcessor

AutoConfig.register(EmoVITConfig.model_type, EmoVITConfig, exist_ok=True)
AutoModel.register(EmoVITConfig, EmoVITModel, exist_ok=True)
AutoModelForImageTextToText.register(EmoVITConfig, EmoVITForConditionalGeneration, exist_ok=True)
AutoProcessor.register(EmoVITConfig, EmoVITProcessor, exist_ok=True)
# save_pretrained copies the code files next to the weights and writes `auto_map`, so a saved folder loads
# with trust_remote_code=True where this package is not installed.
EmoVITConfig.register_for_auto_class("AutoConfig")
EmoVITModel.register_for_auto_class("AutoModel")
EmoVITForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
EmoVITProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "AUTO_MAP",
    "EmoVITConfig",
    "EmoVITForConditionalGeneration",
    "EmoVITInputError",
    "EmoVITModel",
    "EmoVITProcessor",
    "IGNORE_INDEX",
    "InvalidImageError",
    "MIKELS_EMOTIONS",
    "ensure_rgb",
    "open_image",
]
