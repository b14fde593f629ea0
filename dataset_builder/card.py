"""The dataset card (README.md) and build_report.json of a built dataset folder.

The card's YAML `configs` block is what makes `load_dataset(folder_or_repo, config)` find each config's Parquet
shards (dataset scripts no longer run in datasets >= 4). A split's instruction rows are written once (`build.py`):
`all` and each task's config list the same files, a task's config with a `filters` entry on the `task` column
(a `ParquetConfig` parameter, passed from the YAML by datasets); `dataset_info` records features and split sizes.
"""

import json
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData

from .instructions import CATEGORICAL_PARAPHRASES
from .report import BuildReport
from .schema import CITATION, CONFIGS, MESSAGES_CONFIG, TASKS, config_features
from .sources import get_source

REPORT_FILE = "build_report.json"
INSTRUCTION_FOLDERS = ("all", *TASKS)  # where a split's instruction rows live: all/ (several tasks) or <task>/


def instruction_folder(out: Path, split: str) -> str | None:
    """The folder of `out` holding the instruction rows of `split`, or None when it has none."""
    return next((name for name in INSTRUCTION_FOLDERS if any((out / name).glob(f"{split}-*.parquet"))), None)


def _config_entry(out: Path, name: str, reports: dict[str, dict]) -> tuple[dict, datasets.DatasetInfo] | None:
    """One config's YAML entry (its files per split, and the task filter of a task's config) and dataset_info;
    None when no split has rows for it."""
    data_files, splits, download_size = [], datasets.SplitDict(), 0
    for split, report in sorted(reports.items()):
        folder = MESSAGES_CONFIG if name == MESSAGES_CONFIG else instruction_folder(out, split)
        shards = sorted((out / folder).glob(f"{split}-*.parquet")) if folder else []
        if not report["rows"].get(name) or not shards:
            continue
        data_files.append({"split": split, "path": f"{folder}/{split}-*.parquet"})
        download_size += sum(shard.stat().st_size for shard in shards)
        splits.add(datasets.SplitInfo(name=split, num_examples=report["rows"][name],
                                      num_bytes=report.get("arrow_bytes", {}).get(name, 0)))
    if not data_files:
        return None
    entry = {"config_name": name, "data_files": data_files}
    if name in TASKS:
        entry["filters"] = [["task", "==", name]]
    if name == "all":
        entry["default"] = True
    labels = next(iter(reports.values())).get("labels", [])
    info = datasets.DatasetInfo(features=config_features(name, labels), splits=splits, download_size=download_size,
                                dataset_size=sum(split.num_bytes for split in splits.values()))
    return entry, info


def _config_metadata(out: Path, reports: dict[str, dict]) -> tuple[list[dict], DatasetInfosDict]:
    configs, infos = [], DatasetInfosDict()
    for name in CONFIGS:
        described = _config_entry(out, name, reports)
        if described is not None:
            configs.append(described[0])
            infos[name] = described[1]
    return configs, infos


def _generation_authors(reports: dict[str, dict]) -> str:
    """Who wrote the conversation and reasoning pairs, from every split's report ("rules (rules-offline): 40")."""
    authors: dict[str, int] = {}
    for report in reports.values():
        for author, count in report.get("generated_by", {}).items():
            authors[author] = authors.get(author, 0) + count
    if not authors:
        return "none in this build"
    return "; ".join(f"`{author}` ({count} image-task generations)" for author, count in sorted(authors.items()))


def _table(title: str, counts: dict[str, int]) -> str:
    lines = [f"| {title} | count |", "|---|---:|"] + [f"| {key} | {value} |" for key, value in sorted(counts.items())]
    return "\n".join(lines)


def _split_section(split: str, report: dict) -> str:
    duplicates = {kind: found["images"] for kind, found in report.get("duplicates", {}).items()}
    parts = [
        f"### Split `{split}` (source: {report['source']})",
        f"{report['records']} images; rows per config: "
        + ", ".join(f"{name} {count}" for name, count in sorted(report["rows"].items())) + ".",
        _table("emotion (images)", report["per_emotion"]),
        _table("task (rows)", report["per_task"]),
        _table("skipped (reason)", report["skipped"] or {"(none)": 0}),
        _table("kept, noted (reason)", report["notes"] or {"(none)": 0}),
        _table("label as given -> label (images)", report.get("label_mappings") or {"(none)": 0}),
        _table("byte-identical images (images)", duplicates or {"(none)": 0}),
    ]
    return "\n\n".join(parts)


