"""Training throughput on CPU: the recipe (EmoVITSFTTrainer + EmoVITCollator) vs a plain loop over transformers'
InstructBlipForConditionalGeneration with a padding collator, with vs without the vision-feature cache; achieved
FLOP/s against this machine's measured matmul FLOP/s, and peak memory. Same "small" model (hidden 128, image 64,
patch 8, 16 queries), same data, EmoVIT's policy (ViT and LM frozen).

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--batch 16] [--rounds 3] [--threads 1]

The three settings run one after the other in every round (interleaved); the table prints the best and the median
round in samples per wall-clock second and per CPU-second (this process's CPU time: steadier on a shared machine),
and the median of the per-round ratios (per CPU-second) to the plain loop. At this size the vision encoder is a small
part of a step, so the cache can save little; at EmoVIT's real size it is measured by bench_gpu_real_size.py.
"""

import argparse
import resource
import tempfile
import time
from io import BytesIO

import torch
from interleave import interleaved, machine_load, max_median, median, min_median
from PIL import Image as PILImage
from torch.utils.flop_counter import FlopCounterMode
from transformers import TrainerCallback

from emovit.training.collator import EmoVITCollator
from modeling_emovit.backbone import backbone_adapter
from emovit.training.feature_cache import attach_vision_features, cache_vision_features
from emovit.training.trainer import EmoVITSFTTrainer
from modeling_emovit.testing import tiny_emovit

LABELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
PROMPT = ("Please select the emotion closest to the image from the following options:" + ", ".join(LABELS)
          + " (Do not provide answers outside of the candidates options.) Please answer in the following format:  "
          "Predict emotion:")


def dataset(rows):
    from datasets import Dataset, Image

    def png(i):
        buffer = BytesIO()
        PILImage.new("RGB", (64, 64), (37 * i % 256, 91 * i % 256, 53 * i % 256)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": f"{i}.png"}

    data = {"image": [png(i) for i in range(rows)], "prompt": [PROMPT] * rows,
            "completion": [f"Predict emotion: {LABELS[i % 8]}" for i in range(rows)]}
    return Dataset.from_dict(data).cast_column("image", Image(decode=False))


class StepTimer(TrainerCallback):
    """Wall and CPU time at the end of each optimizer step, so start-up and the first (warm-up) steps can be left out."""

    def __init__(self):
        self.ends = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append((time.perf_counter(), time.process_time()))


def steady_samples_per_second(ends, batch, warmup=3) -> dict:
    """Samples per wall-clock second and per CPU-second between the end of step `warmup` and the last step."""
    steps = len(ends) - 1 - warmup
    return {"wall": batch * steps / (ends[-1][0] - ends[warmup][0]),
            "cpu": batch * steps / (ends[-1][1] - ends[warmup][1])}


def run_recipe(data, batch, steps, cache=None):
    from trl import SFTConfig

    model, processor = tiny_emovit(size="small", seed=0)
    model.freeze_for_instruction_tuning()
    collator = EmoVITCollator(backbone_adapter(model, processor))
    if cache is not None:
        data, _ = attach_vision_features(data, cache, model)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, use_cpu=True, bf16=False, max_steps=steps, per_device_train_batch_size=batch,
                         learning_rate=1e-4, gradient_checkpointing=False, remove_unused_columns=False,
                         save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=steps)
        EmoVITSFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                         data_collator=collator, callbacks=[timer]).train()
    return steady_samples_per_second(timer.ends, batch)


def run_plain_loop(data, batch, steps):
    """The straightforward way: InstructBLIP, processor(prompt + answer), labels = padded input ids."""
    model, processor = tiny_emovit(size="small", seed=0, instructblip=True)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".")[0] in ("qformer", "query_tokens", "language_projection"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    rows = data.cast_column("image", __import__("datasets").Image())
    ends = []
    for index in range(steps):
        chunk = rows[(index * batch) % len(rows): (index * batch) % len(rows) + batch]
        texts = [p + " " + c for p, c in zip(chunk["prompt"], chunk["completion"])]
        inputs = processor(images=chunk["image"], text=texts, return_tensors="pt", padding=True)
        inputs["labels"] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        ends.append((time.perf_counter(), time.process_time()))
    return steady_samples_per_second(ends, batch)


def flops_of_a_step(batch):
    model, processor = tiny_emovit(size="small", seed=0)
    model.freeze_for_instruction_tuning()
    rows = list(dataset(batch))
    inputs = EmoVITCollator(backbone_adapter(model, processor))(rows)
    with FlopCounterMode(display=False) as counter:
        model(**inputs).loss.backward()
    steps, visions = [], []
    for _ in range(5):  # interleaved: a whole step, then the vision encoder's forward alone
        start = time.perf_counter()
        model(**inputs).loss.backward()
        steps.append(time.perf_counter() - start)
        with torch.no_grad():
            start = time.perf_counter()
            model.vision_model(pixel_values=inputs["pixel_values"])
            visions.append(time.perf_counter() - start)
    return counter.get_total_flops(), steps, visions


def matmul_flops(size=1024, repeats=30):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = dataset(args.batch * 4)
    print(f"torch threads: {torch.get_num_threads()}; batch {args.batch}; {args.steps} steps (3 warm-up left out); "
          f"{args.rounds} interleaved rounds; {machine_load()}")

    flops, steps, visions = flops_of_a_step(args.batch)
    peak = matmul_flops()
    print(f"vision encoder forward: {min_median(v * 1e3 for v in visions)} ms (min / median of 5) of a "
          f"{min_median(s * 1e3 for s in steps)} ms forward+backward ({min(visions) / min(steps):.0%} of the fastest)")
    print(f"achieved: {flops / min(steps) / 1e9:.1f} GFLOP/s at the fastest step ({flops / 1e9:.2f} GFLOP per step) vs "
          f"measured fp32 matmul {peak / 1e9:.1f} GFLOP/s = {flops / min(steps) / peak:.1%} of the machine's limit")

    with tempfile.TemporaryDirectory() as folder:
        model, processor = tiny_emovit(size="small", seed=0)
        cache = cache_vision_features(model, processor, data, folder, batch_size=args.batch)
        results = interleaved({
            "plain loop, InstructBLIP + padding collator": lambda n: run_plain_loop(data, args.batch, args.steps),
            "recipe (EmoVITSFTTrainer)": lambda n: run_recipe(data, args.batch, args.steps),
            "recipe + vision-feature cache": lambda n: run_recipe(data, args.batch, args.steps, cache=cache),
        }, args.rounds)
    plain = results["plain loop, InstructBLIP + padding collator"]
    print(f"\n{machine_load()}\n")
    print("| setting | samples/s (best / median) | samples per CPU-second (best / median) | vs plain loop (per "
          "CPU-second, median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {max_median(v['wall'] for v in values)} | {max_median(v['cpu'] for v in values)} | "
              f"{median(v['cpu'] / p['cpu'] for v, p in zip(values, plain)):.2f}x |")
    print(f"\npeak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
