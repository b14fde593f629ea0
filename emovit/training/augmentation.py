"""The release's training image transform, LAVIS `blip2_image_train`: a random resized crop and a horizontal flip.

Flow: collator (decoded image) -> `LavisTrainTransform` -> processor (its resize to `image_size` is then a no-op;
it rescales and applies the CLIP normalisation LAVIS also uses). LAVIS (`processors/blip_processors.py`,
`Blip2ImageTrainProcessor`, `image_size: 224` in the release's FT.yaml): `RandomResizedCrop(image_size,
scale=(0.5, 1.0), interpolation=BICUBIC)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(CLIP mean, std)`.
The crop box is drawn as torchvision's `RandomResizedCrop.get_params` draws it (area fraction uniform in `scale`,
log aspect ratio uniform in [log 3/4, log 4/3], ten tries, then a centre crop clamped to that ratio range) and cut
out before the bicubic resize, as its `F.resized_crop` does on PIL images; torchvision itself is not a dependency
(its wheel does not load against the CPU build of torch this project installs). Random numbers come from torch's
generator, which the trainer seeds, and each dataloader worker reseeds.
"""

import math
from dataclasses import dataclass

import torch
from PIL import Image

AUGMENTATIONS = ("none", "lavis")


def crop_box(width: int, height: int, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height) of a random resized crop (torchvision's sampling)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(torch.randint(0, height - crop_height + 1, size=(1,)).item())
            left = int(torch.randint(0, width - crop_width + 1, size=(1,)).item())
            return left, top, crop_width, crop_height
    # Fallback: the largest centre crop whose aspect ratio is inside `ratio`.
    in_ratio = width / height
    if in_ratio < min(ratio):
        crop_width, crop_height = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        crop_width, crop_height = int(round(height * max(ratio))), height
    else:
        crop_width, crop_height = width, height
    return (width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height


@dataclass(frozen=True)
class LavisTrainTransform:
    """PIL image -> `size` x `size` PIL image: random resized crop (bicubic), then a flip with probability 0.5."""

    size: int
    scale: tuple[float, float] = (0.5, 1.0)

    def __call__(self, image: Image.Image) -> Image.Image:
        left, top, width, height = crop_box(*image.size, scale=self.scale)
        # torchvision `F.resized_crop` on a PIL image: crop, then resize the cropped pixels alone (PIL's `box=`
        # would also read the pixels just outside the box at its borders).
        out = image.crop((left, top, left + width, top + height)).resize((self.size, self.size), Image.Resampling.BICUBIC)
        if torch.rand(1).item() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return out


def training_transform(name: str, processor):
    """The transform a recipe's `augmentation` names (None for "none"), at the processor's image size."""
    if name == "none":
        return None
    size = processor.image_processor.size
    return LavisTrainTransform(size=int(size["height"]) if isinstance(size, dict) else int(size.height))