def _body(reports: dict[str, dict]) -> str:
    generated = _generation_authors(reports)
    sources = sorted({report["source"] for report in reports.values()})
    licence = "\n".join(f"- **{name}**: {get_source(name).license_note}" for name in sources)
    licence += "".join(f"\n\nLabels of **{name}**: {get_source(name).label_note}"
                       for name in sources if get_source(name).label_note)
    template = CATEGORICAL_PARAPHRASES[0].format(options="<labels joined as 'a, b, ... and z'>")
    labels = ", ".join(next(iter(reports.values())).get("labels", [])) or "none recorded"
    sections = "\n\n".join(_split_section(split, report) for split, report in sorted(reports.items()))
    return f"""# EmoVIT emotion instruction data

Emotion instruction data in the style of EmoVIT (Xie et al., CVPR 2024): each row is an image with one instruction
(`prompt`) and its answer (`completion`), TRL's prompt/completion convention; the `{MESSAGES_CONFIG}` config holds the same
instructions as one conversation per image. Built with `emovit data build`.

```python
from datasets import load_dataset

data = load_dataset("<this repo or folder>", "categorical")  # or "conversation", "reasoning", "all" (default), "{MESSAGES_CONFIG}"
```

## Configs and columns

- `categorical`: EmoVIT's template; default instruction `{template}`, answer `Predict emotion: <label>`.
- `conversation`, `reasoning`: question/answer pairs written from a caption and the visual clues by: {generated}.
- `all`: every row of the three. Each split's rows are stored once: a task's config reads the same Parquet files
  as `all` through a filter on `task` (the YAML above), and an image's rows share its bytes.
- `{MESSAGES_CONFIG}` (when a split has it: built on request, or when an image has several instructions): one row per
  image with `images` (a list holding the image) and `messages`: every instruction of the image as a user turn
  followed by its answer as an assistant turn, the image in the first user turn. This is TRL's conversational
  format: `trl sft --dataset_name <this repo> --dataset_config {MESSAGES_CONFIG} --assistant_only_loss true` trains
  chat-template vision-language models (LLaVA, Idefics3, Qwen2-VL) on it with no code.

Columns (all but `{MESSAGES_CONFIG}`): `id`, `image`, `image_sha256`, `source`, `emotion`, `label`, `label_space`,
`attributes` (brightness, colorfulness, scene, object, facial_expression, human_action, valence, arousal,
label_distribution), `caption`, `task`, `prompt`, `completion`. `{MESSAGES_CONFIG}`: `id`, `images`, `messages`,
`image_sha256`, `source`, `emotion`, `label`, `label_space`. `label` is `emotion` as a `ClassLabel` whose names are
the label space's labels ({labels}): the dataset carries its label space, `features["label"].names`.
`image_sha256` is the SHA-256 of the stored image bytes (`dataset_builder.images.image_digest`); byte-identical
images within and across splits are counted below.

## Counts

{sections}

See `build_report.json` for every skipped or noted item's reason, and the first affected ids.

## Licence

The instructions are released with the code (Apache-2.0); the images keep their source's terms:

{licence}

## Citation

```bibtex
{CITATION}
```
"""


def write_dataset_card(out: Path, report: BuildReport, duplicates: dict[str, dict] | None = None) -> None:
    """Adds `report` to out/build_report.json (one entry per split), sets every split's `duplicates` (split ->
    kind -> {"images", "examples"}, from `duplicates.find_duplicates`) and rewrites out/README.md from every split."""
    out = Path(out)
    report_path = out / REPORT_FILE
    reports = json.loads(report_path.read_text()) if report_path.is_file() else {}
    reports[report.split] = report.to_dict()
    for split, found in (duplicates or {}).items():
        reports[split]["duplicates"] = found
    report.duplicates = reports[report.split]["duplicates"]
    report_path.write_text(json.dumps(reports, indent=2, sort_keys=True))
    configs, infos = _config_metadata(out, reports)
    card_data = DatasetCardData(
        license="other",
        task_categories=["image-text-to-text"],
        language=["en"],
        tags=["emotion", "visual-emotion-analysis", "instruction-tuning", "emovit"],
        pretty_name="EmoVIT emotion instruction data",
        configs=configs,
    )
    infos.to_dataset_card_data(card_data)
    # written as `DatasetCard(text).save` would write it, without parsing the YAML just made and dumping it again
    (out / "README.md").write_text(f"---\n{card_data.to_yaml()}\n---\n\n{_body(reports)}", encoding="utf-8")
