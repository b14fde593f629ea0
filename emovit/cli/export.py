"""`emovit export lmms-eval|vlmevalkit`: a built dataset as another benchmark harness reads it (parser only; handlers
import lazily). Distinct from `emovit data export`, which writes EmoVIT's own instruction JSON for training."""

from evaluation.label_space import evaluation_label_space_names


def add_commands(subparsers) -> None:
    export = subparsers.add_parser(
        "export", help="Write a built dataset's categorical split as lmms-eval tasks or a VLMEvalKit benchmark TSV.",
        description="Other harnesses then score any model they wrap on it (docs/benchmarks.md). For EmoVIT's own "
                    "instruction JSON use `emovit data export`.",
    )
    harnesses = export.add_subparsers(dest="export_command", required=True, metavar="HARNESS")
    lmms = harnesses.add_parser(
        "lmms-eval", help="Task YAMLs (rank and generate) for `lmms-eval --include_path DIR --tasks emovit_<space>`.",
        description="Writes, per label space, a multiple_choice task (log-likelihood: `emovit eval --mode rank`) and a "
                    "generate_until task (`--mode generate`) in lmms-eval's task format, scored with this package's "
                    "metrics; `lmms-eval --model emovit` (`pip install \"emovit[lmms]\"`) runs any EmoVIT or "
                    "chat-template folder on them.")
    lmms.add_argument("data", help="Dataset folder (`emovit data build` output) or Hub id, with a categorical config.")
    lmms.add_argument("out", help="Folder for the task files (created; files already there are never overwritten).")
    lmms.add_argument("--split", default="test", help="Split the tasks score (default: test).")
    lmms.add_argument("--label-space", action="append", choices=evaluation_label_space_names(), dest="label_spaces",
                      help="A label space to write tasks for (repeatable; default: the dataset's own and its "
                           "polarity views, e.g. fi and fi-2).")
    lmms.add_argument("--max-new-tokens", type=int, default=32,
                      help="Generate task's answer budget (default: 32; `emovit eval --max-new-tokens` to match).")
    lmms.set_defaults(handler=_export_lmms_eval)
    vlmevalkit = harnesses.add_parser(
        "vlmevalkit", help="A benchmark TSV in the layout of VLMEvalKit's EmoSet118K (index, image, question, answer).",
        description="Writes one row per image: index, the image as base64, EmoVIT's question listing the label "
                    "space's candidates, the answer label, and category/candidates/id columns; VLMEvalKit reads it as "
                    "a custom image dataset (docs/benchmarks.md shows a model wrapper for this package's folders).")
    vlmevalkit.add_argument("data", help="Dataset folder (`emovit data build` output) or Hub id, with a categorical config.")
    vlmevalkit.add_argument("out", help="The .tsv file to write (it appears only once complete).")
    vlmevalkit.add_argument("--split", default="test", help="Split to export (default: test).")
    vlmevalkit.add_argument("--label-space", choices=evaluation_label_space_names(),
                            help="Label space of the questions and answers (default: the dataset's own).")
    vlmevalkit.set_defaults(handler=_export_vlmevalkit)


def _export_lmms_eval(args) -> int:
    from evaluation.lmms_eval_tasks import export_lmms_eval_tasks

    tasks = export_lmms_eval_tasks(args.data, args.out, split=args.split, label_spaces=args.label_spaces,
                                   max_new_tokens=args.max_new_tokens)
    print(f"Wrote lmms-eval tasks {', '.join(tasks)} to {args.out}")
    print(f"Run: lmms-eval --model emovit --model_args pretrained=MODEL --include_path {args.out} --tasks {tasks[0]}")
    return 0


def _export_vlmevalkit(args) -> int:
    from evaluation.vlmevalkit_export import export_vlmevalkit_tsv

    count = export_vlmevalkit_tsv(args.data, args.out, split=args.split, label_space=args.label_space)
    print(f"Wrote {count} rows to {args.out}")
    return 0
