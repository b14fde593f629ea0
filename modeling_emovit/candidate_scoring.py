"""Candidate log-likelihoods over a shared prefix: the one scorer behind `emovit eval --mode rank`, the
image-emotion-classification pipeline and `emovit serve`'s emotion endpoint.

A candidate's score is the sum, over its answer tokens (end-of-sequence included), of log p(token | prefix, the
candidate's earlier tokens). The prefix ([image][instruction] for a decoder-only LM; the encoder input for T5) is the
same token sequence in every row of a batch, the rows differing only in their images. Two forwards per batch,
whatever the number of candidates:
1. the answer tokens every candidate starts with ("Predict emotion:") join the prefix, which runs once per image;
2. the candidates' own tokens then run in one more forward over the prefix's KV cache, either
   - `"packed"` (decoder-only): all candidates of an image in one row, with a block attention mask (each token sees
     the prefix and its own candidate's earlier tokens) and explicit position ids, so the cache is never copied; or
   - `"expanded"`: the cache repeated once per candidate, one short row per (image, candidate); the only way for T5,
     whose relative position bias cannot be given explicit positions.

Model-agnostic where cheap: `prefix_inputs` is whatever `model(**prefix_inputs)` takes, `candidates` are token ids,
and `language_model` is the module that continues from the cache (EmoVIT/InstructBLIP: `model.language_model`; a
VLM whose forward runs without images can pass itself).
"""

from collections.abc import Sequence

import torch

STRATEGIES = ("packed", "expanded")
DEFAULT_STRATEGY = "packed"  # faster at 8 and 25 labels (benchmarks/bench_eval.py)


