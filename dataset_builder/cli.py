"""`emovit data ...`: build, push, export, caption and generate emotion instruction data.

Parsers only; handlers import heavy libraries lazily so `emovit --help` stays instant.
"""


# The keys of dataset_builder.sources.SOURCES (a test keeps them equal), listed here so `--help` imports nothing.
_SOURCE_NAMES = (
    "emoset", "fi", "emotionroi", "emotion6", "webemo", "webemo-7", "webemo-2", "unbiasedemo", "imagefolder",
    "emovit_json",
)
_TASKS = "categorical,conversation,reasoning"


def add_commands(subparsers) -> None:
    from dataset_builder.generation import cli as generation_cli

    data = subparsers.add_parser("data", help="Build, push, caption and generate emotion instruction data.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    _add_build(data_commands)
    _add_push(data_commands)
    _add_export(data_commands)
    generation_cli.add_commands(data_commands)


def _add_build(data_commands) -> None:
    build = data_commands.add_parser("build", help="Build Parquet shards, a dataset card and a build report.")
    build.add_argument("--source", required=True, choices=_SOURCE_NAMES, help="Dataset layout of --root.")
    build.add_argument("--root", required=True, help="Dataset folder as released (or an EmoVIT .json file).")
    build.add_argument("--split", default="train", help="Split to build (train, val, test; `all` for class folders).")
    build.add_argument("--out", required=True, help="Output folder: <config>/<split>-*.parquet, README.md, report.")
    build.add_argument("--generations", help="JSONL from `emovit data generate` (conversation and reasoning pairs).")
    build.add_argument("--tasks", default=_TASKS, help=f"Comma-separated tasks (default {_TASKS}).")
    build.add_argument("--num-proc", type=int, default=1, help="Worker processes that encode images and write shards.")
    build.add_argument("--skip-unknown", action="store_true", help="Skip (and count) labels outside the label space.")
    build.add_argument("--paraphrase", action="store_true", help="Vary the categorical template per record.")
    build.add_argument("--seed", type=int, default=42, help="Seed of the per-record template choice.")
    build.set_defaults(handler=_build)


def _add_push(data_commands) -> None:
    push = data_commands.add_parser("push", help="Upload a built dataset folder to the Hugging Face Hub.")
    push.add_argument("out", help="Folder written by `emovit data build`.")
    push.add_argument("--repo-id", required=True, help="Dataset repository, e.g. user/emovit-instruct.")
    push.add_argument("--private", action="store_true", help="Create the repository as private.")
    push.set_defaults(handler=_push)


def _add_export(data_commands) -> None:
    export = data_commands.add_parser("export", help="Write a built dataset as EmoVIT's LLaVA-style instruction JSON.")
    export.add_argument("out", help="Folder written by `emovit data build`.")
    export.add_argument("--json", required=True, help="Output .json file.")
    export.add_argument("--split", default="train")
    export.add_argument("--config", default="all", help="Config to export (default all).")
    export.add_argument("--images-dir", help="Also write each image once into this folder.")
    export.set_defaults(handler=_export)


def _build(args) -> int:
    from dataset_builder.builder import build_dataset

    tasks = tuple(task.strip() for task in args.tasks.split(",") if task.strip())
    report = build_dataset(
        args.source, args.root, args.split, args.out, generations=args.generations, tasks=tasks,
        num_proc=args.num_proc, skip_unknown=args.skip_unknown, seed=args.seed, paraphrases=args.paraphrase,
    )
    rows = ", ".join(f"{name} {count}" for name, count in report.rows.items())
    print(f"Wrote {args.out}: {report.records} images; rows: {rows}.")
    print(f"Skipped {report.total_skipped} items")
    for reason, count in sorted(report.skipped.items()):
        print(f"  {count:6d}  {reason}")
    for reason, count in sorted(report.notes.items()):
        print(f"Note: {count} x {reason}")
    print(f"Report: {args.out}/build_report.json")
    return 0


def _push(args) -> int:
    from pathlib import Path

    from huggingface_hub import HfApi

    from dataset_builder.hub import hub_credentials
    from modeling_emovit.errors import EmoVITInputError

    folder = Path(args.out)
    if not (folder / "README.md").is_file():
        raise EmoVITInputError(f"{folder}: no README.md dataset card; build the folder with `emovit data build` first.")
    api = HfApi()
    with hub_credentials(args.repo_id):
        url = api.create_repo(args.repo_id, repo_type="dataset", private=args.private, exist_ok=True)
        api.upload_folder(
            repo_id=args.repo_id, repo_type="dataset", folder_path=str(folder),
            allow_patterns=["README.md", "build_report.json", "*/*.parquet"],
            commit_message="Upload EmoVIT instruction data (emovit data push)",
        )
    print(f"Pushed {folder} to {url}")
    return 0


def _export(args) -> int:
    from dataset_builder.sources.emovit_json import export_emovit_json

    count = export_emovit_json(args.out, args.json, split=args.split, images_dir=args.images_dir, config=args.config)
    print(f"Wrote {count} entries to {args.json}")
    return 0
