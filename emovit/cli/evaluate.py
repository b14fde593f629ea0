"""`emovit eval` (parser only; handlers import lazily)."""

import argparse
import json

from evaluation.label_space import evaluation_label_space_names

from . import add_trust_remote_code_argument

# --config when none is given, by --task (humor has no default: its references are captions no build writes)
DEFAULT_CONFIGS = {"classification": "categorical", "reasoning": "reasoning", "humor": None}


def add_commands(subparsers) -> None:
    evaluate = subparsers.add_parser(
        "eval",
        help="Evaluate a model: emotion classification (rank or generate), reasoning or humour judged by an LLM.",
        description="Writes results.json, predictions.jsonl (resumable) and a confusion-matrix PNG to --out; a local "
        "model folder gets its README.md model-index updated. Run under `accelerate launch` to shard the data.",
    )
    evaluate.add_argument("--task", choices=["classification", "reasoning", "humor"], default="classification",
                          help="classification (default); reasoning or humor: free-text answers judged by an LLM.")
    evaluate.add_argument("--model", required=True, help="Model folder or Hub id.")
    evaluate.add_argument("--data", required=True, help="Dataset folder (`emovit data build` output) or Hub id.")
    evaluate.add_argument("--out", required=True, help="Output folder; an interrupted run resumes from it.")
    evaluate.add_argument("--config", help="Dataset config (default: categorical; reasoning for --task reasoning; "
                          "--task humor needs one whose completions are reference funny captions).")
    evaluate.add_argument("--split", default="test", help="Dataset split (default: test).")
    evaluate.add_argument("--label-space", choices=evaluation_label_space_names(),
                          help="Candidate labels (default: the dataset's); fi-2 asks FI's polarity (positive/negative).")
    evaluate.add_argument("--mode", choices=["rank", "generate"], default="rank",
                          help="rank: score every candidate answer; generate: greedy decoding, parsed (EmoVIT's protocol).")
    evaluate.add_argument("--paraphrases", type=int, default=1,
                          help="Instruction paraphrases per image; above 1, instruction sensitivity is reported.")
    evaluate.add_argument("--batch-size", type=int, default=8, help="Images per forward pass (default: 8).")
    evaluate.add_argument("--max-new-tokens", type=int, help="Answer token budget (generate mode, judged tasks).")
    evaluate.add_argument("--generation", choices=["default", "release"], default="default",
                          help="generate mode: default (greedy, answer-length budget) or release (the original "
                               "release's LAVIS decoding: greedy, 256 new tokens, repetition penalty 5.0 on them).")
    evaluate.add_argument("--answer-format", choices=["categorical", "reasoning"], default="categorical",
                          help="categorical (`Predict emotion: X`, EmoVIT's) or reasoning (the "
                          "<think>/<answer>/<confidence> format recipes/grpo.py trains). Classification, generate "
                          "mode: adds format compliance and the stated confidence's ECE and Brier score beside the "
                          "rank probabilities'; --task reasoning: the judge scores the <think> text.")
    evaluate.add_argument("--calibrate-on", metavar="VAL_DATA",
                          help="Rank mode: fit a temperature (and per-label biases if they earn their keep) on this "
                          "dataset's --calibrate-split first and store it in the model folder's config.json.")
    evaluate.add_argument("--calibrate-split", default="validation", help="Split of --calibrate-on (default: validation).")
    evaluate.add_argument("--base-model", help="Model card: the base model id (e.g. Salesforce/instructblip-vicuna-7b).")
    evaluate.add_argument("--training-data", help="Model card: the training dataset id.")
    add_trust_remote_code_argument(evaluate)
    judge = evaluate.add_argument_group("LLM judge (--task reasoning|humor); the API key comes from $OPENAI_API_KEY")
    judge.add_argument("--judge-model", help="Judge model name, e.g. gpt-4o-mini.")
    judge.add_argument("--judge-base-url", help="OpenAI-compatible server URL (default: OpenAI's).")
    judge.add_argument("--judge-concurrency", type=int, default=8, help="Judge requests in flight (default: 8).")
    judge.add_argument("--judge-rules", metavar="FILE",
                       help="Your copy of LLaVA-Bench's llava/eval/table/rule.json (or a .txt rule): the reasoning "
                            "judge's scoring rule, needed for LLaVA-Bench-comparable scores (default: this "
                            "project's own wording).")
    judge.add_argument("--judge-rules-key", default="llava_bench_complex",
                       help="The rule.json entry to use (default: llava_bench_complex).")
    evaluate.set_defaults(handler=run_eval_command)


