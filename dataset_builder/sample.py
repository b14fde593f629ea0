"""A small EmoSet-layout sample, drawn on the fly, whose images carry emotion-correlated visual evidence.

Each emotion has its own shape, palette and brightness (warm and bright for amusement, dark red spikes for anger,
dim blue-grey drops for sadness, ...), with random background, position, size, rotation, count and noise, so a
tiny model can learn the task while no two images are alike. Brightness and colorfulness are measured on the
pixels (colorfulness: Hasler and Suesstrunk, 2003); captions describe what was drawn. Used by `emovit demo`.
"""

import json
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from modeling_emovit.labels import MIKELS_EMOTIONS

# emotion: (shape, colour name, RGB, background brightness range, scene)
STYLES = {
    "amusement": ("circle", "yellow", (250, 215, 40), (170, 240), "playground"),
    "anger": ("spike", "red", (215, 25, 20), (20, 90), "street"),
    "awe": ("mountain", "white", (235, 240, 255), (60, 140), "mountains"),
    "contentment": ("ellipse", "green", (90, 190, 90), (140, 210), "garden"),
    "disgust": ("blob", "olive", (120, 120, 30), (80, 150), "kitchen"),
    "excitement": ("star", "magenta", (240, 40, 200), (120, 200), "stadium"),
    "fear": ("crack", "purple", (110, 40, 150), (0, 60), "forest at night"),
    "sadness": ("drop", "grey blue", (110, 130, 160), (50, 120), "rainy window"),
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "spike":
        points = [(r if i % 2 == 0 else r * 0.35, i * math.pi / 5) for i in range(10)]
    elif shape == "star":
        points = [(r if i % 2 == 0 else r * 0.5, i * math.pi / 4) for i in range(8)]
    elif shape == "mountain":
        points = [(r, math.pi / 2 + 0.0), (r, math.pi / 2 + 2.2), (r, math.pi / 2 - 2.2)]
    elif shape == "drop":
        points = [(r, -math.pi / 2)] + [(r * 0.6, a) for a in np.linspace(0.2, math.pi - 0.2, 6)]
    elif shape == "blob":
        points = [(r * (0.6 + 0.4 * math.sin(3 * a)), a) for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)]
    else:  # circle, ellipse, crack handled by the caller
        raise ValueError(shape)
    return [(cx + d * math.cos(a + angle), cy - d * math.sin(a + angle)) for d, a in points]


def draw_emotion_image(emotion: str, rng: random.Random, size: int = 64) -> tuple[Image.Image, str, int]:
    """Returns (image, colour name, number of shapes drawn)."""
    shape, colour_name, colour, (low, high), _ = STYLES[emotion]
    level = rng.uniform(low, high)
    tint = [rng.uniform(-25, 25) for _ in range(3)]
    image = Image.new("RGB", (size, size), tuple(int(min(255, max(0, level + t))) for t in tint))
    draw = ImageDraw.Draw(image)
    count = rng.randint(1, 4)
    for _ in range(count):
        r = rng.uniform(size * 0.1, size * 0.22)
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
        jitter = tuple(int(min(255, max(0, c + rng.uniform(-20, 20)))) for c in colour)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=jitter)
        elif shape == "ellipse":
            draw.ellipse([cx - r, cy - r * 0.55, cx + r, cy + r * 0.55], fill=jitter)
        elif shape == "crack":
            points = [(cx + rng.uniform(-r, r), cy + rng.uniform(-r, r)) for _ in range(5)]
            draw.line(points, fill=jitter, width=2)
        else:
            draw.polygon(_polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=jitter)
    pixels = np.asarray(image, dtype=np.float32) + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 8, (size, size, 3))
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)
    return image, colour_name, count


def brightness(image: Image.Image) -> float:
    """Mean luminance in [0, 1]."""
    return round(float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255.0), 3)


def colorfulness(image: Image.Image) -> float:
    """Hasler and Suesstrunk's colourfulness M, divided by 150 and clipped to [0, 1]."""
    r, g, b = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
    rg, yb = r - g, 0.5 * (r + g) - b
    metric = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
    return round(min(1.0, metric / 150.0), 3)


def caption_for(emotion: str, colour: str, count: int, image: Image.Image) -> str:
    shape, _, _, _, scene = STYLES[emotion]
    plural = "s" if count > 1 else ""
    light = "bright" if brightness(image) > 0.5 else "dark"
    return f"{COUNT_WORDS[count]} {colour} {shape}{plural} on a {light} background, like a {scene}"


def write_sample_emoset(root, train_per_emotion: int = 100, test_per_emotion: int = 25, seed: int = 0,
                        size: int = 64, val_per_emotion: int = 0) -> dict[str, int]:
    """Writes image/, annotation/, train.json, test.json (val.json with `val_per_emotion`) and captions.jsonl under
    `root`; returns split sizes. Validation images come from their own random stream, so adding them leaves the
    train and test images as they were for the same seed."""
    root = Path(root)
    rng, val_rng = random.Random(seed), random.Random(f"{seed}:validation")
    splits = {"train": [], "test": [], **({"val": []} if val_per_emotion else {})}
    captions = []
    for emotion in MIKELS_EMOTIONS:
        (root / "image" / emotion).mkdir(parents=True, exist_ok=True)
        (root / "annotation" / emotion).mkdir(parents=True, exist_ok=True)
        for index in range(train_per_emotion + test_per_emotion + val_per_emotion):
            split = "train" if index < train_per_emotion else "test" if index < train_per_emotion + test_per_emotion else "val"
            entry, caption = _write_item(root, emotion, f"{emotion}_{index:05d}", val_rng if split == "val" else rng, size)
            splits[split].append(entry)
            captions.append(caption)
    for split, entries in splits.items():
        (root / f"{split}.json").write_text(json.dumps(entries))
    with open(root / "captions.jsonl", "w") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in captions)
    return {split: len(entries) for split, entries in splits.items()}


def _write_item(root: Path, emotion: str, item_id: str, rng: random.Random, size: int) -> tuple[list[str], dict]:
    """Draws one image, writes it and its annotation; returns its split-file entry and its caption line."""
    image, colour, count = draw_emotion_image(emotion, rng, size)
    image_path, annotation_path = f"image/{emotion}/{item_id}.jpg", f"annotation/{emotion}/{item_id}.json"
    image.save(root / image_path, quality=95)
    annotation = {  # every clue key EmoSet has: a drawing shows no face and no person doing anything
        "emotion": emotion, "brightness": brightness(image), "colorfulness": colorfulness(image),
        "scene": STYLES[emotion][4], "object": [STYLES[emotion][0]] * count, "facial_expression": None,
        "human_action": None,
    }
    (root / annotation_path).write_text(json.dumps(annotation))
    return [emotion, image_path, annotation_path], {"id": item_id, "caption": caption_for(emotion, colour, count, image)}
