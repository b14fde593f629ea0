"""Benchmark of `emovit eval`: rank vs generate mode (images/s, accuracy), and rank at batch 1 vs 16.

    .venv/bin/python benchmarks/bench_eval.py [--steps 40] [--test-images 96]

A small EmoVIT (size "small", Llama-style LM) is briefly fitted on a synthetic 8-emotion task (each emotion its own
colour, with noise), then evaluated on the same held-in test split in one run. Expect rank to be faster than
generate (one LM forward per image instead of one per answer token) and never to produce an unparseable answer.
"""

import argparse
import random
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataset_builder.emotions import get_label_space
from dataset_builder.instructions import categorical_answer, categorical_instruction
from evaluation.harness import EvalSettings, run_eval
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


def write_test_split(folder: Path, count: int, rng: random.Random) -> Path:
    from datasets import Dataset
    from datasets import Image as ImageFeature

    def encoded(label):
        buffer = BytesIO()
        noisy_image(label, rng).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    labels = [SPACE.labels[i % len(SPACE.labels)] for i in range(count)]
    (folder / "categorical").mkdir(parents=True)
    Dataset.from_dict({"id": [f"t{i:04d}" for i in range(count)], "image": [encoded(l) for l in labels],
                       "emotion": labels, "label_space": ["emoset"] * count}).cast_column(
        "image", ImageFeature()).to_parquet(str(folder / "categorical" / "test-00000-of-00001.parquet"))
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: categorical\n  data_files:\n  - split: test\n"
                                      "    path: categorical/test-*.parquet\n---\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--test-images", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    model, processor = tiny_emovit("llama", size="small", seed=0, emotion_labels=SPACE.labels)
    seconds = fit(model, processor, args.steps, rng)
    model.save_pretrained(work / "model")
    processor.save_pretrained(work / "model")
    data = write_test_split(work / "data", args.test_images, rng)
    print(f"fitted size 'small' (llama) for {args.steps} steps of 16 in {seconds:.0f} s; "
          f"{args.test_images} held-in test images, 8 emotions, 2 CPU threads")
    print(f"{'mode':<10}{'batch':>6}{'images/s':>10}{'accuracy':>10}{'unmapped':>10}")
    for mode, batch in (("rank", 16), ("rank", 1), ("generate", 16)):
        results = run_eval(EvalSettings(model=str(work / "model"), data=str(data), out=str(work / f"{mode}-{batch}"),
                                        mode=mode, batch_size=batch))
        metrics = results["metrics"]
        print(f"{mode:<10}{batch:>6}{results['progress']['images_per_second']:>10.1f}"
              f"{metrics['accuracy']:>10.3f}{metrics['unmapped_rate']:>10.3f}")


if __name__ == "__main__":
    main()
