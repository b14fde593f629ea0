"""Converting LAVIS `blip2_vicuna_instruct` checkpoints (the original EmoVIT release) to transformers folders.

The key table follows transformers' `convert_instructblip_original_to_pytorch.py`; it is written as templates
(`{i}` = layer index) so the same table renames both ways (the tests export a model to LAVIS keys and back).
"""

import pickle
import re
from pathlib import Path

import torch

from .errors import EmoVITInputError
from .modeling_emovit import EmoVITForConditionalGeneration
from .processing_emovit import EmoVITProcessor

# (LAVIS prefix, transformers prefix), first match wins.
KEY_TEMPLATES = [
    ("visual_encoder.cls_token", "vision_model.embeddings.class_embedding"),
    ("visual_encoder.pos_embed", "vision_model.embeddings.position_embedding"),
    ("visual_encoder.patch_embed.proj.", "vision_model.embeddings.patch_embedding."),
    ("ln_vision.", "vision_model.post_layernorm."),
    ("visual_encoder.blocks.{i}.norm1.", "vision_model.encoder.layers.{i}.layer_norm1."),
    ("visual_encoder.blocks.{i}.norm2.", "vision_model.encoder.layers.{i}.layer_norm2."),
    ("visual_encoder.blocks.{i}.attn.qkv.weight", "vision_model.encoder.layers.{i}.self_attn.qkv.weight"),
    ("visual_encoder.blocks.{i}.attn.proj.", "vision_model.encoder.layers.{i}.self_attn.projection."),
    ("visual_encoder.blocks.{i}.mlp.", "vision_model.encoder.layers.{i}.mlp."),
    ("Qformer.bert.embeddings.LayerNorm.", "qformer.embeddings.layernorm."),
    ("Qformer.bert.encoder.layer.{i}.attention.self.", "qformer.encoder.layer.{i}.attention.attention."),
    ("Qformer.bert.encoder.layer.{i}.crossattention.self.", "qformer.encoder.layer.{i}.crossattention.attention."),
    ("Qformer.bert.", "qformer."),
    ("query_tokens", "query_tokens"),
    ("llm_proj.", "language_projection."),
    ("llm_model.", "language_model."),
]
# LAVIS' EVA ViT keeps separate q and v biases (k has none); transformers holds one qkv bias.
Q_BIAS, V_BIAS = "visual_encoder.blocks.{i}.attn.q_bias", "visual_encoder.blocks.{i}.attn.v_bias"
QKV_BIAS = "vision_model.encoder.layers.{i}.self_attn.qkv.bias"
# In LAVIS but not in InstructBLIP: the Q-Former's MLM head and buffers.
DROPPED = re.compile(r"^Qformer\.cls\.|position_ids$")


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)"))


def _rename(key: str, to_lavis: bool) -> str | None:
    for lavis, hf in KEY_TEMPLATES:
        source, target = (hf, lavis) if to_lavis else (lavis, hf)
        match = _pattern(source).match(key)
        if match:
            prefix = target.replace("{i}", match.group(1)) if match.groups() else target
            return prefix + key[match.end():]
    return None


def lavis_to_transformers(state_dict: dict) -> tuple[dict, list[str]]:
    """Renames a LAVIS state dict; returns (converted, keys that have no transformers counterpart)."""
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        layer = re.match(r"^visual_encoder\.blocks\.(\d+)\.attn\.q_bias$", key)
        if layer:
            i = layer.group(1)
            v_bias = state_dict[V_BIAS.format(i=i)]
            converted[QKV_BIAS.format(i=i)] = torch.cat([tensor, torch.zeros_like(v_bias), v_bias])
        elif re.match(r"^visual_encoder\.blocks\.\d+\.attn\.v_bias$", key) or DROPPED.search(key):
            continue
        elif (new_key := _rename(key, to_lavis=False)) is not None:
            converted[new_key] = tensor
        else:
            unknown.append(key)
    return converted, unknown


def transformers_to_lavis(state_dict: dict) -> dict:
    """The inverse renaming (used to test the converter and to hand weights back to LAVIS users)."""
    exported = {}
    for key, tensor in state_dict.items():
        layer = re.match(r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.bias$", key)
        if layer:
            q_bias, _, v_bias = tensor.chunk(3)
            exported[Q_BIAS.format(i=layer.group(1))] = q_bias
            exported[V_BIAS.format(i=layer.group(1))] = v_bias
        else:
            exported[_rename(key, to_lavis=True)] = tensor
    return exported


def load_lavis_state_dict(path: str | Path, trust_pickle: bool = False) -> dict:
    """Reads a LAVIS checkpoint with `weights_only=True` unless the caller trusts the file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except FileNotFoundError:
        raise EmoVITInputError(f"{path}: no such checkpoint file.") from None
    except pickle.UnpicklingError:
        raise EmoVITInputError(
            f"{path}: the checkpoint pickles Python objects (the original EmoVIT release pickled a whole LAVIS "
            f"module), which can run code when loaded; pass --trust-pickle (trust_pickle=True) only if you trust "
            f"where the file came from."
        ) from None
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.state_dict()
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), (dict, torch.nn.Module)):
        model = checkpoint["model"]
        return model.state_dict() if isinstance(model, torch.nn.Module) else model
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise EmoVITInputError(f"{path}: expected a LAVIS checkpoint (a state dict, or a dict with a 'model' entry).")


def convert_lavis_checkpoint(lavis_path, base, out, trust_pickle: bool = False) -> dict[str, int]:
    """Overlays a LAVIS checkpoint on an InstructBLIP base and saves an EmoVIT folder.

    LAVIS saves only the trained parameters (Q-Former, query tokens, projection); the frozen ones come from `base`.
    Returns counts: `{"converted": n, "from_base": m}`.
    """
    converted, unknown = lavis_to_transformers(load_lavis_state_dict(lavis_path, trust_pickle))
    if unknown:
        raise EmoVITInputError(
            f"{lavis_path}: {len(unknown)} keys are not blip2_vicuna_instruct weights (first: {unknown[:3]})."
        )
    model = EmoVITForConditionalGeneration.from_pretrained(base)
    expected = model.state_dict()
    for key, tensor in converted.items():
        if key not in expected or expected[key].shape != tensor.shape:
            found = tuple(expected[key].shape) if key in expected else "no such weight"
            raise EmoVITInputError(
                f"{lavis_path}: weight {key} has shape {tuple(tensor.shape)} but the base {base} has {found}; "
                f"convert with the InstructBLIP base the checkpoint was trained from."
            )
    model.load_state_dict(converted, strict=False)
    model.save_pretrained(out)
    EmoVITProcessor.from_pretrained(base).save_pretrained(out)
    return {"converted": len(converted), "from_base": len(expected) - len(converted)}
