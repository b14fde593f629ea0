"""Small dataset folders in released layouts, made inside tests (EmoSet, image folders, class folders, generations)."""

import json
from io import BytesIO
from pathlib import Path

from PIL import Image

MIKELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
CLUES = {"brightness": 0.4, "colorfulness": 0.7, "scene": "beach", "object": ["dog", "ball"],
         "facial_expression": "happy", "human_action": "running"}


def save_image(path: Path, color=(200, 80, 40), mode="RGB", size=(16, 16), format=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    (image.convert(mode) if mode != "RGB" else image).save(path, format=format)
    return path


def emoset_tree(root: Path, per_emotion: int = 2, split: str = "train") -> list[list[str]]:
    """EmoSet as released: image/<e>/<e>_NNNNN.jpg, annotation/<e>/<e>_NNNNN.json, <split>.json. Returns the entries."""
    entries = []
    for e_index, emotion in enumerate(MIKELS):
        for number in range(per_emotion):
            stem = f"{emotion}_{e_index * 100 + number:05d}"
            image, annotation = f"image/{emotion}/{stem}.jpg", f"annotation/{emotion}/{stem}.json"
            save_image(root / image, (30 * e_index, 10 * number, 90))
            (root / annotation).parent.mkdir(parents=True, exist_ok=True)
            (root / annotation).write_text(json.dumps({"emotion": emotion, **CLUES}))
            entries.append([emotion, image, annotation])
    write_split(root, split, entries)
    return entries


def write_split(root: Path, split: str, entries) -> None:
    (root / f"{split}.json").write_text(json.dumps(entries))


def generations_file(path: Path, ids, tasks=("conversation", "reasoning"), pairs: int = 2) -> Path:
    """One generation-JSONL line per image and task, as `emovit data generate` writes them."""
    lines = [
        {"id": item, "task": task, "model": "gpt-test", "prompt_version": "v1", "usage": {}, "backend": "test",
         "pairs": [{"question": f"{task} question {n} about {item}?", "answer": f"{task} answer {n}."} for n in range(pairs)]}
        for item in ids for task in tasks
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def png_bytes(colour, size: int = 24) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def config_folder(folder: Path, config: str, split: str, columns: dict, features=None) -> Path:
    """A built-dataset folder with one config, as `load_dataset(folder, config)` reads it (Parquet + a README
    `configs` block); an `image` column of `{"bytes", "path"}` dicts becomes `Image()` (bytes stay undecoded), other
    columns follow `features` when given."""
    from datasets import Dataset
    from datasets import Image as ImageFeature

    dataset = Dataset.from_dict(columns, features=features)
    if "image" in columns and features is None:
        dataset = dataset.cast_column("image", ImageFeature())
    folder = Path(folder)
    (folder / config).mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(folder / config / f"{split}-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {split}\n"
        f"    path: {config}/{split}-*.parquet\n---\n"
    )
    return folder


def built_emoset_sample(root: Path, test_images_per_emotion: int = 2) -> Path:
    """`emovit data sample` (1 train image per emotion) then `emovit data build --tasks categorical` of its test split:
    a real built dataset, `root/data`, with `8 * test_images_per_emotion` test images of the 8 Mikels emotions."""
    from emovit.cli import main

    assert main(["data", "sample", "--out", str(root / "sample"), "--images-per-emotion", "1",
                 str(test_images_per_emotion)]) == 0
    assert main(["data", "build", "--source", "emoset", "--root", str(root / "sample"), "--split", "test",
                 "--tasks", "categorical", "--out", str(root / "data")]) == 0
    return root / "data"
