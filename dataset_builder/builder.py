"""The `datasets` builder of EmoVIT's instruction data: record manifests -> rows with embedded image bytes.

Flow: manifests (`manifests.py`) -> `EmoVITInstructBuilder` (driven by `build.build_dataset`: one run for every
instruction row, config `all`, and one for the `messages` view when it is written) -> Arrow shards -> Parquet
(`shards.py`). Each image is read, encoded and hashed once and becomes one row per instruction, in TRL's
prompt/completion columns, or (config `messages`) one row holding all its instructions as chat turns; an image that
does not decode is skipped and counted in the worker's report.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import datasets
from datasets.builder import Key

from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.image_utils import InvalidImageError

from .images import OVERSIZED_METADATA, CheckedImages
from .instructions import CATEGORICAL_PARAPHRASES, categorical_answer, categorical_instruction, choose_paraphrase
from .report import BuildReport
from .schema import CITATION, MESSAGES_CONFIG, TASKS, config_features

_SHARED_COLUMNS = ("id", "source", "emotion", "label_space")  # every config's, from the manifest
_INSTRUCTION_COLUMNS = ("attributes", "caption")  # the prompt/completion configs' own


def instruction_rows(record: dict, tasks, seed: int, paraphrases: bool, labels) -> Iterator[tuple[str, str, str]]:
    """(task, prompt, completion) for each instruction of one record, in task order (only the record's own `tasks`
    when it names them); the categorical instruction offers `labels`, those of the record's label space."""
    for task in tasks:
        if record.get("tasks") is not None and task not in record["tasks"]:
            continue
        if task == "categorical":
            index = choose_paraphrase(record["id"], seed, len(CATEGORICAL_PARAPHRASES)) if paraphrases else 0
            yield task, categorical_instruction(labels, index), categorical_answer(record["emotion"])
        else:
            for pair in record["generations"].get(task, []):
                yield task, pair["question"], pair["answer"]


def chat_messages(instructions) -> list[dict]:
    """(task, prompt, completion) triples -> user/assistant turns; the image is the first part of the first user turn."""
    messages = []
    for number, (_, prompt, completion) in enumerate(instructions):
        image = [{"type": "image"}] if number == 0 else []
        messages.append({"role": "user", "content": [*image, {"type": "text", "text": prompt}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": completion}]})
    return messages


class EmoVITInstructConfig(datasets.BuilderConfig):
    """A config = the tasks it holds, over prepared record shards (`manifests`, written by `build_dataset`), with
    the labels of each label space the records use (`label_spaces`: (name, labels) pairs) and the `label` column's
    names (`labels`)."""

    def __init__(
        self, tasks=TASKS, split="train", seed=42, paraphrases=False, manifests=(), report_dir=None, label_spaces=(),
        labels=(), **kwargs
    ):
        super().__init__(**kwargs)
        self.tasks, self.split, self.seed, self.paraphrases = tuple(tasks), split, seed, paraphrases
        self.manifests, self.report_dir = tuple(manifests), report_dir
        self.label_spaces, self.labels = tuple(label_spaces), tuple(labels)


class EmoVITInstructBuilder(datasets.ArrowBasedBuilder):
    """EmoVIT's emotion instruction data (categorical, conversation, reasoning) in TRL's prompt/completion columns.

    Arrow-based: rows are gathered into tables of `DEFAULT_WRITER_BATCH_SIZE` with `pa.Table.from_pylist` against
    the features' schema, about three times cheaper than datasets' per-example encoding (`GeneratorBasedBuilder`),
    which the build would otherwise pay for every row."""

    BUILDER_CONFIG_CLASS = EmoVITInstructConfig
    BUILDER_CONFIGS = [EmoVITInstructConfig(name=task, tasks=(task,)) for task in TASKS] + [
        EmoVITInstructConfig(name="all", tasks=TASKS), EmoVITInstructConfig(name=MESSAGES_CONFIG, tasks=TASKS)
    ]
    DEFAULT_CONFIG_NAME = "all"
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows carry image bytes: keep each Arrow batch small

    def _info(self):
        return datasets.DatasetInfo(
            description="EmoVIT emotion instruction data: images with categorical, conversation and reasoning "
            "instructions (Xie et al., CVPR 2024).",
            features=config_features(self.config.name, self.config.labels),
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        if not self.config.manifests:
            raise EmoVITInputError("EmoVITInstructBuilder reads record manifests; build with `build_dataset`.")
        gen_kwargs = {"manifests": list(self.config.manifests), "report_dir": self.config.report_dir}
        return [datasets.SplitGenerator(name=self.config.split, gen_kwargs=gen_kwargs)]

    def _generate_tables(self, manifests, report_dir):
        """(Key(manifest, table number), table) for each manifest shard's rows; a worker report per manifest."""
        import pyarrow as pa

        schema = self.info.features.arrow_schema
        for shard, manifest in enumerate(manifests):
            report, rows, tables = BuildReport(), [], 0
            for row in self._manifest_rows(manifest, report):
                rows.append(row)
                if len(rows) == self.DEFAULT_WRITER_BATCH_SIZE:
                    yield Key(shard, tables), pa.Table.from_pylist(rows, schema=schema)
                    rows, tables = [], tables + 1
            if rows:
                yield Key(shard, tables), pa.Table.from_pylist(rows, schema=schema)
            if report_dir:
                (Path(report_dir) / f"{Path(manifest).stem}.json").write_text(report.to_json())

    def _manifest_rows(self, manifest: str, report: BuildReport):
        """The rows of one manifest shard, as plain dicts in the features' storage (`label` as its class id)."""
        config = self.config
        space_labels = dict(config.label_spaces)
        label_ids = {label: number for number, label in enumerate(config.labels)}
        images = CheckedImages(manifest)  # decoded by the first config, reused by the others
        with open(manifest, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                labels = space_labels[record["label_space"]]
                instructions = list(instruction_rows(record, config.tasks, config.seed, config.paraphrases, labels))
                if not instructions:
                    continue
                try:
                    image, verdict = images.image(record["id"], record["image_path"], record["id"].replace("/", "_"))
                except (InvalidImageError, OSError):
                    report.skip("corrupt, truncated or non-image file", record["id"])
                    continue
                self._count(record, verdict, report)
                common = {key: record[key] for key in _SHARED_COLUMNS}
                common |= {"image_sha256": verdict["sha256"], "label": label_ids[record["emotion"]]}
                if config.name == MESSAGES_CONFIG:
                    yield {**common, "images": [image], "messages": chat_messages(instructions)}
                    continue
                common |= {key: record[key] for key in _INSTRUCTION_COLUMNS}
                for task, prompt, completion in instructions:
                    report.per_task[task] = report.per_task.get(task, 0) + 1
                    yield {**common, "image": image, "task": task, "prompt": prompt, "completion": completion}

    def _count(self, record: dict, verdict: dict, report: BuildReport) -> None:
        """Counts one image written: its emotion, who wrote its generated pairs, and metadata stripped from it."""
        report.records += 1
        report.per_emotion[record["emotion"]] = report.per_emotion.get(record["emotion"], 0) + 1
        for task, author in record["generated_by"].items():
            if task in self.config.tasks:
                report.generated_by[author] = report.generated_by.get(author, 0) + 1
        if verdict.get("reason") == OVERSIZED_METADATA:
            report.note(OVERSIZED_METADATA, record["id"])