# What each classification mode does, printed before a run starts.
MODE_SUMMARIES = {
    "rank": "rank mode: every candidate answer scored by its likelihood",
    "generate": "generate mode: greedy decoding, the answer parsed onto a label",
}


def run_eval_command(args: argparse.Namespace) -> int:
    import os

    from evaluation.settings import EvalSettings

    settings = EvalSettings(
        model=args.model, data=args.data, out=args.out, task=args.task, config=args.config or DEFAULT_CONFIGS[args.task],
        split=args.split, label_space=args.label_space, mode=args.mode if args.task == "classification" else "generate",
        paraphrases=args.paraphrases, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        generation=args.generation, answer_format=args.answer_format, calibrate_on=args.calibrate_on,
        calibrate_split=args.calibrate_split,
        trust_remote_code=args.trust_remote_code,
    )
    if args.task != "classification":
        return run_judged_command(args, settings)
    from evaluation.harness import run_eval

    if os.environ.get("RANK", "0") == "0":  # once under `accelerate launch`
        release = " (the release's decoding)" if args.mode == "generate" and args.generation == "release" else ""
        print(f"Evaluating {args.model} on {args.data} ({settings.config}, {args.split}) in "
              f"{MODE_SUMMARIES[args.mode]}{release}.")
    results = run_eval(settings, base_model=args.base_model, training_data=args.training_data)
    if results is not None:
        _point_at_add_pipeline(args.model)
        metrics = results["metrics"]
        unmapped = f" (unmapped answers {metrics['unmapped_rate']:.1%})" if results["mode"] == "generate" else ""
        skipped = results["skipped_images"]["count"]
        polarity = "n/a" if metrics["polarity_accuracy"] is None else f"{metrics['polarity_accuracy']:.4f}"
        print(f"{results['data']} [{results['label_space']}, {results['mode']}] accuracy {metrics['accuracy']:.4f}"
              f"{unmapped}, macro-F1 {metrics['macro_f1']:.4f}, polarity accuracy {polarity}"
              f"{f', {skipped} undecodable images skipped' if skipped else ''} -> {args.out}")
        if "calibration" in results:
            print(format_calibration(results["calibration"]))
    return 0


def run_judged_command(args: argparse.Namespace, settings) -> int:
    from pathlib import Path

    from dataset_builder.chat import ClientSettings
    from evaluation.judge import DEFAULT_RULES, load_review_rules, run_judged_task
    from evaluation.model_card import update_model_card
    from modeling_emovit.errors import EmoVITInputError

    if not args.judge_model:
        raise EmoVITInputError(f"--task {args.task} needs --judge-model (and --judge-base-url for a server other than OpenAI).")
    judge = ClientSettings(model=args.judge_model, base_url=args.judge_base_url, concurrency=args.judge_concurrency,
                           temperature=0.2)  # LLaVA-Bench's review temperature
    rules = load_review_rules(args.judge_rules, args.judge_rules_key) if args.judge_rules else DEFAULT_RULES
    results = run_judged_task(settings, judge, rules=rules)
    if results is None:  # another process of `accelerate launch`: the main one judges and reports
        return 0
    if Path(args.model).is_dir():
        update_model_card(args.model, [results], base_model=args.base_model, datasets=args.training_data)
    print(f"{args.task}: {json.dumps(results['metrics'])} -> {args.out}")
    return 0


def _point_at_add_pipeline(model: str) -> None:
    """A note for a local model folder without the emotion pipeline (a stock `trl sft` folder): the model card's
    `pipeline("image-emotion-classification", ...)` would raise `KeyError: Unknown task` on it."""
    from .add_pipeline import ADD_PIPELINE_HINT, lacks_emotion_pipeline

    if lacks_emotion_pipeline(model):
        print(f"Note: {model} has no image-emotion-classification pipeline (pipeline(...) raises KeyError: Unknown "
              f"task); {ADD_PIPELINE_HINT.format(folder=model)}.")


def format_calibration(calibration: dict) -> str:
    """Before/after calibration figures of a rank run, one line each."""
    lines = [f"calibration (T = {calibration['temperature']:.3g}, per-label biases "
             f"{'kept' if calibration['bias_kept'] else 'not kept'}; fitted on {calibration['fitted_on']}):"]
    for name in ("before", "after"):
        figures = calibration[name]
        lines.append(f"  {name:<6} ECE {figures['ece']:.4f}  Brier {figures['brier']:.4f}  NLL {figures['nll']:.4f}  "
                     f"accuracy {figures['accuracy']:.4f}")
    return "\n".join(lines)