def split_common_prefix(candidates: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """(tokens every candidate starts with, each candidate's remaining tokens); every remainder keeps >= 1 token."""
    candidates = [list(c) for c in candidates]
    if len({tuple(c) for c in candidates}) != len(candidates) or not all(candidates):
        raise ValueError("Candidate answers must be distinct and non-empty token sequences.")
    common = 0
    shortest = min(map(len, candidates))
    while common < shortest - 1 and len({c[common] for c in candidates}) == 1:
        common += 1
    return candidates[0][:common], [c[common:] for c in candidates]


@torch.no_grad()
def candidate_log_likelihoods(
    model, prefix_inputs: dict, candidates: Sequence[Sequence[int]], language_model=None, strategy: str = DEFAULT_STRATEGY
) -> torch.Tensor:
    """`(batch, num_candidates)` log-likelihoods (float32 or wider) of each candidate after the shared prefix.

    prefix_inputs: `model`'s inputs for the prefix, `input_ids` `(batch, prefix_len)` identical in every row (an
        `attention_mask`, if given, must be all ones), plus the images (`pixel_values`, ...).
    candidates: one token-id list per candidate answer, each ending with the end-of-sequence token.
    language_model: continues from the cache; default `model.language_model`. Encoder-decoder LMs (T5) always use
        the expanded strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}.")
    language_model = language_model if language_model is not None else model.language_model
    input_ids, mask = prefix_inputs["input_ids"], prefix_inputs.get("attention_mask")
    if (mask is not None and not bool(mask.all())) or not bool((input_ids == input_ids[:1]).all()):
        raise ValueError("The prefix must be the same unpadded token sequence in every row (images may differ).")
    common, suffixes = split_common_prefix(candidates)
    encoder_decoder = bool(getattr(language_model.config, "is_encoder_decoder", False))
    common_score, first, cache, lm_outputs = _prefix(model, language_model, prefix_inputs, common, encoder_decoder)
    rows = (len(input_ids), input_ids.device)  # each image's row, where the scores are computed
    if encoder_decoder:
        rest = _expanded(language_model, cache, suffixes, rows, lm_outputs.encoder_last_hidden_state)
    elif strategy == "packed":
        rest = _packed(language_model, cache, suffixes, cache.get_seq_length(), rows)
    else:
        rest = _expanded(language_model, cache, suffixes, rows)
    first_tokens = torch.tensor([s[0] for s in suffixes], device=input_ids.device)
    return common_score[:, None] + first[:, first_tokens] + rest


def _prefix(model, language_model, prefix_inputs: dict, common: list[int], encoder_decoder: bool):
    """One forward over the prefix and the common answer tokens: (their log-likelihood `(batch,)`, log-probs of each
    candidate's first own token `(batch, vocab)`, the KV cache, the LM's outputs)."""
    input_ids, mask = prefix_inputs["input_ids"], prefix_inputs.get("attention_mask")
    common_ids = torch.tensor(common, dtype=torch.long, device=input_ids.device).expand(len(input_ids), -1)
    if encoder_decoder:
        start = torch.full((len(input_ids), 1), language_model.config.decoder_start_token_id, device=input_ids.device)
        outputs = model(**prefix_inputs, decoder_input_ids=torch.cat([start, common_ids], dim=1), use_cache=True)
    else:
        extended = {**prefix_inputs, "input_ids": torch.cat([input_ids, common_ids], dim=1)}
        if mask is not None:
            extended["attention_mask"] = torch.ones_like(extended["input_ids"])
        outputs = model(**extended, use_cache=True, logits_to_keep=len(common) + 1)
    # The last len(common) + 1 positions predict the common tokens, then each candidate's first own token.
    log_probs = _log_softmax(outputs.logits[:, -(len(common) + 1):])
    common_score = log_probs[:, :-1].gather(-1, common_ids.unsqueeze(-1)).sum((1, 2))
    cache, lm_outputs = _cache_and_lm_outputs(outputs)
    return common_score, log_probs[:, -1], cache, lm_outputs


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Over the vocabulary, in float32 at least (bf16/fp16 logits lose the small differences between answers)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(dim=-1)


def _cache_and_lm_outputs(outputs):
    """The KV cache and the LM's own outputs, from a VLM output (`language_model_outputs`) or an LM output."""
    lm_outputs = getattr(outputs, "language_model_outputs", None) or outputs
    return lm_outputs.cache, lm_outputs


def _packed(language_model, cache, suffixes: list[list[int]], prefix_length: int, rows: tuple) -> torch.Tensor:
    """`(batch, C)`: log p of every suffix token after the first, all candidates packed into one row per image
    (`rows`: (batch, device)). A candidate's last token predicts nothing and no other token sees it, so it is not
    fed."""
    batch, device = rows
    fed = [(c, t) for c, s in enumerate(suffixes) for t in range(len(s) - 1)]  # (candidate, step) of each token
    scores = torch.zeros(batch, len(suffixes), device=device)
    if not fed:  # single-token suffixes: the prefix forward scored everything
        return scores
    owner = torch.tensor([c for c, _ in fed], device=device)  # (T,) candidate of each packed token
    step = torch.tensor([t for _, t in fed], device=device)  # (T,) position within its candidate
    tokens = torch.tensor([suffixes[c][t] for c, t in fed], device=device)
    targets = torch.tensor([suffixes[c][t + 1] for c, t in fed], device=device)  # what each packed token predicts
    dtype = language_model.dtype
    sees = (owner[:, None] == owner[None, :]) & (step[:, None] >= step[None, :])  # (T, T) block-causal
    sees = torch.cat([sees.new_ones(len(fed), prefix_length), sees], dim=1)
    blocked = torch.zeros(sees.shape, dtype=dtype, device=device).masked_fill(~sees, torch.finfo(dtype).min)
    logits = language_model(
        input_ids=tokens.expand(batch, -1),
        attention_mask=blocked.expand(batch, 1, -1, -1),
        position_ids=(prefix_length + step).expand(batch, -1),
        cache=cache,
    ).logits  # (batch, T, vocab)
    token_scores = _log_softmax(logits).gather(-1, targets.expand(batch, -1).unsqueeze(-1)).squeeze(-1)
    return scores.to(token_scores.dtype).index_add_(1, owner, token_scores)


def _expanded(language_model, cache, suffixes: list[list[int]], rows: tuple, encoder_states=None) -> torch.Tensor:
    """`(batch, C)`: log p of every suffix token after the first, one row per (image, candidate) over a repeated
    cache (image-major: image b's candidates are rows b*C .. b*C + C-1; `rows`: (batch, device))."""
    count, width = len(suffixes), max(map(len, suffixes))
    batch, device = rows
    if width == 1:
        return torch.zeros(batch, count, device=device)
    padded = torch.tensor([s + [s[-1]] * (width - len(s)) for s in suffixes], device=device)  # right-padded (C, W)
    cache.batch_repeat_interleave(count)
    kwargs = {}
    if encoder_states is not None:
        kwargs["encoder_outputs"] = (encoder_states.repeat_interleave(count, dim=0),)
    ids_key = "decoder_input_ids" if encoder_states is not None else "input_ids"
    logits = language_model(**{ids_key: padded[:, :-1].repeat(batch, 1)}, cache=cache, **kwargs).logits
    targets = padded[:, 1:].repeat(batch, 1)
    token_scores = _log_softmax(logits).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B*C, W-1)
    lengths = torch.tensor([len(s) for s in suffixes], device=device).repeat(batch)
    real = torch.arange(width - 1, device=device) < (lengths[:, None] - 1)
    return (token_scores * real).sum(-1).view(batch, count)
