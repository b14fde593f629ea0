"""The EmoVIT instruction dataset: records + generations -> `datasets` builder -> Parquet shards + dataset card.

`build_dataset` reads a source once into record manifests (JSONL shards of paths and text, never pixels), then drives
`EmoVITInstructBuilder` once per config to write Parquet with the image bytes embedded, streaming batch by batch.
The output folder loads with `load_dataset(out)` / `load_dataset(out, "categorical")`, locally or from the Hub.
"""

import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import datasets

from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.image_utils import InvalidImageError, open_image

from .emotions import get_label_space
from .instructions import CATEGORICAL_PARAPHRASES, categorical_answer, categorical_instruction, choose_paraphrase
from .records import EmotionRecord
from .report import BuildReport
from .sources import get_source, read_records
from .sources.base import json_objects

TASKS = ("categorical", "conversation", "reasoning")
GENERATED_TASKS = ("conversation", "reasoning")
CONFIGS = (*TASKS, "all")
_RECORD_COLUMNS = ("id", "source", "emotion", "label_space", "attributes", "caption")

ATTRIBUTES = {
    "brightness": datasets.Value("float32"),
    "colorfulness": datasets.Value("float32"),
    "scene": datasets.Value("string"),
    "object": datasets.List(datasets.Value("string")),
    "facial_expression": datasets.Value("string"),
    "human_action": datasets.Value("string"),
    "valence": datasets.Value("float32"),
    "arousal": datasets.Value("float32"),
    "label_distribution": datasets.List({"label": datasets.Value("string"), "probability": datasets.Value("float32")}),
}
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "source": datasets.Value("string"),
        "emotion": datasets.Value("string"),
        "label_space": datasets.Value("string"),
        "attributes": ATTRIBUTES,
        "caption": datasets.Value("string"),
        "task": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "completion": datasets.Value("string"),
    }
)
_CITATION = """@inproceedings{xie2024emovit,
  title={EmoVIT: Revolutionizing Emotion Insights with Visual Instruction Tuning},
  author={Xie, Hongxia and Peng, Chu-Jun and Tseng, Yu-Wen and Chen, Hung-Jen and Hsu, Chan-Feng
          and Shuai, Hong-Han and Cheng, Wen-Huang},
  booktitle={CVPR},
  year={2024}
}"""


# ---------------------------------------------------------------------------------------------------------------
# Generations: the JSONL written by `emovit data generate`, joined to records by image id
# ---------------------------------------------------------------------------------------------------------------


def _valid_pairs(entry: dict) -> list[dict]:
    pairs = entry.get("pairs") or []
    return [
        {"question": str(pair["question"]), "answer": str(pair["answer"])}
        for pair in pairs
        if isinstance(pair, dict) and pair.get("question") and pair.get("answer")
    ]


def index_generations(entries, tasks, report: BuildReport) -> dict[str, dict[str, list[dict]]]:
    """image id -> task -> Q/A pairs; failed, empty, malformed and duplicate entries are counted as skipped."""
    index: dict[str, dict[str, list[dict]]] = {}
    for entry in entries:
        item = f"{entry.get('id')}:{entry.get('task')}"
        pairs = _valid_pairs(entry)
        if "error" in entry:
            report.skip("generation failed (error line)", item)
        elif entry.get("task") not in GENERATED_TASKS or not entry.get("id"):
            report.skip("generation line without a valid id and task", item)
        elif not pairs:
            report.skip("generation without question/answer pairs", item)
        elif entry["task"] not in tasks:
            report.note("generation for a task not built", item)
        elif entry["task"] in index.get(str(entry["id"]), {}):
            report.skip("duplicate generation for an image and task", item)
        else:
            index.setdefault(str(entry["id"]), {})[entry["task"]] = pairs
    return index


