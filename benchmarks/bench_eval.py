"""Benchmark of the two `emovit eval` modes: rank (both scorer strategies) vs generate, at 8 and 25 candidate labels.

    .venv/bin/python benchmarks/bench_eval.py [--steps 80] [--test-images 96] [--rounds 5] [--threads 1]

A small EmoVIT (size "small", Llama-style LM) is briefly fitted on two synthetic tasks, EmoSet's 8 emotions and
WEBEmo's 25, each class its own colour with noise, asked with EmoVIT's instruction listing that space's labels; so
generate mode writes whole answers ("Predict emotion: <label>" and end-of-sequence) for both, as a trained model
does. Its tokenizer is trained on both spaces' instructions and answers (WEBEmo's words are tokens, as English
words are for a real LLM tokenizer). Every variant then predicts the same test images through the predictors
`emovit eval` uses (images decoded beforehand, so only the model's work is timed), at batch 16: rank with the
packed and the expanded scorer strategy, generate, and "prefix only", one forward over [image][instruction] (the
vision encoder, the Q-Former and the LM over the prompt), which both modes must run and no scorer can go below.
Packed rank also runs at batch 1. Variants run one after the other in every round (interleaved); the table prints
the best and the median round, in images per wall-clock second and per CPU-second (this process's CPU time, one
torch thread by default: far steadier than wall time on a shared machine); ratios are medians of per-round ratios
of images per CPU-second.
Goals: rank at 25 labels >= 1.5x the images/s of generate; 8 -> 25 labels slows rank by at most 1.3x.
"""

import argparse
import colorsys
import random
import time

import numpy as np
import torch
from interleave import interleaved, machine_load, max_median, median
from PIL import Image

from dataset_builder.emotions import get_label_space
from dataset_builder.instructions import categorical_answer, categorical_instruction
from evaluation.predictors import GeneratePredictor, RankPredictor
from modeling_emovit.backbone import backbone_adapter
from modeling_emovit.testing import tiny_emovit

SPACES = {8: get_label_space("emoset"), 25: get_label_space("webemo-25")}


def colour_of(space, label: str) -> np.ndarray:
    """Each label of a space its own hue (brightness alternating), so classes are told apart by colour."""
    index = space.labels.index(label)
    red, green, blue = colorsys.hsv_to_rgb(index / len(space.labels), 0.9, 1.0 if index % 2 else 0.6)
    return np.array([red, green, blue], dtype=np.float32) * 255


