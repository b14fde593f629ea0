"""Benchmark of the two `emovit eval` modes: rank (both scorer strategies) vs generate, at 8 and 25 candidate labels.

    .venv/bin/python benchmarks/bench_eval.py [--steps 40] [--test-images 96] [--rounds 3]

A small EmoVIT (size "small", Llama-style LM) is briefly fitted on a synthetic 8-emotion task (each emotion its own
colour, with noise); its tokenizer is trained on both label spaces' instructions and answers, so WEBEmo's words are
tokens as English words are for a real LLM tokenizer (otherwise the 25-label instruction alone triples in length).
Then every variant predicts the same held-in test images through the predictors `emovit eval`
uses (images decoded beforehand, so only the model's work is timed): rank with the packed and the expanded scorer
strategy and generate, with EmoSet's 8 labels and WEBEmo's 25 as candidates, at batch 16, plus packed rank at batch 1.
Variants run one after the other in every round (interleaved); the table prints min / median images/s over rounds,
and the ratios are per-round ratios (median). Goals: rank at 25 labels >= 1.5x the images/s of generate; going
from 8 to 25 labels slows rank by at most 1.3x.
"""

import argparse
import random
import time

import numpy as np
import torch
from interleave import interleaved, machine_load, median, min_median
from PIL import Image

from dataset_builder.emotions import get_label_space
from dataset_builder.instructions import categorical_answer, categorical_instruction
from evaluation.predictors import GeneratePredictor, RankPredictor
from modeling_emovit.testing import tiny_emovit

SPACE = get_label_space("emoset")
COLOURS = dict(zip(SPACE.labels, [(250, 200, 0), (200, 0, 0), (0, 80, 200), (40, 180, 60), (120, 90, 20),
                                  (250, 90, 200), (20, 20, 20), (140, 140, 160)]))


def noisy_image(label: str, rng: random.Random) -> Image.Image:
    base = np.array(COLOURS[label], dtype=np.float32)
    pixels = base + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 25, (64, 64, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def fit(model, processor, steps: int, rng: random.Random) -> float:
    """All-trainable AdamW on (image, EmoVIT instruction, answer) batches of 16; returns seconds spent."""
    prompt = categorical_instruction(SPACE.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, betas=(0.9, 0.98))
    model.train()
    started = time.perf_counter()
    for _ in range(steps):
        labels = [rng.choice(SPACE.labels) for _ in range(16)]
        batch = processor.build_training_inputs([noisy_image(l, rng) for l in labels], [prompt] * 16,
                                                [categorical_answer(l) for l in labels])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return time.perf_counter() - started


def measure(predictor, images, labels, batch: int, space) -> dict:
    """Predicts every image in batches of `batch` with `space`'s instruction; images/s, accuracy, unmapped."""
    prompt = categorical_instruction(space.labels)
    started = time.perf_counter()
    predictions = [p for start in range(0, len(images), batch) for p in predictor.predict(images[start:start + batch], prompt)]
    seconds = time.perf_counter() - started
    return {"images_per_second": len(images) / seconds,
            "accuracy": sum(p.label == l for p, l in zip(predictions, labels)) / len(labels),
            "unmapped": sum(p.label is None for p in predictions) / len(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--test-images", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = random.Random(0)
    spaces = {8: SPACE, 25: get_label_space("webemo-25")}
    corpus = [text for space in spaces.values() for text in
              [categorical_instruction(space.labels)] + [categorical_answer(label) for label in space.labels]] * 20
    model, processor = tiny_emovit("llama", size="small", seed=0, emotion_labels=SPACE.labels, corpus=corpus)
    seconds = fit(model, processor, args.steps, rng)
    labels = [SPACE.labels[i % len(SPACE.labels)] for i in range(args.test_images)]
    images = [noisy_image(label, rng) for label in labels]
    variants = {}
    for count, space in spaces.items():
        for strategy in ("packed", "expanded"):
            ranker = RankPredictor(model, processor, space, strategy=strategy)
            variants[f"rank {strategy} {count} 16"] = lambda n, p=ranker, s=space: measure(p, images, labels, 16, s)
        generator = GeneratePredictor(model, processor, space)
        variants[f"generate - {count} 16"] = lambda n, p=generator, s=space: measure(p, images, labels, 16, s)
    variants["rank packed 8 1"] = lambda n: measure(RankPredictor(model, processor, SPACE), images, labels, 1, SPACE)
    with torch.no_grad():
        measure(RankPredictor(model, processor, SPACE), images[:16], labels[:16], 16, SPACE)  # warm-up
    prompt_tokens = {count: len(processor.tokenizer(categorical_instruction(space.labels))["input_ids"])
                     for count, space in spaces.items()}
    print(f"fitted size 'small' (llama) for {args.steps} steps of 16 in {seconds:.0f} s; {args.test_images} held-in "
          f"test images; instruction {prompt_tokens[8]} / {prompt_tokens[25]} tokens at 8 / 25 labels; "
          f"{torch.get_num_threads()} torch threads; {args.rounds} interleaved rounds")
    print(f"before: {machine_load()}")
    with torch.no_grad():
        results = interleaved(variants, args.rounds)
    print(f"after: {machine_load()}\n")
    print("| mode | scorer | labels | batch | images/s (min / median) | accuracy (8 labels) | unmapped |")
    print("|---|---|---:|---:|---|---:|---:|")
    for name, rows in results.items():
        mode, strategy, count, batch = name.split()
        accuracy, unmapped = (f"{rows[0]['accuracy']:.3f}", f"{rows[0]['unmapped']:.3f}") if count == "8" else ("-", "-")
        print(f"| {mode} | {strategy} | {count} | {batch} | {min_median(r['images_per_second'] for r in rows)} | "
              f"{accuracy} | {unmapped} |")

    def ratio(a: str, b: str) -> float:
        return median(x["images_per_second"] / y["images_per_second"] for x, y in zip(results[a], results[b]))

    print()
    for count in spaces:
        print(f"{count} labels: rank (packed) / generate images/s {ratio(f'rank packed {count} 16', f'generate - {count} 16'):.2f}x; "
              f"packed / expanded {ratio(f'rank packed {count} 16', f'rank expanded {count} 16'):.2f}x")
    for strategy in ("packed", "expanded"):
        print(f"rank ({strategy}) slow-down from 8 to 25 labels: {ratio(f'rank {strategy} 8 16', f'rank {strategy} 25 16'):.2f}x")
    print(f"generate slow-down from 8 to 25 labels: {ratio('generate - 8 16', 'generate - 25 16'):.2f}x")
    print(f"rank (packed) batch 16 / batch 1: {ratio('rank packed 8 16', 'rank packed 8 1'):.2f}x")


if __name__ == "__main__":
    main()
