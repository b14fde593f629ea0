"""Converting LAVIS InstructBLIP checkpoints (the original EmoVIT release) to transformers folders.

Flow: LAVIS `.pth` -> `load_lavis_state_dict` -> `lavis_to_transformers` (renamed, q/v biases fused, buffers dropped)
-> overlaid on an InstructBLIP base -> EmoVIT folder. Two LAVIS models are read: `blip2_vicuna_instruct` (what the
release trained; `llm_proj`, `llm_model`) onto an InstructBLIP-Vicuna base, and `blip2_t5_instruct` (`t5_proj`,
`t5_model`) onto an InstructBLIP-Flan-T5 base. Two kinds of file occur:
- LAVIS `runner_base._save_checkpoint`: `{"model": state_dict, "optimizer", "config", "scaler", "epoch"}`, where the
  state dict lost its frozen *parameters* but kept every *buffer* and alias: the trained `ln_vision`, Q-Former, query
  tokens and projection, plus `Qformer.bert.embeddings.position_ids`, each Vicuna layer's `rotary_emb.inv_freq`, and
  T5's `encoder/decoder.embed_tokens` (aliases of the frozen `shared` embedding, so `named_parameters` misses them);
- the EmoVIT release's `torch.save(self.model, 'model.pth')`: a whole pickled module, every key (`module.` first
  when saved under DDP). Unpickling it imports LAVIS, which does not import under transformers 5: such a file is
  refused with the command that re-saves its state dict where LAVIS runs (`RESAVE_SNIPPET`).
The renaming follows transformers' `convert_instructblip_original_to_pytorch.py`. Buffers that transformers
recomputes (and no longer saves) are dropped and counted; whatever the checkpoint lacks comes from the base, and the
summary says which trained modules came from where.
"""

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import EmoVITInputError, reading
from .modeling_emovit import EmoVITForConditionalGeneration
from .processing_emovit import EmoVITProcessor

# (LAVIS prefix, transformers prefix), first match wins; `{i}` is a layer index.
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
    ("t5_proj.", "language_projection."),
    ("t5_model.", "language_model."),
]
# LAVIS' EVA ViT keeps separate q and v biases (k has none); transformers holds one qkv bias.
QV_BIAS = re.compile(r"^visual_encoder\.blocks\.(\d+)\.attn\.([qv])_bias$")
QKV_BIAS = "vision_model.encoder.layers.{i}.self_attn.qkv.bias"
# Saved by LAVIS, recomputed by transformers (non-persistent buffers there): dropped, counted.
RECOMPUTED_BUFFERS = re.compile(r"^Qformer\.bert\.embeddings\.position_ids$|\.rotary_emb\.inv_freq$")
# The Q-Former's MLM head: in BLIP-2 checkpoints, unused by InstructBLIP (its instruct models set `Qformer.cls = None`).
UNUSED_HEAD = re.compile(r"^Qformer\.cls\.")
# What EmoVIT trains (LAVIS names in brackets): the summary says whether each came from the checkpoint or the base.
TRAINED_MODULES = {
    "vision_model.post_layernorm": "ln_vision",
    "qformer": "Q-Former",
    "query_tokens": "query tokens",
    "language_projection": "projection",
}
# Frozen LM embeddings whose vocabulary transformers' InstructBLIP may have grown (its `<image>` token).
VOCABULARY_MATRICES = re.compile(
    r"^language_model\.(model\.embed_tokens|lm_head|shared|encoder\.embed_tokens|decoder\.embed_tokens)\.weight$"
)
# LAVIS model -> (the prefix of its LM keys, whether its LM is decoder-only).
LANGUAGE_MODELS = {"blip2_vicuna_instruct": ("llm_", True), "blip2_t5_instruct": ("t5_", False)}
# Run where LAVIS imports: the release's `torch.save(self.model, "model.pth")` pickled the bare LAVIS module (one
# process, no DDP wrapper), whose state dict is plain tensors, which `emovit convert` reads without --trust-pickle.
RESAVE_SNIPPET = (
    'python -c "import torch; torch.save(torch.load(\'{path}\', map_location=\'cpu\', weights_only=False)'
    '.state_dict(), \'model_state_dict.pth\')"'
)


@dataclass
class LavisWeights:
    """A LAVIS state dict in transformers names: `weights`, keys `dropped` by reason, keys with no counterpart, and
    the LAVIS model its language-model keys belong to (None when it has none)."""

    weights: dict = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    lavis_model: str | None = None

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(re.escape("{i}"), r"(\d+)"))


