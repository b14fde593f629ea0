"""Does GRPO make a cold-started chat VLM answer emotions better, in the format, with a calibrated confidence?

    .venv/bin/python benchmarks/bench_grpo.py [--seeds 0 1 2] [--cold-start-steps 200] [--grpo-steps 200] [--keep DIR]
        [--sampled-images 40]
    python benchmarks/bench_grpo.py --recipe recipes/smolvlm-256m/grpo.yaml --seeds 0   # on a GPU, Hub weights

Other flags are the recipe's keys (`--learning_rate 1e-5 --temperature 0.7`).

Per seed: a drawn EmoSet-layout sample (the demo's: 100 train images per emotion, rules-written reasoning answers,
`--test-per-emotion` test images per emotion, 25 by default: one image is half a point), then
recipes/tiny-vlm/grpo.yaml on `small-random-qwen2-vl` as written, except its step counts: the cold start (SFT on the
reasoning answers rewritten into the answer format, kept short so it stays well under what SFT alone reaches) and
GRPO. Both the cold-started model (OUT/cold-start) and the GRPO model are evaluated on the test split with `emovit
eval --mode generate --answer-format reasoning`.

Targets: GRPO raises generate accuracy by 10 points or more over its cold start, at least 95% of answers in the
format, and a lower ECE of the stated confidence. Its AUROC is printed too (0.50: one number stated for every
image). The split of a GRPO step between generating the rollouts and the rest (rewards, log-probabilities, the
update) is TRL's own profiling timers (`trl.extras.profiling`), collected here.
`--sampled-images N` also shows what GRPO can learn from on N train images: how many have a right answer among 8
sampled ones (GRPO rewards only what it samples), and how many have all 8 on one label (nothing left to compare).
"""

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from interleave import machine_load

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny-vlm" / "grpo.yaml"
GENERATION_TIMERS = ("transformers.generate", "transformers.generate_batch", "vLLM.generate")


def sample_data(root: Path, seed: int, test_per_emotion: int) -> tuple[Path, Path]:
    """`(train, test)`: the demo's sample, instructions and build (emovit.demo.pipeline)."""
    from dataset_builder.sample import write_sample_emoset
    from emovit.demo.pipeline import _build, _generate, instruction_backend

    write_sample_emoset(root / "emoset", 100, test_per_emotion, seed=seed, val_per_emotion=0)
    _generate(root / "emoset", root / "generations.jsonl", instruction_backend("rules", None, None, root / "cache"))
    _build(root / "emoset", "train", root / "train", root / "generations.jsonl")
    _build(root / "emoset", "test", root / "test", None)
    return root / "train", root / "test"


class ProfilingTimes:
    """TRL's profiling timers (which log only to wandb, mlflow and trackio), summed by name while installed."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def __enter__(self):
        from trl.extras import profiling

        self._original = original = profiling.ProfilingContext._log_metrics
        times = self.seconds

        def record(context, duration):
            times[context.name.split(".", 1)[1]] += duration  # "<trainer class>.<timer>"
            original(context, duration)

        profiling.ProfilingContext._log_metrics = record
        return self

    def __exit__(self, *exc):
        from trl.extras import profiling

        profiling.ProfilingContext._log_metrics = self._original


def train(train_data: Path, out: Path, seed: int, recipe: Path, cold_start_steps: int, grpo_steps: int,
          overrides=()) -> dict:
    """Both stages of `recipe` in this process; the GRPO steps' mean time, the generation part of it, the rewards."""
    from emovit.training import grpo

    argv = ["--config", str(recipe), "--dataset_name", str(train_data), "--output_dir", str(out), "--seed", str(seed),
            "--cold_start_max_steps", str(cold_start_steps), "--max_steps", str(grpo_steps),
            "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1", *overrides]
    with ProfilingTimes() as profile:
        start = time.monotonic()
        recipe_args = grpo.parse_recipe(argv)
        grpo.train(*recipe_args)
        minutes = (time.monotonic() - start) / 60
    steps = [entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "step_time" in entry]
    step_seconds = sum(entry["step_time"] for entry in steps)
    generation = sum(profile.seconds[name] for name in GENERATION_TIMERS)
    return {"train_minutes": minutes, "step_s": step_seconds / len(steps), "generate_s": generation / len(steps),
            "sampling": {"temperature": recipe_args[1].temperature,
                         "max_new_tokens": recipe_args[1].max_completion_length},
            "reward_first": steps[0]["reward"], "reward_last": statistics.mean(entry["reward"] for entry in steps[-5:])}


def evaluate(model: Path, test: Path, out: Path) -> dict:
    """Accuracy, format compliance and stated-confidence ECE in the reasoning format (as `emovit demo --grpo`)."""
    from emovit.demo.pipeline import _evaluate

    return _evaluate(model, test, out, "generate", None, answer_format="reasoning")


