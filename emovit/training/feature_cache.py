"""Vision-feature cache: the frozen vision encoder's outputs, computed once and stored beside the dataset.

Flow: `load_dataset` -> `cache_vision_features` (once; `emovit train cache-features`) -> `attach_vision_features`
-> collator (`image_embeds`) -> `EmoVITForConditionalGeneration(image_embeds=...)`, which skips the encoder.
EmoVIT freezes the ViT (Sec. 4.1, LAVIS `freeze_vit=True`) but not its final LayerNorm (LAVIS `ln_vision`), so
the cache holds the encoder's output before that LayerNorm, which the model applies itself. The cache is a speed
option that departs from the release: one fixed resize per image, where the release's LAVIS `blip2_image_train`
draws a random crop and flip every epoch (`augmentation: lavis` in a recipe; a recipe cannot use both). Rows whose
image does not decode are marked and left out at training.
The features are written once, straight into the output folder (`datasets` would otherwise fingerprint the encoding
function by hashing the model it closes over, and keep a second copy in its own cache).
"""

import json
import logging
from pathlib import Path

import torch
from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.image_utils import InvalidImageError, open_image

from .collator import IMAGE_EMBEDS, image_source

logger = logging.getLogger(__name__)

CACHE_INFO = "emovit_vision_features.json"
FEATURES_FILE = "image_embeds.arrow"  # one Arrow file, memory-mapped by `Dataset.from_file`
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def default_cache_dir(dataset_dir: str, config: str | None, split: str) -> Path:
    """`<dataset folder>/vision_features/<config>-<split>`: beside the dataset it was computed from."""
    return Path(dataset_dir) / "vision_features" / f"{config or 'default'}-{split}"


def _vision_signature(model) -> dict:
    vision = model.config.vision_config
    signature = {key: getattr(vision, key) for key in ("hidden_size", "num_hidden_layers", "image_size", "patch_size")}
    return {**signature, "features": "before post_layernorm"}  # caches of the post-LayerNorm output are refused


@torch.no_grad()
def cache_vision_features(model, processor, dataset, out_dir, batch_size: int = 16, dtype: str = "float32") -> Path:
    """Stores `image_embeds` `(rows, patches + 1, vision_hidden)` in row order (datasets Arrow, memory-mapped on load)."""
    from datasets import Array2D, Features, Image, Value
    from datasets.fingerprint import Hasher

    vision = _vision_signature(model)
    shape = ((vision["image_size"] // vision["patch_size"]) ** 2 + 1, vision["hidden_size"])
    parameter = next(model.vision_model.parameters())
    model.eval()

    def encode(batch):
        images, readable = [], []
        for image in batch["image"]:
            try:
                images.append(open_image(image_source(image)))
                readable.append(True)
            except InvalidImageError as error:
                logger.warning("Vision-feature cache: %s", error)
                readable.append(False)
        embeds = torch.zeros((len(readable), *shape), dtype=DTYPES[dtype])
        if images:
            pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
            outputs = model.vision_features_before_layernorm(pixels.to(parameter.device, parameter.dtype))
            embeds[torch.tensor(readable)] = outputs.to("cpu", DTYPES[dtype])
        return {"row": batch["row"], IMAGE_EMBEDS: embeds.numpy(), "readable": readable}

    rows = dataset.cast_column("image", Image(decode=False)).select_columns(["image"])
    rows = rows.add_column("row", list(range(len(rows))))
    features = Features({"row": Value("int64"), IMAGE_EMBEDS: Array2D(shape, dtype), "readable": Value("bool")})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = rows.map(
        encode, batched=True, batch_size=batch_size, remove_columns=["image"], features=features,
        new_fingerprint=Hasher.hash([str(out_dir.resolve()), len(rows), vision, dtype]),  # not `encode` (the model)
        cache_file_name=str(out_dir / FEATURES_FILE), load_from_cache_file=False,
    )
    info = {"rows": len(cache), "unreadable": len(cache) - sum(cache["readable"]), "dtype": dtype, "vision": vision}
    (out_dir / CACHE_INFO).write_text(json.dumps(info, indent=2))
    return out_dir


def attach_vision_features(dataset, cache_dir, model):
    """`dataset` with an `image_embeds` column read from `cache_dir`; rows with an unreadable image are dropped.

    Returns `(dataset, dropped_rows)`. Refuses a cache made for another dataset size or another vision encoder.
    """
    from datasets import Dataset, concatenate_datasets

    info_path = Path(cache_dir) / CACHE_INFO
    if not info_path.is_file() or not (Path(cache_dir) / FEATURES_FILE).is_file():
        raise EmoVITInputError(f"{cache_dir}: no vision-feature cache here; make one with `emovit train cache-features`.")
    info = json.loads(info_path.read_text())
    if info["rows"] != len(dataset):
        raise EmoVITInputError(
            f"{cache_dir}: the cache holds {info['rows']} rows but the training split has {len(dataset)}; rebuild it."
        )
    if info["vision"] != _vision_signature(model):
        raise EmoVITInputError(
            f"{cache_dir}: the cache was made with vision encoder {info['vision']}, not the model's "
            f"{_vision_signature(model)}; rebuild it with this model."
        )
    cache = Dataset.from_file(str(Path(cache_dir) / FEATURES_FILE)).select_columns([IMAGE_EMBEDS, "readable"])
    joined = concatenate_datasets([dataset, cache], axis=1)
    readable = joined.filter(lambda flag: flag, input_columns="readable").remove_columns("readable")
    dropped = len(joined) - len(readable)
    if dropped:
        logger.warning("Vision-feature cache: %d row(s) with an unreadable image left out of training.", dropped)
    return readable.with_format("torch", columns=[IMAGE_EMBEDS], output_all_columns=True), dropped
