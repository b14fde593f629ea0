"""One photo is seen the same way everywhere: a JPEG whose EXIF Orientation says "rotate" is upright in the built
dataset, in the training collator, in evaluation and in what the processor makes for a pipeline or `transformers
serve` request (which sends the file as a data URL), as `datasets` and `transformers.image_utils.load_image` show it.
"""

import base64
import io

import torch
from dataset_trees import save_image
from PIL import Image

from dataset_builder.build import build_dataset
from modeling_emovit.testing import tiny_emovit

ORIENTATION = 0x0112  # EXIF tag; 6: the stored pixels must be turned 90 degrees clockwise to be seen upright


def rotated_jpeg(path):
    """Stored 60x20, a blue band on its left; seen upright it is 20x60 with the band on top."""
    stored = Image.new("RGB", (60, 20), (220, 30, 30))
    stored.paste((20, 40, 230), (0, 0, 12, 20))
    exif = stored.getexif()
    exif[ORIENTATION] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def is_upright(image: Image.Image) -> bool:
    red, _, blue = image.getpixel((10, 3))  # inside the band when upright, in the red part when sideways
    return image.size == (20, 60) and blue > 150 and red < 100


def pixel_values(processor, image) -> torch.Tensor:
    return processor.image_processor(image, return_tensors="pt")["pixel_values"][0]


def test_a_rotated_jpeg_is_upright_in_the_dataset_training_evaluation_and_serving(tmp_path):
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    from emovit.training.collator import EmoVITCollator
    from evaluation.prediction_loop import _predict_batch
    from modeling_emovit.backbone import backbone_adapter

    photo = rotated_jpeg(tmp_path / "data" / "photo.jpg")
    save_image(tmp_path / "data" / "plain.jpg")
    (tmp_path / "data" / "metadata.csv").write_text("file_name,label\nphoto.jpg,awe\nplain.jpg,fear\n")
    build_dataset("imagefolder", tmp_path / "data", "train", tmp_path / "rotated-photo-dataset", tasks=("categorical",))
    rows = load_dataset(str(tmp_path / "rotated-photo-dataset"), "categorical", split="train")
    undecoded = rows.cast_column("image", ImageFeature(decode=False))
    index = rows["id"].index("photo")

    stored = Image.open(io.BytesIO(undecoded[index]["image"]["bytes"]))
    assert is_upright(stored) and stored.getexif().get(ORIENTATION) is None  # upright pixels, no tag left to apply
    assert is_upright(rows[index]["image"])  # `datasets` decoding

    _, processor = tiny_emovit()
    collator = EmoVITCollator(backbone_adapter(*tiny_emovit()))
    assert is_upright(collator._decode(undecoded[index])["image"])  # training

    seen = []

    class Recorder:  # stands in for an evaluation task: records the images the prediction loop hands it
        description, paraphrases = "recorder", 1

        def rows(self, examples, images, kept, paraphrase):
            seen.extend(images)
            return []

    _predict_batch([(0, index)], undecoded, Recorder())
    assert len(seen) == 1 and is_upright(seen[0])  # evaluation

    reference = pixel_values(processor, Image.open(photo).transpose(Image.Transpose.ROTATE_270))
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo.read_bytes()).decode()
    sideways = pixel_values(processor, Image.open(photo).convert("RGB").copy())
    for name, image in {"opened file": Image.open(photo), "path": str(photo), "data URL (serve)": data_url}.items():
        values = processor(images=image, text="hi", return_tensors="pt")["pixel_values"][0]
        assert torch.allclose(values, reference, atol=1e-5), name
    assert (sideways - reference).abs().max() > 1.0  # the orientation is not something the comparison misses
    rebuilt = pixel_values(processor, seen[0])  # re-encoded once, at build time: JPEG noise at the band's edge only
    assert (rebuilt - reference).abs().mean() < 0.05 < (sideways - reference).abs().mean()
