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
from .schema import CITATION, CONFIGS, features
from .sources import get_source

REPORT_FILE = "build_report.json"


def _split_rows(folder: Path) -> dict[str, int]:
    """split -> rows, from the Parquet footers of `folder/<split>-*.parquet`."""
    rows: dict[str, int] = {}
    for shard in sorted(folder.glob("*.parquet")):
        split = shard.name.split("-")[0]
        rows[split] = rows.get(split, 0) + pq.read_metadata(shard).num_rows
    return rows


def _config_metadata(out: Path) -> tuple[list[dict], DatasetInfosDict]:
    configs, infos = [], DatasetInfosDict()
    for name in CONFIGS:
        rows = _split_rows(out / name)
        if not rows:
            continue
        data_files = [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in rows]
        configs.append({"config_name": name, "data_files": data_files, **({"default": True} if name == "all" else {})})
        splits = datasets.SplitDict()
        for split, count in rows.items():
            splits.add(datasets.SplitInfo(name=split, num_examples=count))
        infos[name] = datasets.DatasetInfo(features=features(), splits=splits)
    return configs, infos


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
    sources = sorted({report["source"] for report in reports.values()})
    licence = "\n".join(f"- **{name}**: {get_source(name).license_note}" for name in sources)
    licence += "".join(f"\n\nLabels of **{name}**: {get_source(name).label_note}"
                       for name in sources if get_source(name).label_note)
    template = CATEGORICAL_PARAPHRASES[0].format(options="<labels joined as 'a, b, ... and z'>")
    sections = "\n\n".join(_split_section(split, report) for split, report in sorted(reports.items()))
    return f"""# EmoVIT emotion instruction data

Emotion instruction data in the style of EmoVIT (Xie et al., CVPR 2024): each row is an image with one instruction
(`prompt`) and its answer (`completion`), TRL's prompt/completion convention. Built with `emovit data build`.

```python
from datasets import load_dataset

data = load_dataset("<this repo or folder>", "categorical")  # or "conversation", "reasoning", "all" (default)
```

## Configs and columns

- `categorical`: EmoVIT's template; default instruction `{template}`, answer `Predict emotion: <label>`.
- `conversation`, `reasoning`: GPT-generated question/answer pairs from a caption and the visual clues.
- `all`: every row of the three.

Columns: `id`, `image`, `source`, `emotion`, `label_space`, `attributes` (brightness, colorfulness, scene, object,
facial_expression, human_action, valence, arousal, label_distribution), `caption`, `task`, `prompt`, `completion`.

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