def read_generations_file(path, report: BuildReport) -> Iterator[dict]:
    """Entries of a generation JSONL file; unreadable lines are counted as skipped."""
    path = Path(path)
    if not path.is_file():
        raise EmoVITInputError(f"{path}: generations file not found (write it with `emovit data generate`).")
    with open(path, encoding="utf-8") as handle:
        yield from json_objects(handle, path.name, report, "unreadable generation line")


# ---------------------------------------------------------------------------------------------------------------
# Manifests: records (paths, labels, clues, pairs) in JSONL shards, one shard per builder job
# ---------------------------------------------------------------------------------------------------------------


def _as_float(value, key: str, item: str, report: BuildReport) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        report.note(f"unreadable {key} value (kept, left empty)", item)
        return None


def attributes_struct(record: EmotionRecord, report: BuildReport) -> dict:
    """The record's clues in the fixed `attributes` schema (absent clues are None, objects [])."""
    given = record.attributes or {}
    numbers = ("brightness", "colorfulness", "valence", "arousal")
    struct = {key: _as_float(given.get(key), key, record.id, report) for key in numbers}
    for key in ("scene", "facial_expression", "human_action"):
        struct[key] = None if given.get(key) is None else str(given[key])
    objects = given.get("object") or []
    struct["object"] = [str(name) for name in (objects if isinstance(objects, list) else [objects])]
    distribution = record.label_distribution or {}
    struct["label_distribution"] = [{"label": label, "probability": float(p)} for label, p in distribution.items()]
    return struct


def write_manifests(
    source: str,
    root,
    split: str,
    generations,
    tasks,
    report: BuildReport,
    folder: Path,
    num_shards: int = 1,
    skip_unknown: bool = False,
) -> list[str]:
    """Reads the source once and writes its records, with their generated pairs, round-robin into JSONL shards."""
    reader = get_source(source)
    if generations is not None:
        entries = read_generations_file(generations, report)
    elif reader.generations is not None:
        entries = reader.generations(Path(root), split)
    else:
        entries = ()
    index = index_generations(entries, tasks, report)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"records-{shard:05d}.jsonl" for shard in range(max(1, num_shards))]
    handles = [open(path, "w", encoding="utf-8") for path in paths]
    try:
        for number, record in enumerate(read_records(source, root, split, report, skip_unknown=skip_unknown)):
            line = {
                "id": record.id,
                "image_path": record.image_path,
                "source": record.source,
                "emotion": record.label,
                "label_space": record.label_space,
                "attributes": attributes_struct(record, report),
                "caption": record.caption,
                "generations": index.pop(record.id, {}),
            }
            handles[number % len(handles)].write(json.dumps(line, ensure_ascii=False) + "\n")
    finally:
        for handle in handles:
            handle.close()
    for image_id, by_task in index.items():
        for task in by_task:
            report.skip("generation for an image not in this split", f"{image_id}:{task}")
    return [str(path) for path in paths]


# ---------------------------------------------------------------------------------------------------------------
# Rows: one image, encoded once, becomes one row per instruction
# ---------------------------------------------------------------------------------------------------------------


def encoded_image(path: str, name: str) -> dict:
    """{"bytes", "path"} for the Image() feature: the file as is when it is RGB JPEG/PNG, else re-encoded to RGB
    JPEG (CMYK, palette, 16-bit, ...). Raises InvalidImageError for unreadable files."""
    data = Path(path).read_bytes()
    image = open_image(data)
    if image.format in ("JPEG", "PNG"):
        return {"bytes": data, "path": f"{name}{Path(path).suffix.lower()}"}
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return {"bytes": buffer.getvalue(), "path": f"{name}.jpg"}


def instruction_rows(record: dict, tasks, seed: int, paraphrases: bool) -> Iterator[tuple[str, str, str]]:
    """(task, prompt, completion) for each instruction of one record, in task order."""
    for task in tasks:
        if task == "categorical":
            labels = get_label_space(record["label_space"]).labels
            index = choose_paraphrase(record["id"], seed, len(CATEGORICAL_PARAPHRASES)) if paraphrases else 0
            yield task, categorical_instruction(labels, index), categorical_answer(record["emotion"])
        else:
            for pair in record["generations"].get(task, []):
                yield task, pair["question"], pair["answer"]


