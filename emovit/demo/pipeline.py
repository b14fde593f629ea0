"""`emovit demo`: sample -> instructions -> dataset -> base -> EmoVIT (`-m emovit.training.sft`) -> evaluation -> summary.

With `--grpo`, then the RL stage on the same train split: recipes/tiny-vlm/grpo.yaml (`-m emovit.training.grpo`: a
cold start on the reasoning format, then GRPO) trains a small random chat VLM, since GRPOTrainer cannot drive EmoVIT's
Q-Former (recipes/README.md), and both of its models are evaluated in the reasoning format.

The sample has three disjoint splits: train (the only one the models learn from), test (every reported figure) and
a held-out validation split that only calibrates the EmoVIT's rank probabilities (`emovit eval --calibrate-on`).

Every stage records its result in `OUT/demo_state.json` when it finishes, so an interrupted demo resumes at the
first unfinished stage (whose partial output is removed first); instruction generation resumes by itself.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from modeling_emovit.labels import MIKELS_EMOTIONS
from modeling_emovit.errors import EmoVITInputError

# The EmoVIT stage's recipe, passed as flags to the installed entry point (`emovit.training.sft`, the script behind
# recipes/sft.py), so the demo needs no source tree: EmoVIT's freezing policy on the pretrained tiny base, settings
# measured to learn on CPU (batch 32, lr 1e-3, cosine with 10% warmup).
DEMO_RECIPE = {
    "dtype": "float32", "dataset_config": "categorical", "max_prompt_length": 128, "max_completion_length": 64,
    "use_cpu": "true", "bf16": "false", "per_device_train_batch_size": 32, "learning_rate": 1e-3,
    "weight_decay": 0.05, "lr_scheduler_type": "cosine", "warmup_steps": 0.1, "gradient_checkpointing": "false",
    "include_num_input_tokens_seen": "true", "save_strategy": "no", "report_to": "none",
}
# The RL stage's answers: the tiny recipe's completion budget (128) with room to spare; what they are scored on.
REASONING_ANSWER_TOKENS = 160
REASONING_FIGURES = ("format_compliance", "verbalised_ece_10_bins_x100", "verbalised_auroc")
STATE_FILE = "demo_state.json"
CHANCE = 1 / len(MIKELS_EMOTIONS)


class DemoRun:
    """The demo's output folder and its record of finished stages."""

    def __init__(self, out: Path):
        self.out = out
        self.state_path = out / STATE_FILE
        if out.exists() and any(out.iterdir()) and not self.state_path.exists():
            raise EmoVITInputError(
                f"{out} exists and is not an emovit demo folder (no {STATE_FILE}); remove it or pass another --out."
            )
        out.mkdir(parents=True, exist_ok=True)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def stage(self, name: str, outputs: list[Path], run):
        """Runs `run()` unless `name` finished before; returns its (JSON-serialisable) result."""
        if name in self.state:
            print(f"[demo] {name}: done in an earlier run, kept.")
            return self.state[name]
        for path in outputs:  # an interrupted earlier attempt
            shutil.rmtree(path, ignore_errors=True)
        print(f"[demo] {name} ...", flush=True)
        self.state[name] = run()
        self.state_path.write_text(json.dumps(self.state, indent=2))
        return self.state[name]


def _records(root: Path, split: str) -> list[dict]:
    from dataset_builder.generation import read_captions

    captions = read_captions(root / "captions.jsonl")
    return [
        {"image": str(root / image), "caption": captions[Path(image).stem], "emotion": label}
        for label, image, _ in json.loads((root / f"{split}.json").read_text())
    ]


def instruction_backend(name: str, model: str | None, base_url: str | None, cache: Path):
    """`rules` (offline), or `openai` against api.openai.com or any OpenAI-compatible `base_url`."""
    from dataset_builder.generation import RulesBackend

    if name == "rules":
        return RulesBackend()
    from dataset_builder.chat import ClientSettings, ResponseCache, api_key_from_env
    from dataset_builder.generation import OpenAIBackend

    settings = ClientSettings(model=model or "gpt-4o-mini", base_url=base_url)
    api_key_from_env(settings)  # before any stage runs: a missing key is one sentence, not a broken demo
    return OpenAIBackend(settings, ResponseCache(cache))


def _generate(root: Path, out: Path, backend) -> dict:
    from dataset_builder.generation import generate_instructions, read_captions
    from dataset_builder.sources import read_records

    report = generate_instructions(
        read_records("emoset", root, "train"), backend, out, tasks=("conversation", "reasoning"),
        captions=read_captions(root / "captions.jsonl"),
    )
    return {"done": report.done, "failed": report.failed}


def _build(root: Path, split: str, out: Path, generations: Path | None) -> dict:
    from dataset_builder.build import build_dataset

    tasks = ("categorical", "conversation", "reasoning") if generations else ("categorical",)
    report = build_dataset("emoset", root, split, out, generations=generations, tasks=tasks)
    return {"rows": sum(report.rows.values()), "skipped": report.total_skipped}


