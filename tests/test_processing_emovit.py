"""Specification of EmoVITProcessor: the training layout, and images of every kind (or refused by name)."""

import io

import numpy as np
import pytest
from PIL import Image

from modeling_emovit import IGNORE_INDEX, InvalidImageError, open_image
from modeling_emovit.testing import tiny_emovit

IMAGE = Image.new("RGB", (32, 32), (10, 200, 30))


@pytest.mark.parametrize("text_model", ["llama", "opt"])
def test_labels_are_exactly_the_answer_tokens_and_eos_for_decoder_only(text_model):
    _, processor = tiny_emovit(text_model)
    prompts, answers = ["What emotion?", "Please select the emotion closest to the image"], ["Predict emotion: awe", "fear"]

    batch = processor.build_training_inputs([IMAGE, IMAGE], prompts, answers)

    for row, answer in enumerate(answers):
        labels = batch["labels"][row]
        answer_ids = processor.tokenizer(answer, add_special_tokens=False)["input_ids"] + [processor.tokenizer.eos_token_id]
        assert labels[labels != IGNORE_INDEX].tolist() == answer_ids
        kept = (labels != IGNORE_INDEX).nonzero().flatten()
        assert batch["input_ids"][row, kept].tolist() == answer_ids  # labels align with the LM input
        assert batch["input_ids"][row, : processor.num_query_tokens].eq(processor.image_token_id).all()


def test_qformer_sees_the_instruction_only():
    _, processor = tiny_emovit("llama")
    batch = processor.build_training_inputs([IMAGE], ["what emotion"], ["predict emotion: amusement"])
    qformer_text = processor.qformer_tokenizer.decode(batch["qformer_input_ids"][0], skip_special_tokens=True)
    assert qformer_text == "what emotion"


def test_an_over_long_instruction_loses_its_beginning_as_in_lavis():
    """LAVIS tokenizes the instruction with truncation_side="left" (BERT and LLM), the answer with "right"."""
    _, processor = tiny_emovit("llama")
    instruction = "what emotion " * 40 + "predict emotion"
    batch = processor.build_training_inputs([IMAGE], [instruction], ["awe"], max_prompt_length=8)
    qformer_text = processor.qformer_tokenizer.decode(batch["qformer_input_ids"][0], skip_special_tokens=True)
    assert qformer_text.endswith("predict emotion") and batch["qformer_input_ids"].shape[1] == 8
    text = processor.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
    assert text.endswith("emotion predict emotionawe")
    assert processor.tokenizer.truncation_side == "right"  # restored afterwards


def test_t5_labels_are_the_answer_ids():
    _, processor = tiny_emovit("t5")
    batch = processor.build_training_inputs([IMAGE, IMAGE], ["a", "b"], ["Predict emotion: awe", "awe"])
    expected = processor.tokenizer("awe", add_special_tokens=False)["input_ids"] + [processor.tokenizer.eos_token_id]
    assert batch["labels"][1][batch["labels"][1] != IGNORE_INDEX].tolist() == expected
    assert processor.tokenizer.decode(batch["input_ids"][1][processor.num_query_tokens:], skip_special_tokens=True) == "b"


def _encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (8, 6), 128),
        Image.new("LA", (8, 6), (128, 0)),
        Image.new("RGBA", (8, 6), (255, 0, 0, 128)),
        Image.new("RGB", (8, 6), (1, 2, 3)).convert("P"),
        Image.new("CMYK", (8, 6), (0, 255, 255, 0)),
        Image.fromarray(np.full((6, 8), 65535, dtype=np.uint16)),
        Image.new("F", (8, 6), 0.5),
    ],
    ids=lambda image: image.mode,
)
def test_every_image_mode_becomes_8bit_rgb_and_is_processed(image):
    _, processor = tiny_emovit("llama")
    assert open_image(image).mode == "RGB" and open_image(image).size == (8, 6)
    assert processor(images=image, text="hi", return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 32)


def test_transparency_is_laid_on_white_and_16bit_keeps_its_scale():
    assert open_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert open_image(Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_file_opens_as_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(_encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    assert open_image(path).mode == "RGB"


def test_truncated_file_is_refused_by_name(tmp_path):
    path = tmp_path / "truncated.jpg"
    path.write_bytes(_encoded(Image.new("RGB", (64, 64), (5, 5, 5)), "JPEG")[:200])
    with pytest.raises(InvalidImageError, match="truncated.jpg"):
        open_image(path)


def test_non_image_file_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(InvalidImageError, match="notes.jpg"):
        open_image(path)


def test_image_with_a_zero_side_is_refused():
    with pytest.raises(InvalidImageError, match="side of 0"):
        open_image(Image.new("RGB", (0, 5)))


def test_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_encoded(Image.new("L", (100, 100)), "PNG"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # 10,000 pixels: over the limit, under twice it
    with pytest.raises(InvalidImageError, match="bomb.png.*decompression bomb"):
        open_image(path)


def test_processor_opens_image_paths_and_refuses_bad_ones(tmp_path):
    _, processor = tiny_emovit("llama")
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(_encoded(IMAGE, "PNG"))
    bad.write_bytes(b"\x89PNG broken")
    assert processor(images=[str(good)], text=["hi"], return_tensors="pt")["pixel_values"].shape[0] == 1
    with pytest.raises(InvalidImageError, match="bad.png"):
        processor(images=[str(bad)], text=["hi"], return_tensors="pt")


def test_text_without_an_image_is_refused_in_one_sentence():
    from modeling_emovit import EmoVITInputError

    _, processor = tiny_emovit()
    with pytest.raises(EmoVITInputError, match="send one image with the instruction"):
        processor(text=["How does it feel?"], return_tensors="pt")
    with pytest.raises(EmoVITInputError):
        processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "Feel?"}]}],
                                      tokenize=True, return_dict=True)


def test_an_array_or_tensor_image_is_processed_as_its_pil_image():
    """transformers' image processors take numpy arrays and torch tensors; the processor's own check for a missing
    image must not ask an array for its truth value ("The truth value of an array ... is ambiguous")."""
    import torch

    _, processor = tiny_emovit()
    image = Image.new("RGB", (20, 20), (230, 20, 20))
    expected = processor(images=image, text="hi", return_tensors="pt")["pixel_values"]
    for array in (np.array(image), torch.from_numpy(np.array(image)).permute(2, 0, 1)):
        assert torch.allclose(processor(images=array, text="hi", return_tensors="pt")["pixel_values"], expected)
