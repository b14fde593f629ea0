"""`emovit data caption` and `emovit data generate` (parsers only; handlers import lazily)."""

import argparse
import sys

from dataset_builder.schema import GENERATED_TASKS as TASK_NAMES
from dataset_builder.sources import SOURCES

from . import add_trust_remote_code_argument


def _tasks(value: str) -> list[str]:
    tasks = [task.strip() for task in value.split(",") if task.strip()]
    unknown = [task for task in tasks if task not in TASK_NAMES]
    if not tasks or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(TASK_NAMES)} (comma-separated), got {value!r}")
    return tasks


ALLOW_OUTSIDE_ROOT_HELP = ("Also read images whose path leads outside --root (`../`, absolute paths, symlinks); by "
                           "default they are skipped and counted.")


def _add_source_arguments(parser) -> None:
    parser.add_argument("--source", default="emoset", choices=sorted(SOURCES),
                        help="Dataset layout to read (default: emoset).")
    parser.add_argument("--root", required=True, help="Dataset folder.")
    parser.add_argument("--split", default="train", help="Split to read (default: train).")
    parser.add_argument("--max-records", type=int, help="Only the first N images.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)


def add_commands(data_commands) -> None:
    caption = data_commands.add_parser(
        "caption", help="Caption images with a transformers image-to-text model (resumable).",
        description="Batched captions with any AutoModelForImageTextToText model (BLIP-2 as in EmoVIT, or an "
                    "EmoVIT folder); skips ids already in --out.",
    )
    _add_source_arguments(caption)
    caption.add_argument("--model", required=True, help="Hub id or local folder of an image-to-text model.")
    caption.add_argument("--out", required=True, help="captions.jsonl to append to.")
    caption.add_argument("--batch-size", type=int, default=8, help="Images per generate call.")
    caption.add_argument("--prompt", default="",
                         help="Instruction for instruction-tuned models (InstructBLIP, EmoVIT), e.g. "
                              "'Describe the image briefly.'; none for BLIP-2 (as in the paper).")
    caption.add_argument("--max-new-tokens", type=int, default=30, help="Caption length budget in tokens.")
    caption.add_argument("--device", help="Torch device (default: cuda when available, else cpu).")
    add_trust_remote_code_argument(caption)
    caption.set_defaults(handler=run_caption)
    _add_generate_command(data_commands)


def _add_generate_command(data_commands) -> None:
    generate = data_commands.add_parser(
        "generate", help="Write conversation/reasoning instruction pairs with GPT, the Batch API or offline rules.",
        description="Resumable, cached, concurrent generation of EmoVIT instruction pairs from captions and clues. "
                    "The API key is read from $OPENAI_API_KEY (or --api-key-env NAME) and never written anywhere.",
    )
    _add_source_arguments(generate)
    generate.add_argument("--captions", help="captions.jsonl from `emovit data caption` (default: record captions).")
    generate.add_argument("--tasks", type=_tasks, default=list(TASK_NAMES), help="conversation,reasoning (default: both).")
    generate.add_argument("--backend", choices=("openai", "batch", "rules"), default="openai",
                          help="openai: concurrent chat completions; batch: OpenAI's Batch API (half price, results "
                               "within 24 h); rules: offline, deterministic pairs from the clues (no key, no cost).")
    generate.add_argument("--model", help="Chat model name (default: gpt-4o-mini; gpt-4 with --prompts-from).")
    generate.add_argument("--prompts-from", metavar="DIR",
                          help="A clone of the original EmoVIT release: send its emo/prompt/conversation.txt and "
                               "reasoning.txt as they are, with its clue text format, in text mode (any number of "
                               "Question:/Answer: pairs); defaults then follow the release: gpt-4, temperature 1, "
                               "no max tokens.")
    generate.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, "
                                             "transformers serve).")
    generate.add_argument("--api-key-env", default="OPENAI_API_KEY", help="Environment variable holding the API key.")
    generate.add_argument("--concurrency", type=int, default=8, help="Requests in flight (default: 8).")
    generate.add_argument("--rpm", type=float, help="Client-side limit on requests per minute.")
    generate.add_argument("--tpm", type=float, help="Client-side limit on tokens per minute.")
    generate.add_argument("--timeout", type=float, default=60.0,
                          help="Deadline of each request attempt, the whole reply included, in seconds (default: 60).")
    generate.add_argument("--max-retries", type=int, default=6, help="Retries on 429/5xx/timeouts (default: 6).")
    generate.add_argument("--backoff-max", type=float, default=30.0,
                          help="Longest wait before a retry, in seconds (default: 30); a server asking for a longer "
                               "Retry-After fails the item with that reason instead of stalling the run.")
    generate.add_argument("--max-rejections", type=int, default=2,
                          help="Times a reply failing validation is asked again (default: 2).")
    generate.add_argument("--max-tokens", type=int,
                          help="Completion tokens per request (default: 1024; none with --prompts-from).")
    generate.add_argument("--temperature", type=float,
                          help="Sampling temperature (default: the server's; 1 with --prompts-from).")
    generate.add_argument("--cache", help="SQLite cache file: a re-run sends nothing for what it holds.")
    generate.add_argument("--prices", help="JSON price table {model: {input, output}} in USD per 1M tokens.")
    generate.add_argument("--poll-interval", type=float, default=30.0, help="Seconds between Batch API polls.")
    generate.add_argument("--no-content-checks", action="store_true",
                          help="Write pairs that state another emotion than the image's label, or carry "
                               "instruction-like text (\"ignore the rules\", \"SYSTEM OVERRIDE\"); by default such "
                               "replies are rejected, asked again and counted by reason.")
    generate.add_argument("--dry-run", action="store_true",
                          help="Print how many requests the run would send and their estimated cost, then stop: "
                               "nothing is sent or written, and no API key is needed.")
    generate.add_argument("--out", required=True, help="generations.jsonl to append to; failures go to "
                                                       "<out>.failed.jsonl.")
    generate.set_defaults(handler=run_generate)


