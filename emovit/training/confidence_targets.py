"""Per-image confidences for the cold start to state, measured on the model itself by sampling its answers.

A cold start whose answers state fixed numbers teaches one confidence for every image: nothing in the data says
which images the model gets wrong, and under greedy decoding every model so trained in `benchmarks/RESULTS.md`
stated a single number for all 200 test images. Here the partly cold-started model answers each image `samples`
times, as GRPO samples it (same temperature and completion budget), and the share of right answers becomes the
confidence that image's cold-start answer states for the rest of the cold start. The share is smoothed by Laplace's
rule of succession, (right + 1) / (samples + 2), so that four samples never state 0 or 1, and rounded to one
decimal, the form the answers already use. GRPO's Brier-style confidence reward can then refine numbers that differ
by image instead of having to create them; at the tiny recipe's size they hardly differed, and ECE rose
(`RESULTS.md`). (Confidence targets read off the model's own sampled accuracy are a common way to teach a verbalised
confidence; the smoothing and the cold-start placement are this package's choices.)

With several processes, each samples its share of the images (`accelerate`'s `split_between_processes`) and every
process receives all of them (`gather_object`).
"""

from dataset_builder.reasoning_format import reasoning_instruction

from .rewards import accuracy_reward

COMPLETIONS_PER_CALL = 32  # one GRPO step's worth of the tiny recipe: images x samples per generate call


def sample_answers(adapter, images: list, labels: tuple[str, ...], samples: int, temperature: float,
                   max_new_tokens: int) -> list[list[str]]:
    """For each image, `samples` answers to the reasoning prompt over `labels`, sampled as GRPO samples them, in the
    order of `images`."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    question = reasoning_instruction(labels)
    per_call = max(1, COMPLETIONS_PER_CALL // samples)
    mine = []
    was_training = adapter.model.training
    adapter.model.eval()
    with PartialState().split_between_processes(list(range(len(images)))) as indices, torch.no_grad():
        for start in range(0, len(indices), per_call):
            chunk = [images[k] for k in indices[start:start + per_call] for _ in range(samples)]
            answers = adapter.generate(chunk, [question] * len(chunk), max_new_tokens=max_new_tokens,
                                       do_sample=True, temperature=temperature)
            mine.extend(answers[k:k + samples] for k in range(0, len(answers), samples))
    adapter.model.train(was_training)
    return gather_object(mine)  # in one process, `mine` as it is


def smoothed_share_right(answers: list[str], gold: str, labels: tuple[str, ...]) -> float:
    """(right + 1) / (answers + 2), to one decimal, "right" as GRPO's accuracy reward scores it: 1 right of 4 ->
    0.3, 4 of 4 -> 0.8, 0 of 4 -> 0.2."""
    right = sum(accuracy_reward(answers, [gold] * len(answers), [labels] * len(answers)))
    return round((right + 1) / (len(answers) + 2), 1)