class EmoVITInstructConfig(datasets.BuilderConfig):
    """A config = the tasks it holds. `manifests` (set by build_dataset) are prepared record shards; without them
    the builder reads `source`/`root`/`split` (and `generations`) itself."""

    def __init__(
        self,
        tasks=TASKS,
        source=None,
        root=None,
        split="train",
        generations=None,
        skip_unknown=False,
        seed=42,
        paraphrases=False,
        manifests=(),
        report_dir=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tasks = tuple(tasks)
        self.source, self.root, self.split, self.generations = source, root, split, generations
        self.skip_unknown, self.seed, self.paraphrases = skip_unknown, seed, paraphrases
        self.manifests, self.report_dir = tuple(manifests), report_dir


class EmoVITInstructBuilder(datasets.GeneratorBasedBuilder):
    """EmoVIT's emotion instruction data (categorical, conversation, reasoning) in TRL's prompt/completion columns."""

    BUILDER_CONFIG_CLASS = EmoVITInstructConfig
    BUILDER_CONFIGS = [EmoVITInstructConfig(name=task, tasks=(task,)) for task in TASKS] + [
        EmoVITInstructConfig(name="all", tasks=TASKS)
    ]
    DEFAULT_CONFIG_NAME = "all"
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows carry image bytes: keep each Arrow batch small

    def _info(self):
        return datasets.DatasetInfo(
            description="EmoVIT emotion instruction data: images with categorical, conversation and reasoning "
            "instructions (Xie et al., CVPR 2024).",
            features=FEATURES,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        config = self.config
        manifests = config.manifests
        if not manifests:
            if config.source is None or config.root is None:
                raise EmoVITInputError("EmoVITInstructBuilder needs source= and root= (or prepared manifests=).")
            folder = Path(self._cache_dir_root) / "emovit-manifests" / self.config_id
            report = BuildReport(source=config.source, split=config.split)
            manifests = write_manifests(
                config.source, config.root, config.split, config.generations, config.tasks, report, folder,
                skip_unknown=config.skip_unknown,
            )
        gen_kwargs = {"manifests": list(manifests), "report_dir": config.report_dir}
        return [datasets.SplitGenerator(name=config.split, gen_kwargs=gen_kwargs)]

    def _generate_examples(self, manifests, report_dir):
        for manifest in manifests:
            report = BuildReport()
            yield from self._manifest_rows(manifest, report)
            if report_dir:
                (Path(report_dir) / f"{Path(manifest).stem}.json").write_text(report.to_json())

    def _manifest_rows(self, manifest: str, report: BuildReport):
        config = self.config
        with open(manifest, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                instructions = list(instruction_rows(record, config.tasks, config.seed, config.paraphrases))
                if not instructions:
                    continue
                try:
                    image = encoded_image(record["image_path"], record["id"].replace("/", "_"))
                except (InvalidImageError, OSError):
                    report.skip("corrupt, truncated or non-image file", record["id"])
                    continue
                report.records += 1
                report.per_emotion[record["emotion"]] = report.per_emotion.get(record["emotion"], 0) + 1
                common = {key: record[key] for key in _RECORD_COLUMNS}
                for number, (task, prompt, completion) in enumerate(instructions):
                    report.per_task[task] = report.per_task.get(task, 0) + 1
                    row = {**common, "image": image, "task": task, "prompt": prompt, "completion": completion}
                    yield f"{record['id']}:{number}", row


# ---------------------------------------------------------------------------------------------------------------
# build_dataset: manifests -> one builder run per config -> out/<config>/<split>-*.parquet + card + report
# ---------------------------------------------------------------------------------------------------------------


def _check_tasks(tasks, has_generations: bool, report: BuildReport) -> tuple[str, ...]:
    tasks = tuple(tasks)
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise EmoVITInputError(f"--tasks {','.join(tasks)}: use one or more of {', '.join(TASKS)}.")
    if not has_generations:
        for task in tasks:
            if task in GENERATED_TASKS:
                report.note("task left out: no --generations file given", task)
        tasks = tuple(task for task in tasks if task not in GENERATED_TASKS)
        if not tasks:
            raise EmoVITInputError(
                "Conversation and reasoning data need --generations FILE (from `emovit data generate`)."
            )
    return tasks


def _build_config(name, tasks, manifests, split, out: Path, work: Path, num_proc: int, seed, paraphrases, report_dir):
    builder = EmoVITInstructBuilder(
        config_name=name,
        cache_dir=str(work / "cache"),
        tasks=tasks if name == "all" else (name,),
        split=split,
        manifests=tuple(manifests),
        seed=seed,
        paraphrases=paraphrases,
        report_dir=report_dir,
    )
    staging = work / "parquet" / name
    builder.download_and_prepare(
        output_dir=str(staging), file_format="parquet", num_proc=num_proc if num_proc > 1 else None
    )
    shards = sorted(staging.glob("*.parquet"))
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    _remove_shards(out, name, split)
    for number, shard in enumerate(shards):
        shutil.move(str(shard), target / f"{split}-{number:05d}-of-{len(shards):05d}.parquet")
    return builder.info.splits[split].num_examples


def _remove_shards(out: Path, name: str, split: str) -> None:
    """Deletes one config's shards of `split` from an earlier build (its other splits stay)."""
    for old in (out / name).glob(f"{split}-*.parquet"):
        old.unlink()


def build_dataset(
    source: str,
    root,
    split: str,
    out,
    generations=None,
    tasks=TASKS,
    num_proc: int = 1,
    skip_unknown: bool = False,
    seed: int = 42,
    paraphrases: bool = False,
) -> BuildReport:
    """Builds one split of a source into `out` (Parquet per config, README.md card, build_report.json).

    Conversation and reasoning rows come from `generations` (or from the source itself for EmoVIT JSON); without
    them only categorical data is built. `paraphrases=True` picks a categorical template per record from `seed`
    (otherwise EmoVIT's template for every record). Rebuilding a split replaces its shards in every config, so a
    config this build leaves out loses that split. Returns the report; skipped items are counted, never silent.
    """
    from .card import write_dataset_card

    report = BuildReport(source=source, split=split)
    has_generations = generations is not None or get_source(source).generations is not None
    tasks = _check_tasks(tasks, has_generations, report)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="emovit-build-") as work:
        work = Path(work)
        manifests = write_manifests(
            source, root, split, generations, tasks, report, work / "manifests", max(1, num_proc), skip_unknown
        )
        report_dir = work / "reports"
        report_dir.mkdir()
        for name in ("all", *tasks):
            report.rows[name] = _build_config(
                name, tasks, manifests, split, out, work, num_proc, seed, paraphrases,
                str(report_dir) if name == "all" else None,
            )
        for path in sorted(report_dir.glob("*.json")):
            report.merge(json.loads(path.read_text()))
    for name in CONFIGS:
        if name not in report.rows:  # a config this build leaves out must not keep an earlier build's rows
            _remove_shards(out, name, split)
    for task in GENERATED_TASKS:
        if task in tasks:
            report.without_generations[task] = report.records - _images_with(task, out, split)
    write_dataset_card(out, report)
    return report


def _images_with(task: str, out: Path, split: str) -> int:
    """Distinct image ids among the rows of one task's config."""
    import pyarrow.parquet as pq

    ids = set()
    for shard in sorted((out / task).glob(f"{split}-*.parquet")):
        ids.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
    return len(ids)
