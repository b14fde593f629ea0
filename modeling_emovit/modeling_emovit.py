"""EmoVIT models: InstructBLIP subclasses that differ only where EmoVIT needs them to.

What differs from transformers' InstructBLIP, and why:
- query tokens start from N(0, initializer_range) as in LAVIS `Blip2Base.init_Qformer` (transformers starts them at 0);
- the number of `<image>` placeholders is checked (the stock model silently drops surplus query outputs);
- `freeze_for_instruction_tuning()` applies EmoVIT's policy (Xie et al., CVPR 2024, Sec. 4.1, as LAVIS trains it):
  only the vision encoder's final LayerNorm (LAVIS `ln_vision`), the Q-Former, the query tokens and the language
  projection train;
- `image_embeds` (the frozen vision encoder's output before that trained LayerNorm) may replace `pixel_values`, for
  the vision-feature cache;
- `save_pretrained` also saves the image-emotion-classification pipeline (its code and `custom_pipelines`).
"""

import logging

import torch
from transformers import InstructBlipForConditionalGeneration, InstructBlipModel
from transformers import initialization as init
from transformers.models.instructblip.modeling_instructblip import BaseModelOutputWithVisionQformerOutputs

from .configuration_emovit import EmoVITConfig
from .errors import EmoVITInputError

logger = logging.getLogger(__name__)


class EmoVITMixin:
    """Behaviour shared by [`EmoVITModel`] and [`EmoVITForConditionalGeneration`]."""

    config_class = EmoVITConfig

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self:
            # LAVIS: query_tokens.data.normal_(mean=0.0, std=initializer_range)
            init.normal_(module.query_tokens, mean=0.0, std=self.config.qformer_config.initializer_range)

    def get_placeholder_mask(self, input_ids, inputs_embeds):
        """Positions of the `<image>` placeholders; exactly `num_query_tokens` of them per sequence."""
        mask = super().get_placeholder_mask(input_ids, inputs_embeds)
        per_sequence = mask[..., 0].sum(dim=-1)
        expected = self.config.num_query_tokens
        if bool((per_sequence != expected).any()):
            raise EmoVITInputError(
                f"input_ids hold {per_sequence.tolist()} <image> tokens per sequence but the model has "
                f"num_query_tokens={expected}; build inputs with the model's own processor (its num_query_tokens "
                f"must equal config.num_query_tokens)."
            )
        return mask

    def freeze_for_instruction_tuning(self) -> dict[str, int]:
        """Freezes everything but `config.trainable_modules` (dotted module paths; by default `ln_vision`, the
        Q-Former, the query tokens and the projection).

        Returns `{"trainable": n, "frozen": m, "total": n + m}`, counted in parameters (not tensors).
        """
        trainable = tuple(self.config.trainable_modules)
        counts = {"trainable": 0, "frozen": 0}
        for name, parameter in self.named_parameters():
            keep = any(name == module or name.startswith(module + ".") for module in trainable)
            parameter.requires_grad_(keep)
            counts["trainable" if keep else "frozen"] += parameter.numel()
        counts["total"] = counts["trainable"] + counts["frozen"]
        logger.info(
            "EmoVIT freezing policy: %s trainable (%s), %s frozen.",
            f"{counts['trainable']:,}", ", ".join(trainable), f"{counts['frozen']:,}",
        )
        return counts


class EmoVITModel(EmoVITMixin, InstructBlipModel):
    """InstructBLIP backbone (no LM head) with EmoVIT's initialisation, placeholder check and freezing policy."""

    config: EmoVITConfig

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """Also loads a generation checkpoint, whose decoder-only LM body sits under `language_model.model.`."""
        kwargs.setdefault("key_mapping", {r"^language_model\.model\.": "language_model."})
        return super().from_pretrained(*args, **kwargs)