def sampled_answers(model: Path, train_data: Path, images: int, seed: int, sampling: dict) -> dict:
    """What GRPO has to learn from: for `images` train images (evenly spaced), 8 answers each sampled as the recipe
    samples (`sampling`: temperature, max_new_tokens); how many images have a right answer among their 8, and how many
    have all 8 on one label."""
    import torch

    from dataset_builder.emotions import get_label_space
    from dataset_builder.loading import load_split
    from dataset_builder.reasoning_format import parse_reasoned_answer
    from emovit.training.confidence_targets import sample_answers
    from evaluation.harness import load_adapter

    space, adapter = get_label_space("emoset"), load_adapter(str(model))
    rows = load_split(str(train_data), "categorical", "train")
    rows = rows.select(range(0, len(rows), max(1, len(rows) // images))[:images])
    torch.manual_seed(seed)
    # one image per call, as these figures in RESULTS.md were made (a batch draws the random numbers in another order)
    answers = [sample_answers(adapter, [image], space.labels, 8, **sampling)[0] for image in rows["image"]]
    any_right = one_label = 0
    for sampled, gold in zip(answers, rows["emotion"]):
        labels = [parse_reasoned_answer(answer, space).label for answer in sampled]
        any_right += gold in labels
        one_label += len(set(labels)) == 1 and labels[0] is not None
    return {"any_right": any_right, "one_label": one_label}


def run_seed(seed: int, root: Path, args) -> dict:
    start = time.monotonic()
    train_data, test = sample_data(root / "data", seed, args.test_per_emotion)
    figures = train(train_data, root / "grpo", seed, args.recipe, args.cold_start_steps, args.grpo_steps,
                    args.recipe_overrides)
    models = {"before": root / "grpo" / "cold-start", "after": root / "grpo"}
    row = {when: evaluate(model, test, root / f"eval-{model.name}") for when, model in models.items()}
    minutes = (time.monotonic() - start) / 60  # the diagnostic below is not part of the run it times
    if args.sampled_images:
        for when, model in models.items():
            row[when].update(sampled_answers(model, train_data, args.sampled_images, seed, figures["sampling"]))
    return {"seed": seed, **row, **figures, "minutes": minutes}


def _figure(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_row(row: dict) -> None:
    before, after = row["before"], row["after"]
    print(f"| {row['seed']} | {before['accuracy']:.1%} -> {after['accuracy']:.1%} | "
          f"{100 * (after['accuracy'] - before['accuracy']):+.1f} | {before['format_compliance']:.0%} -> "
          f"{after['format_compliance']:.0%} | {_figure(before['verbalised_ece_10_bins_x100'])} -> "
          f"{_figure(after['verbalised_ece_10_bins_x100'])} | {_figure(before['verbalised_auroc'], 2)} -> "
          f"{_figure(after['verbalised_auroc'], 2)} | {row['reward_first']:.2f} -> {row['reward_last']:.2f} | "
          f"{row['step_s']:.1f} ({row['generate_s']:.1f} generating) | {row['minutes']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cold-start-steps", type=int, default=200)
    parser.add_argument("--grpo-steps", type=int, default=200)
    parser.add_argument("--test-per-emotion", type=int, default=25)
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="The GRPO recipe (its model and settings).")
    parser.add_argument("--sampled-images", type=int, default=0,
                        help="Also sample 8 answers for this many train images with each model (0: not).")
    parser.add_argument("--keep", type=Path, default=None, help="Keep each seed's data, models and evaluations under DIR.")
    args, args.recipe_overrides = parser.parse_known_args()  # the rest: recipe keys, `--learning_rate 1e-5`
    root = args.keep or Path(tempfile.mkdtemp(prefix="emovit-bench-grpo-"))
    print(machine_load())
    print(f"cold start {args.cold_start_steps} steps, GRPO {args.grpo_steps} steps ({args.recipe} "
          f"{' '.join(args.recipe_overrides)}), {8 * args.test_per_emotion} test images")
    print("| seed | generate accuracy, cold start -> GRPO | points | in format | stated-confidence ECE x100 | "
          "stated-confidence AUROC | mean reward, first step -> last 5 | s per GRPO step | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, root / f"seed-{seed}", args))
        print_row(rows[-1])
    if args.sampled_images:
        print(f"Of {args.sampled_images} train images, 8 answers each sampled at the recipe's temperature:")
        for row in rows:
            print(f"seed {row['seed']}: a right answer among the 8 for {row['before']['any_right']} (cold start) -> "
                  f"{row['after']['any_right']} (GRPO); all 8 on one label {row['before']['one_label']} -> "
                  f"{row['after']['one_label']}")
    gains = [100 * (row["after"]["accuracy"] - row["before"]["accuracy"]) for row in rows]
    print(f"accuracy gain in points: min {min(gains):+.1f}, median {statistics.median(gains):+.1f}; "
          f"total {sum(row['minutes'] for row in rows):.1f} minutes")
    print(machine_load())


if __name__ == "__main__":
    main()
