"""EmoVIT at the paper's size on one GPU: train-step samples/s, peak memory and MFU, with and without the cache.

Built from configs alone (random weights, bf16, nothing downloaded): EVA ViT-g/14 at 224 px (hidden 1408, 39
layers, 16 heads, FFN 6144), the Q-Former (hidden 768, 12 layers, cross-attention every 2nd layer, 32 queries),
a Vicuna-7B-shaped Llama (hidden 4096, 32 layers, 32 heads, FFN 11008, vocab 32001). Paper setting (EmoVIT
Sec. 4.1): ViT and LLM frozen, Q-Former + query tokens + projection trained with AdamW. "cache" feeds the vision
encoder's outputs (`image_embeds`) instead of pixels, as training with `vision_feature_cache` does.

    python benchmarks/bench_gpu_real_size.py            # one GPU, under 7 minutes, prints a markdown table
    python benchmarks/bench_gpu_real_size.py --tiny     # CPU smoke run of the same code at toy sizes

`--backbones`: the side-by-side comparison of benchmarks/bench_backbones.py at real size, from Hub weights (needs
the Hub, or the two models in the HF cache, and about 20 GiB of GPU memory): EmoVIT on InstructBLIP-Flan-T5-XL
(recipes/emovit-flan-t5-xl: ViT and LM frozen) and SmolVLM-256M-Instruct (recipes/smolvlm-256m: every weight
trained) train in this process on the demo's synthetic EmoSet sample (800 train images) with their own recipes
for the same steps and batch (warmup 10% of them), and each is evaluated before and after on the 200 held-out
images in rank and generate mode. Prints trainable parameters, samples/s, peak GPU memory, both accuracies and ECE.

    python benchmarks/bench_gpu_real_size.py --backbones [--steps 300] [--batch 8] [--out DIR]   # about 15 minutes
    python benchmarks/bench_gpu_real_size.py --backbones --tiny   # CPU smoke run: tiny random models, 2 steps

`--grpo`: GRPO steps at SmolVLM-256M-Instruct size (Hub weights, as `--backbones`): recipes/smolvlm-256m/grpo.yaml as
written, after a 20-step cold start, on the synthetic sample `benchmarks/bench_grpo.py` builds. Prints seconds per
optimizer step, the part spent generating (TRL's own timers; the figure `--use_vllm true` addresses), completions
per second and peak GPU memory.

    python benchmarks/bench_gpu_real_size.py --grpo [--steps 10]   # a few minutes
    python benchmarks/bench_gpu_real_size.py --grpo --tiny         # CPU smoke run: tiny-random-idefics3, 2 steps
"""

import argparse
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from modeling_emovit import EmoVITConfig, EmoVITForConditionalGeneration

PROMPT_TOKENS, ANSWER_TOKENS = 96, 8  # a categorical instruction (~90 Llama tokens) and "Predict emotion: X</s>"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense bf16 tensor-core FLOP/s
REAL = dict(
    vision=dict(hidden_size=1408, num_hidden_layers=39, num_attention_heads=16, intermediate_size=6144,
                image_size=224, patch_size=14, initializer_range=0.02),
    qformer=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 cross_attention_frequency=2, encoder_hidden_size=1408, vocab_size=30523),
    text=dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=32, intermediate_size=11008, vocab_size=32001, max_position_embeddings=2048),
    queries=32,
)
TINY = dict(
    vision=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                patch_size=8, initializer_range=0.02),
    qformer=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 cross_attention_frequency=2, encoder_hidden_size=32, vocab_size=512),
    text=dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
              intermediate_size=128, vocab_size=1001, max_position_embeddings=512),
    queries=4,
)


def build(sizes, device, dtype):
    config = EmoVITConfig(
        vision_config=sizes["vision"], qformer_config=sizes["qformer"], text_config=sizes["text"],
        num_query_tokens=sizes["queries"], image_token_index=sizes["text"]["vocab_size"] - 1,
    )
    with torch.device(device):
        model = EmoVITForConditionalGeneration._from_config(config, dtype=dtype)
    model.freeze_for_instruction_tuning()
    return model.train()


