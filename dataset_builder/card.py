"""The dataset card (README.md) and build_report.json of a built dataset folder.

The card's YAML `configs` block is what makes `load_dataset(folder_or_repo, config)` find each config's Parquet
shards (dataset scripts no longer run in datasets >= 4); `dataset_info` records features and split sizes.
"""

import json
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData

from .instructions import CATEGORICAL_PARAPHRASES
from .report import BuildReport
from .schema import CITATION, CONFIGS, MESSAGES_CONFIG, config_features
from .sources import get_source

REPORT_FILE = "build_report.json"


def _split_sizes(folder: Path) -> dict[str, list[int]]:
    """split -> [rows, uncompressed bytes, file bytes], from the Parquet footers of `folder/<split>-*.parquet`."""
    sizes: dict[str, list[int]] = {}
    for shard in sorted(folder.glob("*.parquet")):
        split, footer = shard.name.split("-")[0], pq.read_metadata(shard)
        uncompressed = sum(footer.row_group(i).total_byte_size for i in range(footer.num_row_groups))
        totals = sizes.setdefault(split, [0, 0, 0])
        for index, value in enumerate((footer.num_rows, uncompressed, shard.stat().st_size)):
            totals[index] += value
    return {split: totals for split, totals in sizes.items() if totals[0]}


def _config_metadata(out: Path) -> tuple[list[dict], DatasetInfosDict]:
    configs, infos = [], DatasetInfosDict()
    for name in CONFIGS:
        sizes = _split_sizes(out / name)
        if not sizes:
            continue
        data_files = [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in sizes]
        configs.append({"config_name": name, "data_files": data_files, **({"default": True} if name == "all" else {})})
        splits = datasets.SplitDict()
        for split, (rows, num_bytes, _) in sizes.items():
            splits.add(datasets.SplitInfo(name=split, num_examples=rows, num_bytes=num_bytes))
        infos[name] = datasets.DatasetInfo(
            features=config_features(name), splits=splits, download_size=sum(size[2] for size in sizes.values()),
            dataset_size=sum(size[1] for size in sizes.values()),
        )
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
    skipped = report["skipped"] or {"(none)": 0}
    parts = [
        f"### Split `{split}` (source: {report['source']})",
        f"{report['records']} images; rows per config: "
        + ", ".join(f"{name} {count}" for name, count in sorted(report["rows"].items())) + ".",
        _table("emotion (images)", report["per_emotion"]),
        _table("task (rows)", report["per_task"]),
        _table("skipped (reason)", skipped),
    ]
    return "\n\n".join(parts)


def _body(reports: dict[str, dict]) -> str:
    generated = _generation_authors(reports)
    sources = sorted({report["source"] for report in reports.values()})
    licence = "\n".join(f"- **{name}**: {get_source(name).license_note}" for name in sources)
    licence += "".join(f"\n\nLabels of **{name}**: {get_source(name).label_note}"
                       for name in sources if get_source(name).label_note)
    template = CATEGORICAL_PARAPHRASES[0].format(options="<labels joined as 'a, b, ... and z'>")
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
- `all`: every row of the three.
- `{MESSAGES_CONFIG}`: one row per image with `images` (a list holding the image) and `messages`: every instruction of the
  image as a user turn followed by its answer as an assistant turn, the image in the first user turn. This is TRL's
  conversational format: `trl sft --dataset_name <this repo> --dataset_config {MESSAGES_CONFIG} --assistant_only_loss true`
  trains chat-template vision-language models (LLaVA, Idefics3, Qwen2-VL) on it with no code.

Columns (all but `{MESSAGES_CONFIG}`): `id`, `image`, `source`, `emotion`, `label_space`, `attributes` (brightness,
colorfulness, scene, object, facial_expression, human_action, valence, arousal, label_distribution), `caption`, `task`,
`prompt`, `completion`. `{MESSAGES_CONFIG}`: `id`, `images`, `messages`, `source`, `emotion`, `label_space`.

## Counts

{sections}

See `build_report.json` for every skipped item's reason and the first affected ids.

## Licence

The instructions are released with the code (Apache-2.0); the images keep their source's terms:

{licence}

## Citation

```bibtex
{CITATION}
```
"""


def write_dataset_card(out: Path, report: BuildReport) -> None:
    """Adds `report` to out/build_report.json (one entry per split) and rewrites out/README.md from every split."""
    out = Path(out)
    report_path = out / REPORT_FILE
    reports = json.loads(report_path.read_text()) if report_path.is_file() else {}
    reports[report.split] = report.to_dict()
    report_path.write_text(json.dumps(reports, indent=2, sort_keys=True))
    configs, infos = _config_metadata(out)
    card_data = DatasetCardData(
        license="other",
        task_categories=["image-text-to-text"],
        language=["en"],
        tags=["emotion", "visual-emotion-analysis", "instruction-tuning", "emovit"],
        pretty_name="EmoVIT emotion instruction data",
        configs=configs,
    )
    infos.to_dataset_card_data(card_data)
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{_body(reports)}").save(out / "README.md")
