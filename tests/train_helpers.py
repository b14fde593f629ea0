"""Fixtures for the training tests and benchmarks: a small learnable emotion dataset, tiny models, sft.py runs.

The dataset is what `load_dataset(folder, config)` reads (Parquet + a README `configs` block, as `emovit data
build` writes): each emotion its own colour, so a tiny model can learn it.
"""

import os
import subprocess
import sys
from pathlib import Path

from dataset_trees import config_folder, png_bytes

REPO = Path(__file__).resolve().parents[1]
SFT = REPO / "recipes" / "sft.py"
TINY_RECIPE = REPO / "recipes" / "emovit-tiny" / "sft.yaml"
CPU_DDP = REPO / "recipes" / "accelerate_configs" / "cpu_ddp.yaml"
COLOURS = {"amusement": (250, 200, 0), "anger": (200, 0, 0), "awe": (0, 80, 200), "sadness": (60, 60, 60)}
INSTRUCTION = "Please select the emotion closest to the image from the following options:" + ", ".join(COLOURS)


def write_dataset(folder, rows=16, config="categorical", unreadable_rows=(), columns=None, label_space=None) -> Path:
    """Parquet dataset `folder/<config>/train-00000-of-00001.parquet` with a README `configs` block; `label_space`:
    also the `emotion` and `label_space` columns every `emovit data build` config has, naming that space."""
    labels = [list(COLOURS)[i % len(COLOURS)] for i in range(rows)]
    images = [b"not an image" if i in unreadable_rows else png_bytes(COLOURS[label], size=32) for i, label in enumerate(labels)]
    data = {
        "id": [f"{i:05d}" for i in range(rows)],
        "image": [{"bytes": image, "path": f"{i:05d}.png"} for i, image in enumerate(images)],
        "prompt": [INSTRUCTION] * rows,
        "completion": [f"Predict emotion: {label}" for label in labels],
    }
    if label_space:
        data |= {"emotion": labels, "label_space": [label_space] * rows}
    if columns is not None:
        data = {name: data[name] for name in columns}
    return config_folder(folder, config, "train", data)


def save_tiny_emovit(folder, text_model="llama", seed=0) -> Path:
    from modeling_emovit.testing import tiny_emovit

    model, processor = tiny_emovit(text_model=text_model, seed=seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def damaged_copy(model: Path, folder: Path, damage: str) -> Path:
    """A copy of a saved model folder with one defect: "truncated weights" (half of model.safetensors), "config
    field of the wrong type" (num_query_tokens "four"), "config without text_config", "empty Q-Former tokenizer"
    (qformer_tokenizer/tokenizer.json of 0 bytes, as a copy cut short leaves it), or "none"."""
    import json
    import shutil

    folder = Path(shutil.copytree(model, folder))
    config = json.loads((folder / "config.json").read_text())
    if damage == "truncated weights":
        weights = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    elif damage == "config field of the wrong type":
        (folder / "config.json").write_text(json.dumps({**config, "num_query_tokens": "four"}))
    elif damage == "config without text_config":
        (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "text_config"}))
    elif damage == "empty Q-Former tokenizer":
        (folder / "qformer_tokenizer" / "tokenizer.json").write_bytes(b"")
    return folder


def save_tiny_llava(folder) -> Path:
    """A tiny random LLaVA-1.5 (`modeling_emovit.testing_vlms.tiny_vlm`: "USER: <image>\n... ASSISTANT: ..." with
    `{% generation %}` markers and BOS in the template), its tokenizer trained on the dataset's labels, saved."""
    from modeling_emovit.testing_vlms import tiny_vlm

    model, processor = tiny_vlm("llava", emotion_labels=list(COLOURS))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def sft_command(*args, launcher=None, launch_args=()) -> list[str]:
    """`python recipes/sft.py --config <tiny recipe> ARGS`, or under `accelerate launch` with the given config."""
    accelerate = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(launcher)]
    prefix = [*accelerate, *launch_args] if launcher else [sys.executable]
    return [*prefix, str(SFT), "--config", str(TINY_RECIPE), "--disable_tqdm", "true", *map(str, args)]


def child_environment(**env: str) -> dict:
    """A recipe subprocess's environment: one torch thread, the repository importable, `env` on top."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}


def run_sft(*args, launcher=None, launch_args=(), env=None, timeout=240) -> subprocess.CompletedProcess:
    environment = child_environment(**(env or {}))
    return subprocess.run(
        sft_command(*args, launcher=launcher, launch_args=launch_args), capture_output=True, text=True, timeout=timeout, env=environment,
        cwd=REPO,
    )
