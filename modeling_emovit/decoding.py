"""Greedy decoding from model inputs: answers to instructions (evaluation, judged tasks) or captions (data), for
every backbone family (`backbone.BackboneAdapter.generate` builds the inputs, this module decodes).

One rule for every architecture: `generate` returns the prompt before the new tokens for decoder-only language
models and only the new tokens for encoder-decoder ones, so the prompt is cut off exactly when the output starts
with it.

`GENERATION_PRESETS["release"]` is the original EmoVIT release's decoding (its `blip2_vicuna_instruct.generate`
defaults): greedy (`num_beams=1`, `use_nucleus_sampling=False`), `max_length=256` and `min_length=1` (LAVIS passes
only `inputs_embeds`, so both count new tokens), `repetition_penalty=5.0`. Because LAVIS passes no prompt ids, its
penalty covers the generated tokens only, whereas transformers' InstructBLIP also penalises every prompt token
(the instruction, "Predict emotion:" included); `generated_repetition_penalty` reproduces LAVIS.
"""

import torch

# Keyword arguments of `BackboneAdapter.generate`, by preset name ("default": greedy, answer-length budget, no penalty).
GENERATION_PRESETS = {
    "default": {},
    "release": {"num_beams": 1, "max_new_tokens": 256, "min_new_tokens": 1, "generated_repetition_penalty": 5.0},
}


def _penalise_generated_tokens_only(model, inputs, penalty: float) -> list:
    """A repetition-penalty processor that skips the prompt (decoder-only LMs; a T5 decoder's ids are all new)."""
    from transformers import RepetitionPenaltyLogitsProcessor

    decoder_only = not model.config.get_text_config().is_encoder_decoder
    prompt_length = inputs["input_ids"].shape[1] if decoder_only and "input_ids" in inputs else 0
    return [RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=prompt_length)]


@torch.no_grad()
def generate_from_inputs(model, processor, inputs, max_new_tokens: int = 30,
                         generated_repetition_penalty: float | None = None, **generate_kwargs) -> list[str]:
    """Greedy text for each row of `inputs` (a batch from the processor), special tokens and prompt removed.

    `generated_repetition_penalty`: a repetition penalty over the generated tokens only (as LAVIS applies one).
    """
    generate_kwargs.setdefault("do_sample", False)
    if generated_repetition_penalty is not None:
        generate_kwargs["logits_processor"] = _penalise_generated_tokens_only(model, inputs, generated_repetition_penalty)
    output_ids = model.generate(**inputs, max_new_tokens=max_new_tokens, **generate_kwargs)
    prompt_ids = inputs.get("input_ids")
    if prompt_ids is not None and output_ids.shape[1] > prompt_ids.shape[1] and torch.equal(
        output_ids[:, : prompt_ids.shape[1]], prompt_ids
    ):
        output_ids = output_ids[:, prompt_ids.shape[1]:]
    return [answer.strip() for answer in processor.batch_decode(output_ids, skip_special_tokens=True)]
