"""`emovit data build|push|export|sample` (and, from `generate.py`, `caption|generate`): emotion instruction data.

Parsers only; each handler imports what it needs, so `emovit --help` stays instant.
"""

import argparse

from dataset_builder.schema import TASKS
from dataset_builder.sources import SOURCES

from . import add_push_parser, generate
from .generate import ALLOW_OUTSIDE_ROOT_HELP


def add_commands(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="Build, push, caption and generate emotion instruction data.",
        description="Emotion instruction data from a dataset as released: captions and GPT-written pairs (caption, "
                    "generate), Parquet that load_dataset reads (build), the Hub (push), EmoVIT's JSON (export), and a "
                    "drawn sample to try them on (sample).",
    )
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    _add_build(data_commands)
    add_push_parser(data_commands, "push", "a built dataset folder", "Folder written by `emovit data build`.",
                    "user/emovit-instructions", _push)
    _add_export(data_commands)
    _add_sample(data_commands)
    generate.add_commands(data_commands)


def _add_build(data_commands) -> None:
    build = data_commands.add_parser(
        "build", help="Build Parquet shards, a dataset card and a build report.",
        description="Reads --root in the --source layout, joins the generated pairs, and writes one config per task "
                    "(plus all and messages) as Parquet with embedded images, a card and build_report.json (every "
                    "skipped item counted by reason).",
    )
    build.add_argument("--source", required=True, choices=sorted(SOURCES), help="Dataset layout of --root.")
    build.add_argument("--root", required=True, help="Dataset folder as released (or an EmoVIT .json file).")
    build.add_argument("--split", default="train",
                       help="Split to build (train, val, test; `all`, written as train, for class folders).")
    build.add_argument("--out", required=True,
                       help="Output folder: Parquet shards per split, README.md (configs), build_report.json.")
    build.add_argument("--generations", help="JSONL from `emovit data generate` (conversation and reasoning pairs).")
    build.add_argument("--tasks", default=",".join(TASKS), help=f"Comma-separated tasks (default {','.join(TASKS)}).")
    build.add_argument("--num-proc", type=int, default=1, help="Worker processes that encode images and write shards.")
    build.add_argument("--skip-unknown", action="store_true", help="Skip (and count) labels outside the label space.")
    build.add_argument("--labels", help="The label space's labels, in the order the instruction lists them: a,b,c or "
                                        "a file (one per line, or a JSON list). Default: the source's space, or an "
                                        "image folder's class folders.")
    build.add_argument("--label-space", help="Name of the label space: a built-in one (its labels), or the name of "
                                             "the --labels (default: the built-in space with those labels, or "
                                             "'custom').")
    build.add_argument("--messages", action=argparse.BooleanOptionalAction, default=None,
                       help="Write the `messages` config (one conversation per image). Default: when an image has "
                            "several instructions.")
    build.add_argument("--paraphrase", action="store_true", help="Vary the categorical template per record.")
    build.add_argument("--seed", type=int, default=42, help="Seed of the per-record template choice.")
    build.add_argument("--mix", choices=["release"],
                       help="release: the original release's images and tasks per emotion from EmoSet's train.json "
                            "order (reasoning 0-99, conversation 0-999, categorical 1000-5599; --source emoset).")
    build.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)
    build.set_defaults(handler=_build)


def _add_export(data_commands) -> None:
    export = data_commands.add_parser(
        "export", help="Write a built dataset as EmoVIT's LLaVA-style instruction JSON.",
        description="One record per question and answer, as the original release's instruction files: "
                    "[{\"id\", \"image\", \"conversations\": [{\"from\": \"human\", ...}, {\"from\": \"gpt\", ...}]}].",
    )
    export.add_argument("out", help="Folder written by `emovit data build`.")
    export.add_argument("--json", required=True, help="Output .json file.")
    export.add_argument("--split", default="train", help="Split to export.")
    export.add_argument("--config", default="all", help="Config to export (default all).")
    export.add_argument("--images-dir", help="Also write each image once into this folder.")
    export.set_defaults(handler=_export)


def _add_sample(data_commands) -> None:
    sample = data_commands.add_parser(
        "sample", help="Draw a small EmoSet-layout sample (no download) to try every command on.",
        description="Writes image/, annotation/, train.json, val.json, test.json and captions.jsonl: the layout of "
                    "EmoSet-118K, with drawn images whose shapes and colours carry the emotion (the sample `emovit "
                    "demo` uses). The validation split is what `emovit eval --calibrate-on` fits on.",
    )
    sample.add_argument("--out", required=True, help="New (or empty) folder to write the sample into.")
    sample.add_argument("--images-per-emotion", type=int, nargs=2, default=(100, 25), metavar=("TRAIN", "TEST"),
                        help="Images per emotion in the train and test splits.")
    sample.add_argument("--val-images-per-emotion", type=int, default=25, metavar="VAL",
                        help="Images per emotion in the validation split (val.json; 0 for none).")
    sample.add_argument("--seed", type=int, default=0, help="Seed of the drawing.")
    sample.set_defaults(handler=_sample)


def _build(args) -> int:
    from dataset_builder.build import build_dataset
    from dataset_builder.emotions import parse_labels

    tasks = tuple(task.strip() for task in args.tasks.split(",") if task.strip())
    report = build_dataset(
        args.source, args.root, args.split, args.out, generations=args.generations, tasks=tasks,
        num_proc=args.num_proc, skip_unknown=args.skip_unknown, seed=args.seed, paraphrases=args.paraphrase,
        mix=args.mix, allow_outside_root=args.allow_outside_root,
        labels=parse_labels(args.labels) if args.labels else None, label_space=args.label_space,
        messages=args.messages,
    )
    rows = ", ".join(f"{name} {count}" for name, count in report.rows.items())
    print(f"Wrote {args.out}: {report.records} images; rows: {rows}; labels: {', '.join(report.labels)}.")
    print(f"Skipped {report.total_skipped} items")
    for reason, count in sorted(report.skipped.items()):
        print(f"  {count:6d}  {reason}")
    for reason, count in sorted(report.notes.items()):
        print(f"Note: {count} x {reason}")
    for mapping, count in sorted(report.label_mappings.items()):
        print(f"Label read as another: {count} x {mapping}")
    for kind, found in report.duplicates.items():
        print(f"Byte-identical images {kind}: {found['images']} (e.g. {'; '.join(found['examples'][:3])})")
    print(f"Report: {args.out}/build_report.json")
    return 0


def _push(args) -> int:
    from emovit.hub import push_dataset

    print(f"Pushed {args.folder} to {push_dataset(args.folder, args.repo_id, private=args.private)}")
    return 0


def _sample(args) -> int:
    from pathlib import Path

    from dataset_builder.sample import write_sample_emoset
    from modeling_emovit.errors import EmoVITInputError

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EmoVITInputError(f"--out {out} already exists and is not an empty folder; pass a new folder.")
    sizes = write_sample_emoset(out, *args.images_per_emotion, seed=args.seed,
                                val_per_emotion=args.val_images_per_emotion)
    print(f"Wrote an EmoSet-layout sample to {out}: {sizes['train']} train, {sizes.get('val', 0)} validation and "
          f"{sizes['test']} test images, captions in {out / 'captions.jsonl'}.")
    print(f"Next: emovit data build --source emoset --root {out} --split train --tasks categorical --out DATA")
    return 0


def _export(args) -> int:
    from dataset_builder.export import export_emovit_json

    count = export_emovit_json(args.out, args.json, split=args.split, images_dir=args.images_dir, config=args.config)
    print(f"Wrote {count} entries to {args.json}")
    return 0
