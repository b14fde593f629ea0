"""`emovit eval` (parser only; handlers import lazily)."""

import argparse
import json

from dataset_builder.emotions import LABEL_SPACES


def add_commands(subparsers) -> None:
    evaluate = subparsers.add_parser(
        "eval",
        help="Evaluate a model: emotion classification (rank or generate), reasoning or humour judged by an LLM.",
        description="Writes results.json, predictions.jsonl (resumable) and a confusion-matrix PNG to --out; a local "
        "model folder gets its README.md model-index updated. Run under `accelerate launch` to shard the data.",
    )
    evaluate.add_argument("--task", choices=["classification", "reasoning", "humor"], default="classification",
                          help="classification (default); reasoning or humor: free-text answers judged by an LLM.")
    evaluate.add_argument("--model", required=True, help="Model folder or Hub id (loaded with trust_remote_code).")
    evaluate.add_argument("--data", required=True, help="Dataset folder (`emovit data build` output) or Hub id.")
    evaluate.add_argument("--out", required=True, help="Output folder; an interrupted run resumes from it.")
    evaluate.add_argument("--config", help="Dataset config (default: categorical; reasoning for --task reasoning; "
                          "--task humor needs one whose completions are reference funny captions).")
    evaluate.add_argument("--split", default="test", help="Dataset split (default: test).")
    evaluate.add_argument("--label-space", choices=list(LABEL_SPACES), help="Candidate labels (default: the dataset's).")
    evaluate.add_argument("--mode", choices=["rank", "generate"], default="rank",
                          help="rank: score every candidate answer; generate: greedy decoding, parsed (EmoVIT's protocol).")
    evaluate.add_argument("--paraphrases", type=int, default=1,
                          help="Instruction paraphrases per image; above 1, instruction sensitivity is reported.")
    evaluate.add_argument("--batch-size", type=int, default=8, help="Images per forward pass (default: 8).")
    evaluate.add_argument("--max-new-tokens", type=int, help="Answer token budget (generate mode, judged tasks).")
    evaluate.add_argument("--generation", choices=["default", "release"], default="default",
                          help="generate mode: default (greedy, answer-length budget) or release (the original "
                               "release's LAVIS decoding: greedy, 256 new tokens, repetition penalty 5.0 on them).")
    evaluate.add_argument("--calibrate-on", metavar="VAL_DATA",
                          help="Rank mode: fit a temperature (and per-label biases if they earn their keep) on this "
                          "dataset's --calibrate-split first and store it in the model folder's config.json.")
    evaluate.add_argument("--calibrate-split", default="validation", help="Split of --calibrate-on (default: validation).")
    evaluate.add_argument("--base-model", help="Model card: the base model id (e.g. Salesforce/instructblip-vicuna-7b).")
    evaluate.add_argument("--training-data", help="Model card: the training dataset id.")
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


def run_eval_command(args: argparse.Namespace) -> int:
    if args.task != "classification":
        return run_judged_command(args)
    from evaluation.harness import run_eval
    from evaluation.settings import EvalSettings

    settings = EvalSettings(
        model=args.model, data=args.data, out=args.out, config=args.config or "categorical", split=args.split,
        label_space=args.label_space, mode=args.mode, paraphrases=args.paraphrases, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, generation=args.generation,
        calibrate_on=args.calibrate_on, calibrate_split=args.calibrate_split,
    )
    results = run_eval(settings, base_model=args.base_model, training_data=args.training_data)
    if results is not None:
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


def run_judged_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dataset_builder.chat import ClientSettings
    from evaluation.judge import run_judged_task
    from evaluation.model_card import update_model_card
    from modeling_emovit.errors import EmoVITInputError

    if not args.judge_model:
        raise EmoVITInputError(f"--task {args.task} needs --judge-model (and --judge-base-url for a server other than OpenAI).")
    judge = ClientSettings(model=args.judge_model, base_url=args.judge_base_url, concurrency=args.judge_concurrency,
                           temperature=0.2)  # LLaVA-Bench's review temperature
    from evaluation.judge import DEFAULT_RULES, load_review_rules

    rules = load_review_rules(args.judge_rules, args.judge_rules_key) if args.judge_rules else DEFAULT_RULES
    results = run_judged_task(args.task, args.model, args.data, args.out, args.config, args.split, judge,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens or 256, rules=rules)
    if Path(args.model).is_dir():
        update_model_card(args.model, [results], base_model=args.base_model, datasets=args.training_data)
    print(f"{args.task}: {json.dumps(results['metrics'])} -> {args.out}")
    return 0


def format_calibration(calibration: dict) -> str:
    """Before/after calibration figures of a rank run, one line each."""
    lines = [f"calibration (T = {calibration['temperature']:.3g}, per-label biases "
             f"{'kept' if calibration['bias_kept'] else 'not kept'}; fitted on {calibration['fitted_on']}):"]
    for name in ("before", "after"):
        figures = calibration[name]
        lines.append(f"  {name:<6} ECE {figures['ece']:.4f}  Brier {figures['brier']:.4f}  NLL {figures['nll']:.4f}  "
                     f"accuracy {figures['accuracy']:.4f}")
    return "\n".join(lines)