def _launch(module: str, recipe: dict) -> list[dict]:
    """`accelerate launch` of `emovit.training.<module>` on one CPU process with `recipe` as flags; its log history."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", f"emovit.training.{module}",
        *[item for key, value in recipe.items() for item in (f"--{key}", str(value))],
    ]
    subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    return json.loads((Path(recipe["output_dir"]) / "trainer_state.json").read_text())["log_history"]


def _train_emovit(base: Path, data: Path, out: Path, steps: int, seed: int) -> dict:
    recipe = {**DEMO_RECIPE, "model_name_or_path": base, "dataset_name": data, "output_dir": out, "max_steps": steps,
              "seed": seed, "logging_steps": max(1, steps // 10)}
    return _loss_summary([entry["loss"] for entry in _launch("sft", recipe) if "loss" in entry])


def _train_grpo(data: Path, out: Path, seed: int, steps: tuple[int, int] | None) -> dict:
    """recipes/tiny-vlm/grpo.yaml on the demo's train split, with `steps` = (cold start, GRPO) if given; the mean
    reward of GRPO's first logged step and of its last."""
    from emovit.training.recipe_files import recipe_file

    recipe = {"config": recipe_file("tiny-vlm/grpo.yaml"), "dataset_name": data, "output_dir": out, "seed": seed,
              "save_strategy": "no"}
    if steps:
        recipe.update(cold_start_max_steps=steps[0], max_steps=steps[1], logging_steps=max(1, steps[1] // 10))
    rewards = [entry["reward"] for entry in _launch("grpo", recipe) if "reward" in entry]
    return {"first_reward": rewards[0], "last_reward": rewards[-1]}


def _evaluate(model: Path, data: Path, out: Path, mode: str, base_model: str | None, calibrate_on: Path | None = None,
              answer_format: str = "categorical") -> dict:
    from evaluation.harness import EvalSettings, run_eval

    results = run_eval(
        EvalSettings(model=str(model), data=str(data), out=str(out), mode=mode, label_space="emoset", batch_size=16,
                     calibrate_on=str(calibrate_on) if calibrate_on else None, answer_format=answer_format,
                     max_new_tokens=REASONING_ANSWER_TOKENS if answer_format == "reasoning" else None),
        base_model=base_model, training_data=None,
    )
    summary = {"accuracy": results["metrics"]["accuracy"], "unmapped": results["metrics"]["unmapped_rate"]}
    if answer_format == "reasoning":
        summary.update({key: results["metrics"][key] for key in REASONING_FIGURES})
    if "calibration" in results:
        figures = ("ece", "brier", "nll", "accuracy")
        calibration = results["calibration"]
        summary["calibration"] = {"temperature": calibration["temperature"], "bias_kept": calibration["bias_kept"],
                                  **{when: {k: calibration[when][k] for k in figures} for when in ("before", "after")}}
    return summary


def run_demo(out, steps: int = 300, base_steps: int = 200, seed: int = 0, per_emotion: tuple[int, int] = (100, 25),
             backend: str = "rules", model: str | None = None, base_url: str | None = None,
             val_per_emotion: int = 25, grpo: bool = False, grpo_steps: tuple[int, int] | None = None) -> dict:
    """Runs every stage into `out` and returns the summary (also printed); with `grpo`, the RL stage too, its
    (cold start, GRPO) steps `grpo_steps` or the tiny recipe's."""
    from dataset_builder.sample import write_sample_emoset
    from emovit.demo.base import pretrain_base

    run = DemoRun(Path(out))
    root, generations = run.out / "emoset", run.out / "generations.jsonl"
    backend = instruction_backend(backend, model, base_url, run.out / "generation-cache.sqlite")
    data_train, data_test, data_val = run.out / "data" / "train", run.out / "data" / "test", run.out / "data" / "validation"
    base, emovit = run.out / "base", run.out / "emovit"
    run.stage("sample", [root], lambda: write_sample_emoset(root, *per_emotion, seed=seed, val_per_emotion=val_per_emotion))
    run.stage("instructions", [], lambda: _generate(root, generations, backend))
    run.stage("dataset", [data_train, data_test, data_val], lambda: {
        "train": _build(root, "train", data_train, generations), "test": _build(root, "test", data_test, None),
        **({"validation": _build(root, "validation", data_val, None)} if val_per_emotion else {})})
    labels = list(MIKELS_EMOTIONS)
    run.stage("base", [base], lambda: _loss_summary(
        pretrain_base(_records(root, "train"), labels, base, steps=base_steps, seed=seed)))
    evaluations = {}
    for mode in ("rank", "generate"):
        evaluations[f"base_{mode}"] = run.stage(f"eval_base_{mode}", [run.out / "eval" / f"base-{mode}"],
                                                lambda: _evaluate(base, data_test, run.out / "eval" / f"base-{mode}", mode, None))
    training = run.stage("emovit", [emovit], lambda: _train_emovit(base, data_train, emovit, steps, seed))
    for mode in ("rank", "generate"):
        evaluations[f"emovit_{mode}"] = run.stage(
            f"eval_emovit_{mode}", [run.out / "eval" / f"emovit-{mode}"],
            lambda: _evaluate(emovit, data_test, run.out / "eval" / f"emovit-{mode}", mode, str(base),
                              data_val if mode == "rank" and val_per_emotion else None))
    summary = {"training": training, "evaluation": evaluations, "test_images": run.state["sample"]["test"],
               "validation_images": run.state["sample"].get("val", 0), "paths": {
        "sample": str(root), "generations": str(generations), "dataset": str(data_train.parent),
        "base": str(base), "model": str(emovit), "model_card": str(emovit / "README.md"), "eval": str(run.out / "eval")}}
    if grpo:
        summary["grpo"] = _grpo_stages(run, data_train, data_test, seed, grpo_steps)
        summary["paths"]["grpo_model"] = str(run.out / "grpo")
    print(format_summary(summary))
    return summary


def _grpo_stages(run: DemoRun, data_train: Path, data_test: Path, seed: int, steps: tuple[int, int] | None) -> dict:
    """The RL stage and the reasoning-format evaluation of its cold-started and its GRPO model."""
    from emovit.training.grpo import COLD_START_FOLDER

    grpo = run.out / "grpo"
    summary = {"training": run.stage("grpo", [grpo], lambda: _train_grpo(data_train, grpo, seed, steps))}
    for name, model in (("cold_start", grpo / COLD_START_FOLDER), ("grpo", grpo)):
        out = run.out / "eval" / f"{name.replace('_', '-')}-reasoning"
        summary[name] = run.stage(f"eval_{name}_reasoning", [out], lambda: _evaluate(
            model, data_test, out, "generate", None, answer_format="reasoning"))
    return summary


def _loss_summary(losses: list[float]) -> dict:
    return {"first_loss": losses[0], "last_loss": losses[-1]}


def format_summary(summary: dict) -> str:
    evaluation, training = summary["evaluation"], summary["training"]
    lines = [
        "",
        f"EmoVIT demo: held-out test split ({summary['test_images']} images, {len(MIKELS_EMOTIONS)} emotions)",
        f"{'model':<10}{'rank acc':>10}{'generate acc':>14}{'chance':>9}",
    ]
    for name in ("base", "emovit"):
        rank, generate = evaluation[f"{name}_rank"]["accuracy"], evaluation[f"{name}_generate"]["accuracy"]
        lines.append(f"{name:<10}{rank:>10.1%}{generate:>14.1%}{CHANCE:>9.1%}")
    calibration = evaluation["emovit_rank"].get("calibration")
    if calibration:
        lines.append(f"EmoVIT rank probabilities, calibrated on the {summary['validation_images']} held-out validation "
                     f"images (T = {calibration['temperature']:.3g}, per-label biases "
                     f"{'kept' if calibration['bias_kept'] else 'not kept'}), on the test split:")
        lines.append(f"{'':<10}{'ECE':>8}{'Brier':>8}{'NLL':>8}{'accuracy':>10}")
        for when in ("before", "after"):
            f = calibration[when]
            lines.append(f"{when:<10}{f['ece']:>8.3f}{f['brier']:>8.3f}{f['nll']:>8.3f}{f['accuracy']:>10.1%}")
    lines.append(f"EmoVIT training loss: {training['first_loss']:.3f} (first log) -> {training['last_loss']:.3f} (last)")
    if "grpo" in summary:
        lines.extend(_grpo_lines(summary["grpo"]))
    lines.extend(f"{key:>12}: {path}" for key, path in summary["paths"].items())
    return "\n".join(lines)


def _grpo_lines(grpo: dict) -> list[str]:
    lines = ["RL stage (recipes/tiny-vlm/grpo.yaml: a small random chat VLM, cold start then GRPO), generate mode "
             "in the reasoning format, on the test split (AUROC 0.50: one confidence for every image):",
             f"{'model':<12}{'accuracy':>10}{'in format':>11}{'stated-confidence ECE x100':>28}{'its AUROC':>11}"]
    for name in ("cold_start", "grpo"):
        figures = grpo[name]
        ece, auroc = figures["verbalised_ece_10_bins_x100"], figures.get("verbalised_auroc")  # older states: none
        lines.append(f"{name.replace('_', ' '):<12}{figures['accuracy']:>10.1%}{figures['format_compliance']:>11.0%}"
                     f"{'n/a' if ece is None else f'{ece:.1f}':>28}{'n/a' if auroc is None else f'{auroc:.2f}':>11}")
    training = grpo["training"]
    lines.append(f"GRPO mean reward: {training['first_reward']:.2f} (first log) -> "
                 f"{training['last_reward']:.2f} (last)")
    return lines