def batch_inputs(model, batch, cached, device, dtype):
    config = model.config
    text_len = config.num_query_tokens + PROMPT_TOKENS + ANSWER_TOKENS
    vocab = config.text_config.vocab_size - 1  # the last id is <image>
    input_ids = torch.randint(4, vocab, (batch, text_len), device=device)
    input_ids[:, : config.num_query_tokens] = config.image_token_index
    labels = torch.full_like(input_ids, -100)
    labels[:, -ANSWER_TOKENS:] = input_ids[:, -ANSWER_TOKENS:]
    vision = config.vision_config
    inputs = dict(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels,
        qformer_input_ids=torch.randint(4, config.qformer_config.vocab_size, (batch, PROMPT_TOKENS), device=device),
    )
    if cached:
        patches = (vision.image_size // vision.patch_size) ** 2 + 1
        inputs["image_embeds"] = torch.randn(batch, patches, vision.hidden_size, device=device, dtype=dtype)
    else:
        inputs["pixel_values"] = torch.randn(batch, 3, vision.image_size, vision.image_size, device=device, dtype=dtype)
    return inputs


def step(model, optimizer, inputs):
    model(**inputs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(model, optimizer, batch, cached, device, dtype, steps):
    """(samples/s, peak GiB, FLOPs per step) of `steps` timed train steps after one warm-up step."""
    inputs = batch_inputs(model, batch, cached, device, dtype)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with FlopCounterMode(display=False) as counter:  # the warm-up step, counted
        step(model, optimizer, inputs)
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, inputs)
    synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return batch / seconds, peak, counter.get_total_flops(), seconds


def matmul_flops(device, dtype, size=8192, repeats=20) -> float:
    """This device's measured dense bf16 matmul FLOP/s (the practical peak)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def largest_batch(model, optimizer, cached, device, dtype, candidates, budget_s):
    """Largest candidate batch whose train step fits in memory (doubling), within a time budget."""
    fits, start = candidates[0], time.perf_counter()
    for batch in candidates[1:]:
        if time.perf_counter() - start > budget_s:
            break
        try:
            step(model, optimizer, batch_inputs(model, batch, cached, device, dtype))
            fits = batch
        except torch.OutOfMemoryError:
            break
        finally:
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.empty_cache()
    return fits


# --backbones: name -> (recipe folder, Hub id: the model card's base_model)
REAL_BACKBONES = {
    "emovit-flan-t5-xl": ("emovit-flan-t5-xl", "Salesforce/instructblip-flan-t5-xl"),
    "smolvlm-256m": ("smolvlm-256m", "HuggingFaceTB/SmolVLM-256M-Instruct"),
}
TINY_BACKBONES = {name: (recipe, tiny) for (name, (recipe, _)), tiny in
                  zip(REAL_BACKBONES.items(), ("tiny-random-t5", "tiny-random-idefics3"))}
ON_CPU = ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--gradient_checkpointing", "false"]


def demo_data(folder: Path) -> tuple[Path, Path]:
    """The demo's synthetic EmoSet sample as categorical train and test datasets (as `emovit demo` builds them)."""
    from dataset_builder.build import build_dataset
    from dataset_builder.sample import write_sample_emoset

    if not (folder / "emoset" / "test.json").exists():
        write_sample_emoset(folder / "emoset", 100, 25, seed=0)
    for split in ("train", "test"):
        if not (folder / split).exists():
            build_dataset("emoset", folder / "emoset", split, folder / split, tasks=("categorical",))
    return folder / "train", folder / "test"


def evaluate_both_modes(model: str, data: Path, out: Path) -> dict:
    from evaluation.harness import EvalSettings, run_eval

    results = {mode: run_eval(EvalSettings(model=model, data=str(data), out=str(out / mode), mode=mode,
                                           label_space="emoset", batch_size=16))["metrics"] for mode in ("rank", "generate")}
    return {"rank": results["rank"]["accuracy"], "generate": results["generate"]["accuracy"], "ece": results["rank"]["ece"]}


def compare_backbones(steps: int, batch: int, out: Path, tiny: bool) -> None:
    """Each backbone: evaluated from its Hub weights, trained with its recipe, evaluated again; one table."""
    import gc

    from emovit.training import sft

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    train, test = demo_data(out / "data")
    cuda = torch.cuda.is_available()
    rows = []
    for name, (recipe, hub_id) in (TINY_BACKBONES if tiny else REAL_BACKBONES).items():
        before = evaluate_both_modes(hub_id, test, out / "eval" / f"{name}-base")
        argv = ["--config", str(recipes / recipe / "sft.yaml"), "--model_name_or_path", hub_id,
                "--dataset_name", str(train), "--dataset_config", "categorical", "--output_dir", str(out / name),
                "--max_steps", str(steps), "--per_device_train_batch_size", str(batch),
                "--gradient_accumulation_steps", "1", "--warmup_steps", "0.1", "--save_strategy", "no",
                "--assistant_only_loss", "false",  # the categorical rows (as for EmoVIT): completion-only loss
                "--report_to", "none", "--logging_steps", "10", "--dataloader_num_workers", "2"] + (ON_CPU if tiny else [])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        metrics = sft.train(*sft.parse_recipe(argv))
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        after = evaluate_both_modes(str(out / name), test, out / "eval" / f"{name}-trained")
        rows.append((name, metrics, peak, before, after))
    print(f"\n{steps} steps of batch {batch} on 800 synthetic EmoSet-style images; 200 held-out test images\n")
    print("| backbone | trainable params | train samples/s | peak GiB | rank acc before -> after | "
          "generate acc before -> after | rank ECE after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, metrics, peak, before, after in rows:
        print(f"| {name} | {metrics['trainable_parameters']:,} | {metrics['train_samples_per_second']:.1f} | "
              f"{peak:.1f} | {before['rank']:.1%} -> {after['rank']:.1%} | {before['generate']:.1%} -> "
              f"{after['generate']:.1%} | {after['ece']:.3f} |")


def grpo_step(steps: int, out: Path, tiny: bool) -> None:
    """GRPO steps of recipes/smolvlm-256m/grpo.yaml (or, tiny, the CPU recipe on tiny-random-idefics3)."""
    from bench_grpo import sample_data, train

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    recipe = recipes / ("tiny-vlm" if tiny else "smolvlm-256m") / "grpo.yaml"
    overrides = ["--model_name_or_path", "tiny-random-idefics3", *ON_CPU] if tiny else ["--report_to", "none"]
    train_data, _ = sample_data(out / "data", seed=0)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    figures = train(train_data, out / "grpo", 0, recipe, 2 if tiny else 20, steps, overrides)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    import yaml

    settings = yaml.safe_load(recipe.read_text())
    completions = settings["per_device_train_batch_size"] * settings.get("gradient_accumulation_steps", 1)
    print(f"\n{recipe.relative_to(recipes.parent)}, {steps} GRPO steps, {completions} completions a step, up to "
          f"{settings['max_completion_length']} new tokens\n")
    print("| model | s per step | generating | completions/s | peak GiB |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {overrides[1] if tiny else settings['model_name_or_path']} | {figures['step_s']:.2f} | "
          f"{figures['generate_s']:.2f} ({figures['generate_s'] / figures['step_s']:.0%}) | "
          f"{completions / figures['step_s']:.1f} | {peak:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Toy sizes (CPU smoke run).")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per setting (default 5, tiny 2; "
                        "--backbones: training steps, default 300).")
    parser.add_argument("--backbones", action="store_true", help="EmoVIT-Flan-T5-XL beside SmolVLM-256M (Hub weights).")
    parser.add_argument("--grpo", action="store_true", help="A GRPO step at SmolVLM-256M size (Hub weights).")
    parser.add_argument("--batch", type=int, default=8, help="--backbones: training batch.")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-backbones"), help="--backbones: output folder.")
    args = parser.parse_args()
    if args.backbones:
        return compare_backbones(args.steps or (2 if args.tiny else 300), args.batch, args.out, args.tiny)
    if args.grpo:
        return grpo_step(args.steps or (2 if args.tiny else 10), args.out.with_name("bench-grpo-step"), args.tiny)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16
    steps = args.steps or (2 if args.tiny else 5)
    began = time.perf_counter()
    torch.manual_seed(42)
    model = build(TINY if args.tiny else REAL, device, dtype)
    counts = {kind: sum(p.numel() for p in model.parameters() if p.requires_grad == (kind == "trainable"))
              for kind in ("trainable", "frozen")}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.005)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = next((flops for key, flops in PEAK_BF16.items() if key in name), None)
    measured = matmul_flops(device, dtype, size=1024 if args.tiny else 8192)
    print(f"device: {name}; parameters: {counts['trainable']:,} trainable, {counts['frozen']:,} frozen; "
          f"built in {time.perf_counter() - began:.0f} s; measured bf16 matmul {measured / 1e12:.1f} TFLOP/s; "
          f"datasheet peak {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s")
    candidates = [1, 2, 4] if args.tiny else [1, 8, 16, 32, 64, 96, 128, 192, 256]
    rows = []
    for cached in (False, True):
        biggest = largest_batch(model, optimizer, cached, device, dtype, candidates, budget_s=60)
        for batch in sorted({1, biggest}):
            samples, memory, flops, seconds = measure(model, optimizer, batch, cached, device, dtype, steps)
            achieved = flops / seconds
            rows.append((("cache" if cached else "pixels"), batch, samples, seconds * 1e3, memory, achieved / 1e12,
                         achieved / peak if peak else float("nan"), achieved / measured))
    print("\n| vision input | batch | samples/s | step ms | peak GiB | TFLOP/s | MFU (datasheet) | of measured matmul |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {} | {} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {:.1%} | {:.1%} |".format(*row))
    print(f"\nsequence: {model.config.num_query_tokens} query + {PROMPT_TOKENS} instruction + {ANSWER_TOKENS} answer "
          f"tokens; FLOPs counted by torch FlopCounterMode; total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