class EmoVITForConditionalGeneration(EmoVITMixin, InstructBlipForConditionalGeneration):
    """EmoVIT: InstructBLIP instruction-tuned on emotion data.

    Inputs (as returned by [`EmoVITProcessor`]):
        pixel_values: `(batch, 3, image_size, image_size)`, or instead
        image_embeds: `(batch, num_patches + 1, vision_hidden)`, the frozen vision encoder's last hidden state
            before `vision_model.post_layernorm` (which trains, so it runs here: `vision_features_before_layernorm`);
        qformer_input_ids / qformer_attention_mask: `(batch, qformer_len)`, the instruction only;
        input_ids / attention_mask: `(batch, seq_len)`, `num_query_tokens` `<image>` tokens, then the text;
        labels: `(batch, seq_len)` for decoder-only LMs (-100 outside the answer), `(batch, target_len)` for T5.
    """

    config: EmoVITConfig

    def get_image_features(
        self,
        pixel_values: torch.Tensor | None = None,
        qformer_input_ids: torch.LongTensor | None = None,
        qformer_attention_mask: torch.LongTensor | None = None,
        interpolate_pos_encoding: bool | None = False,
        image_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithVisionQformerOutputs:
        """Vision encoder (when `image_embeds`, its pre-LayerNorm output, is given: only its trained final LayerNorm)
        -> Q-Former over the instruction -> projection.

        Adapted from transformers 5.24 `InstructBlipForConditionalGeneration.get_image_features`: the same steps, with
        the frozen part of the vision encoder made optional (a test checks both give equal features from pixels).
        Returns the parent's output type; `pooler_output` is `(batch, num_query_tokens, text_hidden)`.
        """
        if image_embeds is None:
            vision_outputs = self.vision_model(
                pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True
            )
            image_embeds = vision_outputs.last_hidden_state
        else:
            vision_outputs = None
            image_embeds = self.vision_model.post_layernorm(image_embeds)
        batch = image_embeds.shape[0]
        query_tokens = self.query_tokens.expand(batch, -1, -1)
        if qformer_attention_mask is None:
            qformer_attention_mask = torch.ones_like(qformer_input_ids)
        query_mask = torch.ones(query_tokens.shape[:-1], dtype=torch.long, device=image_embeds.device)
        qformer_outputs = self.qformer(
            input_ids=qformer_input_ids,
            attention_mask=torch.cat([query_mask, qformer_attention_mask.to(image_embeds.device)], dim=1),
            query_embeds=query_tokens,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device),
            return_dict=True,
        )
        query_output = qformer_outputs.last_hidden_state[:, : query_tokens.shape[1], :]
        return BaseModelOutputWithVisionQformerOutputs(
            last_hidden_state=image_embeds,
            pooler_output=self.language_projection(query_output),
            vision_outputs=vision_outputs,
            qformer_outputs=qformer_outputs,
        )

    def vision_features_before_layernorm(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, num_patches + 1, vision_hidden)`: the frozen vision encoder's output without its trained final
        LayerNorm, which is what the vision-feature cache stores (`image_embeds`)."""
        vision = self.vision_model
        return vision.encoder(inputs_embeds=vision.embeddings(pixel_values)).last_hidden_state

    def forward(self, pixel_values=None, qformer_input_ids=None, image_embeds=None, **kwargs):
        """InstructBLIP's forward; `image_embeds` (from the vision-feature cache) may replace `pixel_values`."""
        if image_embeds is not None:
            if pixel_values is not None:
                raise EmoVITInputError("Pass either pixel_values or image_embeds, not both.")
            features = self.get_image_features(
                qformer_input_ids=qformer_input_ids,
                qformer_attention_mask=kwargs.get("qformer_attention_mask"),
                image_embeds=image_embeds,
            )
            kwargs["mm_encoder_outputs"] = {"image": features}
        return super().forward(pixel_values=pixel_values, qformer_input_ids=qformer_input_ids, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' save, plus config.json's `custom_pipelines` entry for "image-emotion-classification": the
        relative import below makes transformers copy `pipeline_emovit.py` (and the scorer it imports) beside the
        weights, so `pipeline(..., trust_remote_code=True)` finds it."""
        from .pipeline_emovit import CUSTOM_PIPELINES

        self.config.custom_pipelines = {task: dict(entry) for task, entry in CUSTOM_PIPELINES.items()}
        return super().save_pretrained(save_directory, *args, **kwargs)


# save_pretrained copies this file (and its relative imports) beside the weights and records it in `auto_map`.
EmoVITModel.register_for_auto_class("AutoModel")
EmoVITForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
