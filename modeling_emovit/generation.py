"""Greedy text from any image-text-to-text model: answers to instructions (evaluation) or captions (data).

One rule for every architecture: `generate` returns the prompt before the new tokens for decoder-only language
models and only the new tokens for encoder-decoder ones, so the prompt is cut off exactly when the output starts
with it.
"""

import torch


@torch.no_grad()
def generate_text(model, processor, images: list, prompts: list[str] | None = None, max_new_tokens: int = 30,
                  **generate_kwargs) -> list[str]:
    """Greedy text for each image (conditioned on its prompt when given), special tokens and prompt removed."""
    text = {"text": list(prompts), "padding": True} if prompts else {}
    inputs = processor(images=images, return_tensors="pt", **text).to(model.device)
    generate_kwargs.setdefault("do_sample", False)
    output_ids = model.generate(**inputs, max_new_tokens=max_new_tokens, **generate_kwargs)
    prompt_ids = inputs.get("input_ids")
    if prompt_ids is not None and output_ids.shape[1] > prompt_ids.shape[1] and torch.equal(
        output_ids[:, : prompt_ids.shape[1]], prompt_ids
    ):
        output_ids = output_ids[:, prompt_ids.shape[1]:]
    return [answer.strip() for answer in processor.batch_decode(output_ids, skip_special_tokens=True)]