def _records(args, report):
    """The source's records; what the reader skips (missing images, paths outside --root) is counted in `report`."""
    from dataset_builder.sources import read_records

    return read_records(args.source, args.root, args.split, report, allow_outside_root=args.allow_outside_root)


def run_caption(args) -> int:
    from dataset_builder.generation import caption_records
    from dataset_builder.report import CaptionReport

    report = CaptionReport()
    caption_records(
        _records(args, report), args.model, args.out, batch_size=args.batch_size, prompt=args.prompt,
        max_new_tokens=args.max_new_tokens, max_records=args.max_records, device=args.device,
        progress=not args.no_progress, report=report, trust_remote_code=args.trust_remote_code,
    )
    print(report.summary())
    return _nothing_produced(args, report.done + report.resumed, report.total_skipped)


def make_backend(args, cache):
    """The backend named by --backend, configured from the command line."""
    from dataset_builder.chat import ClientSettings, api_key_from_env
    from dataset_builder.generation import OpenAIBackend, RulesBackend

    from dataset_builder.generation.release_prompts import RELEASE_MODEL, RELEASE_TEMPERATURE, load_release_prompts
    from modeling_emovit.errors import EmoVITInputError

    release = args.prompts_from is not None
    if args.backend == "rules":
        if release:
            raise EmoVITInputError("--prompts-from needs a chat model (--backend openai or batch); the rules backend "
                                   "writes its pairs without prompts.")
        return RulesBackend()
    prompts = load_release_prompts(args.prompts_from, args.tasks) if release else None
    settings = ClientSettings(
        model=args.model or (RELEASE_MODEL if release else "gpt-4o-mini"), base_url=args.base_url,
        api_key_env=args.api_key_env, concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm, timeout=args.timeout,
        max_retries=args.max_retries, backoff_max=args.backoff_max, max_rejections=args.max_rejections,
        max_tokens=args.max_tokens if args.max_tokens is not None else (None if release else 1024),
        temperature=args.temperature if args.temperature is not None else (RELEASE_TEMPERATURE if release else None),
    )
    if not args.dry_run:
        api_key_from_env(settings)  # fail before any work when the key is missing
    content_checks = not args.no_content_checks
    if args.backend == "batch":
        from dataset_builder.generation.batch import BatchBackend

        return BatchBackend(settings, f"{args.out}.batch", cache, poll_interval=args.poll_interval, prompts=prompts,
                            content_checks=content_checks)
    return OpenAIBackend(settings, cache, prompts=prompts, content_checks=content_checks)


def _open_cache(args):
    """The --cache file (a dry run only reads one that exists: it creates nothing)."""
    from pathlib import Path

    from dataset_builder.chat import ResponseCache

    if not args.cache or args.backend == "rules" or (args.dry_run and not Path(args.cache).exists()):
        return None
    return ResponseCache(args.cache)


def run_generate(args) -> int:
    from dataset_builder.generation import estimate_instructions, generate_instructions, read_captions
    from dataset_builder.generation.pricing import load_prices
    from dataset_builder.report import GenerationReport

    captions = read_captions(args.captions) if args.captions else None
    prices = load_prices(args.prices)
    cache = _open_cache(args)
    report = GenerationReport()
    plan = dict(tasks=args.tasks, captions=captions, max_records=args.max_records, prices=prices, report=report)
    try:
        backend = make_backend(args, cache)
        if args.dry_run:
            estimate = estimate_instructions(_records(args, report), backend, args.out, **plan)
            print("\n".join([estimate.summary(), *report.reason_lines()]))
            return 0
        generate_instructions(_records(args, report), backend, args.out, progress=not args.no_progress, **plan)
    finally:
        if cache is not None:
            cache.close()
    print(report.summary())
    return _nothing_produced(args, report.done + report.resumed, report.failed)


def _nothing_produced(args, written: int, lost: int) -> int:
    """Exit code 1 (and a sentence on stderr) when the output holds nothing and every item was lost, so that a
    script notices a run that produced nothing at all."""
    if written or not lost:
        return 0
    print(f"emovit data {args.data_command}: all {lost} items of this run failed or were skipped (see the summary "
          f"above); nothing was added to {args.out}.", file=sys.stderr)
    return 1
