"""LAVIS-shaped checkpoints for the converter's tests, written from LAVIS's own module layout.

The key names are those of LAVIS's module definitions: `fixtures/lavis_keys.json` lists them (its `source` field says
how they were produced from `eva_vit.py`, `Qformer.py`, `modeling_llama.py` and `modeling_t5.py`), and the tests
check that every file written here has exactly those names. The tensors come from a tiny transformers model, read
module by module (LAVIS's EVA block `attn.q_bias` is the first third of transformers' fused `qkv.bias`, and so on),
never through the converter, so a wrong name in the converter cannot hide behind its own inverse.
"""

import json
import re
from pathlib import Path

import torch

KEYS = json.loads((Path(__file__).parent / "fixtures" / "lavis_keys.json").read_text())


def key_patterns(state_dict: dict) -> list[str]:
    """Layer indices written as N, as in `fixtures/lavis_keys.json`."""
    return sorted({re.sub(r"\.\d+\.", ".N.", key) for key in state_dict})


def _parameters(prefix: str, modules: dict) -> dict:
    """`{prefix + name + ".weight"/".bias": tensor}` for each named module (Linear, LayerNorm, Embedding, Conv2d)."""
    out = {}
    for name, module in modules.items():
        for kind in ("weight", "bias"):
            if getattr(module, kind, None) is not None:
                out[f"{prefix}{name}.{kind}"] = getattr(module, kind).detach().clone()
    return out


def _eva_vit(vision) -> dict:
    """LAVIS `eva_vit.VisionTransformer` (`visual_encoder.*`) and `Blip2Base.ln_vision`."""
    out = {
        "visual_encoder.cls_token": vision.embeddings.class_embedding.detach().clone(),
        "visual_encoder.pos_embed": vision.embeddings.position_embedding.detach().clone(),
        **_parameters("visual_encoder.", {"patch_embed.proj": vision.embeddings.patch_embedding}),
        **_parameters("", {"ln_vision": vision.post_layernorm}),
    }
    for i, block in enumerate(vision.encoder.layers):
        prefix = f"visual_encoder.blocks.{i}."
        out |= _parameters(prefix, {"norm1": block.layer_norm1, "norm2": block.layer_norm2, "attn.proj": block.self_attn.projection,
                                    "mlp.fc1": block.mlp.fc1, "mlp.fc2": block.mlp.fc2})
        out[prefix + "attn.qkv.weight"] = block.self_attn.qkv.weight.detach().clone()  # EVA's qkv Linear has no bias
        q_bias, _, v_bias = block.self_attn.qkv.bias.detach().clone().chunk(3)
        out[prefix + "attn.q_bias"], out[prefix + "attn.v_bias"] = q_bias, v_bias
    return out


def _qformer(qformer) -> dict:
    """LAVIS `Qformer.BertLMHeadModel` under `Qformer.bert.` (no pooler; `cls` is None in the instruct models)."""
    embeddings = qformer.embeddings
    out = _parameters("Qformer.bert.embeddings.", {"word_embeddings": embeddings.word_embeddings,
                                                   "position_embeddings": embeddings.position_embeddings,
                                                   "LayerNorm": embeddings.layernorm})
    positions = embeddings.position_embeddings.weight.shape[0]
    out["Qformer.bert.embeddings.position_ids"] = torch.arange(positions).expand((1, -1))  # a persistent buffer in LAVIS
    for i, layer in enumerate(qformer.encoder.layer):
        modules = {
            "attention.self.query": layer.attention.attention.query, "attention.self.key": layer.attention.attention.key,
            "attention.self.value": layer.attention.attention.value, "attention.output.dense": layer.attention.output.dense,
            "attention.output.LayerNorm": layer.attention.output.LayerNorm, "intermediate.dense": layer.intermediate.dense,
            "output.dense": layer.output.dense, "output.LayerNorm": layer.output.LayerNorm,
            "intermediate_query.dense": layer.intermediate_query.dense, "output_query.dense": layer.output_query.dense,
            "output_query.LayerNorm": layer.output_query.LayerNorm,
        }
        if layer.has_cross_attention:  # LAVIS: layer_num % cross_attention_freq == 0
            cross = layer.crossattention
            modules |= {"crossattention.self.query": cross.attention.query, "crossattention.self.key": cross.attention.key,
                        "crossattention.self.value": cross.attention.value, "crossattention.output.dense": cross.output.dense,
                        "crossattention.output.LayerNorm": cross.output.LayerNorm}
        out |= _parameters(f"Qformer.bert.encoder.layer.{i}.", modules)
    return out


def _language_model(model, lavis_model: str) -> dict:
    """LAVIS keeps the transformers LM under `llm_model.` / `t5_model.` (its modeling_llama / modeling_t5 are copies of
    transformers' files); its Llama copy also saves each layer's rotary `inv_freq` buffer."""
    lm, prefix = model.language_model, "llm_model." if lavis_model == "blip2_vicuna_instruct" else "t5_model."
    out = {prefix + key: tensor.detach().clone() for key, tensor in lm.state_dict().items()}
    if lavis_model == "blip2_vicuna_instruct":
        inv_freq = lm.model.rotary_emb.inv_freq.detach().clone()
        for i in range(len(lm.model.layers)):
            out[f"llm_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv_freq
    projection = "llm_proj" if lavis_model == "blip2_vicuna_instruct" else "t5_proj"
    return out | _parameters("", {projection: model.language_projection})


def lavis_state_dict(model, lavis_model: str) -> dict:
    """Every key of a LAVIS `blip2_vicuna_instruct` / `blip2_t5_instruct` module (`module.state_dict()`)."""
    return {**_eva_vit(model.vision_model), **_qformer(model.qformer), "query_tokens": model.query_tokens.detach().clone(),
            **_language_model(model, lavis_model)}


def saved_by_save_checkpoint(state_dict: dict, lavis_model: str) -> dict:
    """What LAVIS `runner_base._save_checkpoint` keeps: it deletes the keys of frozen parameters (the ViT and the LM
    are frozen; T5's `encoder/decoder.embed_tokens` alias `shared`, so `named_parameters` never names them) and keeps
    every other key, buffers included."""
    aliases = {"t5_model.encoder.embed_tokens.weight", "t5_model.decoder.embed_tokens.weight"}
    buffers = re.compile(r"position_ids$|inv_freq$")

    def frozen_parameter(key: str) -> bool:
        return (key.startswith(("visual_encoder.", "llm_model.", "t5_model."))
                and key not in aliases and not buffers.search(key))

    return {key: tensor for key, tensor in state_dict.items() if not frozen_parameter(key)}


def zero_k_bias(model) -> None:
    """EVA's attention has no key bias: make a transformers model one that LAVIS could have produced."""
    with torch.no_grad():
        for layer in model.vision_model.encoder.layers:
            layer.self_attn.qkv.bias.view(3, -1)[1].zero_()
