"""EmoVIT beside today's chat-template VLMs, on the same emotion data, recipe and step budget: one table.

    .venv/bin/python benchmarks/bench_backbones.py [--steps 300] [--backbones emovit llava idefics3 qwen2-vl]
        [--demo DIR]   # reuse an `emovit demo` folder (its data and pretrained base) instead of making one
        [--rounds 3 --speed-steps 30]   # the interleaved speed runs

Data: `emovit demo`'s synthetic EmoSet-layout sample (8 emotions, 800 train / 200 held-out test images, categorical
instructions). Every backbone trains in its own process through recipes/sft.py with recipes/emovit-tiny/sft.yaml
(AdamW, lr 1e-3, cosine, batch 32, the same number of steps):
- EmoVIT from the demo's pretrained tiny base (the stand-in for InstructBLIP), with EmoVIT's policy: ViT and LM
  frozen, Q-Former, query tokens and projection trained (the InstructBLIP-style collator);
- LLaVA-1.5, Idefics3 (SmolVLM's template), Qwen2-VL, Qwen2.5-VL: random `small` models (hidden 128, 64 px,
  `modeling_emovit.testing_vlms`), every weight trained (no pretrained base exists offline), through TRL's
  collator and their chat templates.
Each is then evaluated on the held-out split by `emovit eval` in rank and generate mode (batch 16).

Columns: trainable parameters, peak resident memory of the training process (getrusage; libraries included), rank
and generate accuracy and the ECE (15 bins) of the rank-mode probabilities, from that run; training samples/s and
rank-mode images/s from separate short runs (`--speed-steps` steps, then a rank evaluation) interleaved over the
backbones for `--rounds` rounds (A B C D A B C D ...), best and median, with the machine load. A rerun with the same
--out reuses finished trainings and evaluations. At real size on a GPU: bench_gpu_real_size.py --backbones.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interleave import interleaved, machine_load, max_median

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "emovit-tiny" / "sft.yaml"
CHAT_BACKBONES = {"llava": "small-random-llava", "idefics3": "small-random-idefics3",
                  "qwen2-vl": "small-random-qwen2-vl", "qwen2.5-vl": "small-random-qwen2.5-vl"}


def prepare_demo(folder: Path, seed: int) -> None:
    """The demo's data and base (its stages resume: an existing demo folder is reused as it is)."""
    from emovit.demo.pipeline import run_demo

    run_demo(folder, seed=seed)


def starting_point(name: str, demo: Path) -> str:
    """EmoVIT starts from the demo's pretrained base; the chat-template VLMs from random `small` weights."""
    return str(demo / "base") if name == "emovit" else CHAT_BACKBONES[name]


def train(model: str, data: Path, out: Path, steps: int, seed: int) -> dict:
    """Trains through recipes/sft.py in a child process; its metrics plus peak resident MiB and wall seconds (kept in
    OUT/bench.json: a rerun with the same --out reuses finished trainings)."""
    if (out / "bench.json").exists():
        return json.loads((out / "bench.json").read_text())
    command = [sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(RECIPE), "--model_name_or_path", model,
               "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", str(steps), "--seed", str(seed),
               "--per_device_train_batch_size", "32", "--save_strategy", "no", "--disable_tqdm", "true",
               "--logging_steps", str(max(1, steps // 10))]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "train.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"training {model} failed (status {status}); see {out / 'train.log'}")
    metrics = json.loads((out / "train_results.json").read_text())
    metrics.update(peak_mib=usage.ru_maxrss / 1024, seconds=time.perf_counter() - start, steps=steps)
    (out / "bench.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate(model: Path, data: Path, out: Path, mode: str) -> dict:
    from evaluation.harness import EvalSettings, run_eval

    results = run_eval(EvalSettings(model=str(model), data=str(data), out=str(out), mode=mode, label_space="emoset",
                                    batch_size=16))
    return {**results["metrics"], "images_per_second": results["progress"]["images_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Training steps of batch 32 for every backbone.")
    parser.add_argument("--backbones", nargs="+", default=["emovit", *CHAT_BACKBONES],
                        choices=["emovit", *CHAT_BACKBONES])
    parser.add_argument("--demo", type=Path, default=None, help="An `emovit demo` folder to reuse.")
    parser.add_argument("--out", type=Path, default=None, help="Where the trained models go (default: a temp folder).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds of the speed runs.")
    parser.add_argument("--speed-steps", type=int, default=30, help="Training steps of each speed run.")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="emovit-backbones-"))
    demo = args.demo or out / "demo"
    print(f"[backbones] {machine_load()}", flush=True)
    prepare_demo(demo, args.seed)
    train_data, test_data = demo / "data" / "train", demo / "data" / "test"
    rows = {}
    for name in args.backbones:
        print(f"[backbones] {name}: training {args.steps} steps ...", flush=True)
        training = train(starting_point(name, demo), train_data, out / name, args.steps, args.seed)
        rank = evaluate(out / name, test_data, out / "eval" / f"{name}-rank", "rank")
        generate = evaluate(out / name, test_data, out / "eval" / f"{name}-generate", "generate")
        rows[name] = (training, rank, generate)
    print(f"[backbones] speed: {args.rounds} interleaved rounds of {args.speed_steps} steps and a rank evaluation; "
          f"{machine_load()}", flush=True)

    def speed(name):
        def run(number: int) -> dict:
            for stale in (out / "speed" / f"{name}-{number}", out / "speed" / f"{name}-rank-{number}"):
                shutil.rmtree(stale, ignore_errors=True)  # speeds are measured afresh on every run
            short = train(starting_point(name, demo), train_data, out / "speed" / f"{name}-{number}", args.speed_steps,
                          args.seed)
            rank = evaluate(out / name, test_data, out / "speed" / f"{name}-rank-{number}", "rank")
            return {"train": short["train_samples_per_second"], "rank": rank["images_per_second"]}
        return run

    speeds = interleaved({name: speed(name) for name in args.backbones}, args.rounds)
    print(f"\n{args.steps} steps of batch 32 on {len(json.loads((demo / 'emoset' / 'train.json').read_text()))} "
          f"training images; held-out test split of 200; speeds best / median of {args.rounds} interleaved rounds; "
          f"{machine_load()}\n")
    print("| backbone | trainable params | train samples/s | train peak MiB | rank acc | generate acc | rank ECE | "
          "rank images/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (training, rank, generate) in rows.items():
        print(f"| {name} | {training['trainable_parameters']:,} | {max_median(r['train'] for r in speeds[name])} | "
              f"{training['peak_mib']:.0f} | {rank['accuracy']:.1%} | {generate['accuracy']:.1%} | {rank['ece']:.3f} | "
              f"{max_median(r['rank'] for r in speeds[name])} |")
    print(f"\nmodels and evaluations: {out}")


if __name__ == "__main__":
    main()