_PATTERNS = [(_pattern(lavis), hf) for lavis, hf in KEY_TEMPLATES]


def _rename(key: str) -> str | None:
    for pattern, target in _PATTERNS:
        match = pattern.match(key)
        if match:
            prefix = target.replace("{i}", match.group(1)) if match.groups() else target
            return prefix + key[match.end():]
    return None


def _strip_ddp_prefix(state_dict: dict) -> dict:
    """A module saved while wrapped in DistributedDataParallel has every key under `module.`."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: tensor for key, tensor in state_dict.items()}
    return state_dict


def _fused_qkv_biases(state_dict: dict, source: str) -> dict[str, torch.Tensor]:
    """`qkv.bias = cat(q_bias, 0, v_bias)` per ViT block; a block with only one of the two is refused."""
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        match = QV_BIAS.match(key)
        if match:
            halves.setdefault(match.group(1), {})[match.group(2)] = tensor
    fused = {}
    for block, pair in halves.items():
        if len(pair) != 2:
            have, lacks = ("q", "v") if "q" in pair else ("v", "q")
            raise EmoVITInputError(
                f"{source}: visual_encoder.blocks.{block}.attn.{have}_bias is there but "
                f"visual_encoder.blocks.{block}.attn.{lacks}_bias is missing; the checkpoint is incomplete."
            )
        fused[QKV_BIAS.format(i=block)] = torch.cat([pair["q"], torch.zeros_like(pair["v"]), pair["v"]])
    return fused


def _lavis_model(state_dict: dict, source: str) -> str | None:
    """`blip2_vicuna_instruct` or `blip2_t5_instruct`, from the prefix of the language-model keys."""
    found = [name for name, (prefix, _) in LANGUAGE_MODELS.items() if any(key.startswith(prefix) for key in state_dict)]
    if len(found) > 1:
        raise EmoVITInputError(f"{source}: the checkpoint mixes llm_* (Vicuna) and t5_* (Flan-T5) keys.")
    return found[0] if found else None


def lavis_to_transformers(state_dict: dict, source: str = "the checkpoint") -> LavisWeights:
    """Renames a LAVIS state dict to transformers names (`source` names the file in error messages)."""
    state_dict = _strip_ddp_prefix(state_dict)
    result = LavisWeights(weights=_fused_qkv_biases(state_dict, source), lavis_model=_lavis_model(state_dict, source))
    for key, tensor in state_dict.items():
        if QV_BIAS.match(key):
            continue
        if RECOMPUTED_BUFFERS.search(key):
            result.drop("buffers transformers recomputes (position_ids, rotary inv_freq)")
        elif UNUSED_HEAD.match(key):
            result.drop("Q-Former MLM head, unused by InstructBLIP")
        elif (new_key := _rename(key)) is not None:
            result.weights[new_key] = tensor
        else:
            result.unknown.append(key)
    return result


def load_lavis_state_dict(path: str | Path, trust_pickle: bool = False) -> dict:
    """Reads a LAVIS checkpoint with `weights_only=True` unless the caller trusts the file."""
    # What torch's readers raise for an empty, truncated or foreign file (with weights_only=True, an unpickling
    # error means a pickled object: refused below).
    unreadable = (RuntimeError, EOFError, KeyError) + ((pickle.UnpicklingError,) if trust_pickle else ())
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except FileNotFoundError:
        raise EmoVITInputError(f"{path}: no such checkpoint file.") from None
    except unreadable as error:
        detail = " ".join(str(error).split()).split(". ")[0]
        raise EmoVITInputError(
            f"{path}: not a readable PyTorch checkpoint (empty, truncated or another format: "
            f"{type(error).__name__}{': ' + detail if detail else ''})."
        ) from None
    except pickle.UnpicklingError:
        raise EmoVITInputError(
            f"{path}: the checkpoint pickles Python objects (the original EmoVIT release pickled a whole LAVIS "
            f"module), which can run code when loaded; pass --trust-pickle (trust_pickle=True) only if you trust "
            f"where the file came from."
        ) from None
    except ImportError as error:  # ModuleNotFoundError included: the pickle names classes this environment lacks
        raise EmoVITInputError(
            f"{path}: the file is a whole pickled module whose classes do not import here ({type(error).__name__}: "
            f"{error}; LAVIS's own Qformer.py needs names transformers 5 removed), so re-save its state dict in a "
            f"LAVIS environment with `{RESAVE_SNIPPET.format(path=path)}` and convert that file (docs/fidelity.md)."
        ) from None
    if isinstance(checkpoint, torch.nn.Module):
        return checkpoint.state_dict()
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), (dict, torch.nn.Module)):
        model = checkpoint["model"]
        return model.state_dict() if isinstance(model, torch.nn.Module) else model
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise EmoVITInputError(f"{path}: expected a LAVIS checkpoint (a state dict, or a dict with a 'model' entry).")


def _check_language_model(lavis_model: str | None, model, path, base) -> None:
    """A Vicuna checkpoint needs a decoder-only base, a Flan-T5 one an encoder-decoder base."""
    if lavis_model is None:
        return
    prefix, decoder_only = LANGUAGE_MODELS[lavis_model]
    if model.config.use_decoder_only_language_model != decoder_only:
        has = "an encoder-decoder (Flan-T5)" if decoder_only else "a decoder-only (Vicuna/OPT)"
        wanted = "InstructBLIP-Vicuna" if decoder_only else "InstructBLIP-Flan-T5"
        raise EmoVITInputError(
            f"{path}: a LAVIS {lavis_model} checkpoint ({prefix}proj), but the base {base} has {has} language "
            f"model; convert with an {wanted} base."
        )


def _fit(key: str, tensor: torch.Tensor, expected: dict, path, base) -> tuple[torch.Tensor, bool]:
    """The tensor to load for `key`; a frozen LM embedding with fewer vocabulary rows than the base keeps the base's
    extra rows (transformers' InstructBLIP adds an `<image>` token). Returns (tensor, rows were added)."""
    target = expected.get(key)
    if target is not None and target.shape == tensor.shape:
        return tensor, False
    if (target is not None and VOCABULARY_MATRICES.match(key) and tensor.dim() == 2
            and tensor.shape[1] == target.shape[1] and tensor.shape[0] < target.shape[0]):
        grown = target.clone()
        grown[: tensor.shape[0]] = tensor.to(target.dtype)
        return grown, True
    found = tuple(target.shape) if target is not None else "no such weight"
    raise EmoVITInputError(
        f"{path}: weight {key} has shape {tuple(tensor.shape)} but the base {base} has {found}; "
        f"convert with the InstructBLIP base the checkpoint was trained from."
    )


def _module_sources(converted: dict, expected: dict) -> dict[str, str]:
    """For each trained module: "checkpoint", "base", or "partly (n of m tensors from the checkpoint)"."""
    sources = {}
    for prefix, name in TRAINED_MODULES.items():
        keys = [key for key in expected if key == prefix or key.startswith(prefix + ".")]
        found = sum(key in converted for key in keys)
        sources[name] = "checkpoint" if found == len(keys) else "base" if found == 0 else (
            f"partly ({found} of {len(keys)} tensors from the checkpoint)"
        )
    return sources


def convert_lavis_checkpoint(lavis_path, base, out, trust_pickle: bool = False) -> dict:
    """Overlays a LAVIS checkpoint on an InstructBLIP base and saves an EmoVIT folder; returns the summary.

    Summary: `converted` / `from_base` (state-dict tensors), `dropped` (reason -> count), `trained_modules` (module
    -> "checkpoint" | "base" | "partly ..."), `vocabulary_rows_from_base` (LM matrices whose extra rows the base gave).
    """
    lavis = lavis_to_transformers(load_lavis_state_dict(lavis_path, trust_pickle), str(lavis_path))
    if lavis.unknown:
        raise EmoVITInputError(
            f"{lavis_path}: {len(lavis.unknown)} keys are not LAVIS blip2_vicuna_instruct/blip2_t5_instruct weights "
            f"(first: {lavis.unknown[:3]})."
        )
    with reading(f"--base {base}"):
        model = EmoVITForConditionalGeneration.from_pretrained(base)
    _check_language_model(lavis.lavis_model, model, lavis_path, base)
    expected = model.state_dict()
    weights, grown = {}, []
    for key, tensor in lavis.weights.items():
        weights[key], added_rows = _fit(key, tensor, expected, lavis_path, base)
        if added_rows:
            grown.append(key)
    model.load_state_dict(weights, strict=False)
    with reading(f"--base {base}"):
        processor = EmoVITProcessor.from_pretrained(base)  # before anything is written to `out`
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {
        "converted": len(weights),
        "from_base": len(expected) - len(weights),
        "dropped": dict(lavis.dropped),
        "trained_modules": _module_sources(weights, expected),
        "vocabulary_rows_from_base": grown,
    }
