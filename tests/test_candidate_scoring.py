"""The candidate scorer: batched scores equal one full forward per candidate, whatever the strategy, and the LM runs
twice per batch whatever the number of candidates."""

import pytest
import torch
from PIL import Image

from modeling_emovit.labels import categorical_answer, emovit_instruction, label_space_labels
from modeling_emovit.candidate_scoring import STRATEGIES, candidate_log_likelihoods, split_common_prefix
from modeling_emovit.testing import tiny_emovit

IMAGES = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 90, 200), (30, 200, 40))]
# Labels whose answers tokenize to different lengths (the tiny BPE knows Mikels' words, not these), so candidates
# differ in length and some share more than the answer prefix.
LABELS = ["awe", "anger", "zest", "irritability", "cheerfulness", "sympathy"]


def one_forward_per_candidate(model, processor, image, prompt, answer_ids) -> float:
    """The plain way, as `generate` sees the text: [image][prompt] from the processor, the answer appended, one
    forward, the answer tokens' log-probabilities summed (T5: the answer is the decoder's labels)."""
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    answer = torch.tensor([answer_ids])
    if model.config.use_decoder_only_language_model:
        prompt_length = inputs["input_ids"].shape[1]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], answer], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        logits = model(**inputs).logits[0, prompt_length - 1:-1]
    else:
        logits = model(**inputs, labels=answer).logits[0]
    return float(logits.double().log_softmax(-1).gather(-1, answer.T).sum())


@pytest.mark.parametrize("text_model", ["llama", "opt", "t5"])
def test_batched_candidate_scores_equal_one_forward_per_candidate(text_model):
    model, processor = tiny_emovit(text_model, seed=1)
    model.double()  # float64 on both sides: any difference above 1e-5 is a wrong mask, position or cache
    prompt = emovit_instruction(LABELS)
    answers = processor.encode_answers([categorical_answer(label) for label in LABELS])
    assert len({len(a) for a in answers}) > 1
    inputs = processor(images=IMAGES, text=[prompt] * len(IMAGES), return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].double()
    with torch.no_grad():
        reference = torch.tensor([[one_forward_per_candidate(model, processor, image, prompt, a) for a in answers]
                                  for image in IMAGES], dtype=torch.float64)

    for strategy in STRATEGIES:
        batched = candidate_log_likelihoods(model, dict(inputs), answers, strategy=strategy)
        assert batched.shape == (len(IMAGES), len(LABELS))
        assert batched.dtype == torch.float64  # the model's own precision, not rounded to float32
        torch.testing.assert_close(batched, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_language_model_runs_twice_per_batch_whatever_the_number_of_candidates(strategy):
    model, processor = tiny_emovit("llama", seed=0)
    calls = []
    model.language_model.register_forward_hook(lambda module, args, output: calls.append(1))
    for space in ("emoset", "webemo-25"):
        labels = label_space_labels(space)
        inputs = processor(images=IMAGES, text=[emovit_instruction(labels)] * len(IMAGES), return_tensors="pt")
        answers = processor.encode_answers([categorical_answer(label) for label in labels])
        calls.clear()
        scores = candidate_log_likelihoods(model, dict(inputs), answers, strategy=strategy)
        assert scores.shape == (len(IMAGES), len(labels)) and len(calls) == 2  # the prefix, then every candidate


def test_common_answer_tokens_join_the_prefix_and_every_candidate_keeps_its_own():
    assert split_common_prefix([[5, 6, 7, 2], [5, 6, 8, 2], [5, 6, 7, 9, 2]]) == ([5, 6], [[7, 2], [8, 2], [7, 9, 2]])
    assert split_common_prefix([[5, 2], [5, 6, 2]]) == ([5], [[2], [6, 2]])  # a candidate that prefixes another
    with pytest.raises(ValueError, match="distinct"):
        split_common_prefix([[5, 2], [5, 2]])


def test_rows_with_different_prompts_are_refused():
    model, processor = tiny_emovit("llama", seed=0)
    inputs = processor(images=IMAGES[:2], text=["What emotion?", "Which emotion is it?"], return_tensors="pt",
                       padding=True)
    with pytest.raises(ValueError, match="same unpadded token sequence"):
        candidate_log_likelihoods(model, dict(inputs), [[5, 2], [6, 2]])