def noisy_image(space, label: str, rng: random.Random) -> Image.Image:
    pixels = colour_of(space, label) + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 20, (64, 64, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def fit(model, processor, steps: int, rng: random.Random) -> float:
    """All-trainable AdamW on batches of 16 (image, instruction, answer), alternating the two label spaces."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, betas=(0.9, 0.98))
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        space = SPACES[8] if step % 2 == 0 else SPACES[25]
        labels = [rng.choice(space.labels) for _ in range(16)]
        batch = processor.build_training_inputs([noisy_image(space, l, rng) for l in labels],
                                                [categorical_instruction(space.labels)] * 16,
                                                [categorical_answer(l) for l in labels])
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return time.perf_counter() - started


class PrefixOnly:
    """The floor of both modes: the processor and one forward over [image][instruction], nothing scored."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor

    def predict(self, images, prompt):
        inputs = self.processor(images=images, text=[prompt] * len(images), return_tensors="pt")
        self.model(**inputs, logits_to_keep=1)
        return [None] * len(images)


def measure(predictor, test, batch: int, space) -> dict:
    """Predicts every test image in batches of `batch` with `space`'s instruction: images/s, accuracy, unmapped."""
    images, labels = test
    prompt = categorical_instruction(space.labels)
    started, cpu = time.perf_counter(), time.process_time()
    predictions = [p for start in range(0, len(images), batch) for p in predictor.predict(images[start:start + batch], prompt)]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    scored = [p for p in predictions if p is not None]
    return {"images_per_second": len(images) / seconds, "images_per_cpu_second": len(images) / cpu,
            "accuracy": sum(p.label == l for p, l in zip(scored, labels)) / len(labels) if scored else None,
            "unmapped": sum(p.label is None for p in scored) / len(labels) if scored else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--test-images", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    corpus = [text for space in SPACES.values() for text in
              [categorical_instruction(space.labels)] + [categorical_answer(label) for label in space.labels]] * 20
    model, processor = tiny_emovit("llama", size="small", seed=0, emotion_labels=SPACES[8].labels, corpus=corpus)
    seconds = fit(model, processor, args.steps, rng)
    adapter = backbone_adapter(model, processor)
    tests = {}
    for count, space in SPACES.items():
        labels = [space.labels[i % len(space.labels)] for i in range(args.test_images)]
        tests[count] = ([noisy_image(space, label, rng) for label in labels], labels)
    variants = compared_variants(adapter, tests)
    prompt_tokens = {count: len(processor.tokenizer(categorical_instruction(space.labels))["input_ids"])
                     for count, space in SPACES.items()}
    print(f"fitted size 'small' (llama) for {args.steps} steps of 16 in {seconds:.0f} s; {args.test_images} test images "
          f"per label space; instruction {prompt_tokens[8]} / {prompt_tokens[25]} tokens at 8 / 25 labels; "
          f"{torch.get_num_threads()} torch threads; {args.rounds} interleaved rounds")
    print(f"before: {machine_load()}")
    with torch.no_grad():
        measure(RankPredictor(adapter, SPACES[8]), (tests[8][0][:16], tests[8][1][:16]), 16, SPACES[8])  # warm-up
        results = interleaved(variants, args.rounds)
    print(f"after: {machine_load()}\n")
    print_results(results)


def compared_variants(adapter, tests: dict) -> dict:
    """name -> one measurement: rank (both scorers) / generate / prefix only, at 8 and 25 labels, batch 16; rank
    packed at batch 1."""
    variants = {}
    for count, space in SPACES.items():
        for strategy in ("packed", "expanded"):
            ranker = RankPredictor(adapter, space, strategy=strategy)
            variants[f"rank {strategy} {count} 16"] = lambda n, p=ranker, c=count: measure(p, tests[c], 16, SPACES[c])
        generator = GeneratePredictor(adapter, space)
        variants[f"generate - {count} 16"] = lambda n, p=generator, c=count: measure(p, tests[c], 16, SPACES[c])
        variants[f"prefix-only - {count} 16"] = (
            lambda n, c=count: measure(PrefixOnly(adapter.model, adapter.processor), tests[c], 16, SPACES[c]))
    variants["rank packed 8 1"] = lambda n: measure(RankPredictor(adapter, SPACES[8]), tests[8], 1, SPACES[8])
    return variants


def print_results(results: dict) -> None:
    """The table, then the ratios measured within each round."""
    print("| mode | scorer | labels | batch | images/s (best / median) | images per CPU-second (best / median) "
          "| accuracy | unmapped |")
    print("|---|---|---:|---:|---|---|---:|---:|")
    for name, rows in results.items():
        mode, strategy, count, batch = name.split()
        accuracy, unmapped = (("-", "-") if rows[0]["accuracy"] is None else
                              (f"{rows[0]['accuracy']:.3f}", f"{rows[0]['unmapped']:.3f}"))
        print(f"| {mode} | {strategy} | {count} | {batch} | {max_median(r['images_per_second'] for r in rows)} | "
              f"{max_median(r['images_per_cpu_second'] for r in rows)} | {accuracy} | {unmapped} |")

    def ratio(a: str, b: str) -> float:
        return median(x["images_per_cpu_second"] / y["images_per_cpu_second"] for x, y in zip(results[a], results[b]))

    def seconds_above_prefix(name: str, count: int) -> float:
        """Median per-round CPU ms per image a variant spends beyond the prefix forward."""
        return median(1e3 / x["images_per_cpu_second"] - 1e3 / y["images_per_cpu_second"]
                      for x, y in zip(results[name], results[f"prefix-only - {count} 16"]))

    print()
    for count in SPACES:
        print(f"{count} labels: rank (packed) / generate {ratio(f'rank packed {count} 16', f'generate - {count} 16'):.2f}x; "
              f"packed / expanded {ratio(f'rank packed {count} 16', f'rank expanded {count} 16'):.2f}x; CPU ms per "
              f"image beyond the prefix: packed {seconds_above_prefix(f'rank packed {count} 16', count):.1f}, expanded "
              f"{seconds_above_prefix(f'rank expanded {count} 16', count):.1f}, generate "
              f"{seconds_above_prefix(f'generate - {count} 16', count):.1f}")
    for mode in ("rank packed", "rank expanded", "generate -", "prefix-only -"):
        print(f"{mode.rstrip(' -')}: slow-down from 8 to 25 labels {ratio(f'{mode} 8 16', f'{mode} 25 16'):.2f}x")
    print(f"rank (packed) batch 16 / batch 1: {ratio('rank packed 8 16', 'rank packed 8 1'):.2f}x")


if __name__ == "__main__":
    main()
