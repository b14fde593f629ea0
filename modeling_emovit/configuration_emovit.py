"""EmoVIT configuration: an InstructBLIP configuration plus the emotion label space and the freezing policy.

The label space (`emotion_label_space`, `emotion_labels`, and transformers' `id2label`/`label2id` over the same
labels) is what the emotion pipeline and `emovit serve` default to; training writes the one its data declares
(`set_emotion_label_space`, which also serves chat-template models' configs).

EmoVIT (Xie et al., CVPR 2024, Sec. 4) instruction-tunes InstructBLIP with the image encoder and the language
model frozen; the Q-Former, its learned query tokens, the linear projection into the LM and (as in LAVIS, whose
`ln_vision` sits outside the frozen `visual_encoder`) the vision encoder's final LayerNorm are trained.
"""

from transformers import InstructBlipConfig

from .errors import EmoVITInputError
from .labels import MIKELS_EMOTIONS
# What `freeze_for_instruction_tuning` leaves trainable (EmoVIT Sec. 4.1; LAVIS `blip2_vicuna_instruct`, whose
# `freeze_vit=True` freezes `visual_encoder` only, so `ln_vision` = `vision_model.post_layernorm` trains, and the LLM
# is frozen).
INSTRUCTION_TUNED_MODULES = ("vision_model.post_layernorm", "qformer", "query_tokens", "language_projection")
_CONVERTIBLE_MODEL_TYPES = ("emovit", "instructblip")
_SUB_CONFIGS = ("vision_config", "qformer_config", "text_config")
# Every Auto class a saved folder answers to with trust_remote_code=True (transformers records only one per class).
AUTO_MAP = {
    "AutoConfig": "configuration_emovit.EmoVITConfig",
    "AutoModel": "modeling_emovit.EmoVITModel",
    "AutoModelForImageTextToText": "modeling_emovit.EmoVITForConditionalGeneration",
    "AutoProcessor": "processing_emovit.EmoVITProcessor",
}


class EmoVITConfig(InstructBlipConfig):
    r"""
    Configuration of [`EmoVITForConditionalGeneration`]; every InstructBLIP argument is accepted as is.

    emotion_labels (`list[str]`, *optional*):
        The labels the model was instruction-tuned on, in the order EmoVIT lists candidates; defaults to the 8
        Mikels emotions. `id2label`/`label2id` default to the same labels.
    emotion_label_space (`str`, *optional*):
        The name of that label space as its training data declared it ("emoset", "emotion6", a dataset's own
        name, "emoset+emotion6" for a mixture); None when not recorded.
    trainable_modules (`list[str]`, *optional*):
        Modules or parameters (dotted paths, e.g. `vision_model.post_layernorm`) left trainable by
        `freeze_for_instruction_tuning()`; defaults to what LAVIS trains: the vision encoder's final LayerNorm
        (LAVIS `ln_vision`), the Q-Former, the query tokens and the language projection.
    emotion_calibration (`dict`, *optional*):
        How rank scores become probabilities, fitted on a validation split by `emovit eval --calibrate-on`:
        `{"temperature": T, "bias": {label: b} or None, "labels": [...], "fitted_on": "..."}` (see
        `calibration_emovit`); None: the softmax of the raw log-likelihoods.

    An InstructBLIP `config.json` (model_type `instructblip`) loads into this class unchanged, so
    `EmoVITForConditionalGeneration.from_pretrained("Salesforce/instructblip-vicuna-7b")` starts EmoVIT training.
    """

    model_type = "emovit"

    emotion_labels: list[str] | None = None
    emotion_label_space: str | None = None
    trainable_modules: list[str] | None = None
    emotion_calibration: dict | None = None

    def __post_init__(self, **kwargs):
        self.emotion_labels = list(self.emotion_labels or MIKELS_EMOTIONS)
        if self.id2label is None:  # transformers' class names: the emotion labels (a saved id2label is kept)
            self.id2label, self.label2id = _label_maps(self.emotion_labels)
        self.trainable_modules = list(self.trainable_modules or INSTRUCTION_TUNED_MODULES)
        super().__post_init__(**kwargs)
        # save_pretrained merges the saving class's own entry into this map, so a saved folder lists every Auto
        # class it answers to (TRL picks AutoModelForImageTextToText only when auto_map names it).
        if not getattr(self, "auto_map", None):
            self.auto_map = dict(AUTO_MAP)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """Reads `config.json`, accepting InstructBLIP configs (converted) and refusing any other model type, or a
        config without its three sub-configs (the defaults would not match the saved weights)."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        model_type = config_dict.get("model_type")
        if model_type not in _CONVERTIBLE_MODEL_TYPES:
            raise EmoVITInputError(
                f"{pretrained_model_name_or_path}: config.json has model_type {model_type!r}; EmoVIT loads only "
                f"'emovit' or 'instructblip' checkpoints."
            )
        missing = [name for name in _SUB_CONFIGS if not isinstance(config_dict.get(name), dict)]
        if missing:
            raise EmoVITInputError(
                f"{pretrained_model_name_or_path}: config.json lacks {', '.join(missing)} (or has one that is not a "
                f"JSON object); a saved EmoVIT/InstructBLIP config names all of {', '.join(_SUB_CONFIGS)}."
            )
        config_dict["model_type"] = cls.model_type
        return config_dict, kwargs


def set_emotion_label_space(config, name: str | None, labels) -> None:
    """Records a label space on a model config, EmoVIT's or any other (a chat-template model's config saves these
    keys too): `emotion_label_space`, `emotion_labels` and `id2label`/`label2id` over the same labels."""
    config.emotion_label_space = name
    config.emotion_labels = list(labels)
    config.id2label, config.label2id = _label_maps(labels)


def _label_maps(labels) -> tuple[dict[int, str], dict[str, int]]:
    return dict(enumerate(labels)), {label: index for index, label in enumerate(labels)}


# save_pretrained copies this file (and its relative imports) beside the weights and records it in `auto_map`.
EmoVITConfig.register_for_auto_class("AutoConfig")
