"""Specification of the EmoVIT model family: Auto classes, save/load, remote code, generation, freezing."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from remote_code import WITHOUT_EMOVIT
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor, pipeline

import modeling_emovit
from modeling_emovit import EmoVITConfig, EmoVITForConditionalGeneration, EmoVITInputError, EmoVITModel
from modeling_emovit.backbone import backbone_adapter
from modeling_emovit.testing import tiny_emovit

IMAGES = [Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (24, 48), (20, 90, 220))]
PROMPTS = ["Please select the emotion closest to the image.", "What emotion does this image evoke? Why?"]


def _inputs(processor):
    return processor.build_training_inputs(IMAGES, PROMPTS, ["Predict emotion: awe", "Predict emotion: fear"])


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("text_model", ["opt", "llama", "t5"])
def test_save_and_reload_through_auto_classes_gives_identical_logits(tmp_path, text_model):
    model, processor = tiny_emovit(text_model)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path, trust_remote_code=True)
    reprocessor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)

    assert type(reloaded).__name__ == "EmoVITForConditionalGeneration"
    assert reprocessor.num_query_tokens == model.config.num_query_tokens
    assert reloaded.config.emotion_labels == list(modeling_emovit.MIKELS_EMOTIONS)
    assert torch.equal(_logits(model, _inputs(processor)), _logits(reloaded, _inputs(reprocessor)))


def test_saved_folder_lists_every_auto_class_and_carries_its_code(tmp_path):
    model, processor = tiny_emovit("llama")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForImageTextToText", "AutoProcessor"}
    for module in ("configuration_emovit.py", "modeling_emovit.py", "processing_emovit.py", "image_utils.py"):
        assert (tmp_path / module).is_file()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), EmoVITConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), EmoVITModel)


REMOTE_LOAD = WITHOUT_EMOVIT + """
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
folder = sys.argv[1]
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
inputs = torch.load(folder + "/inputs.pt")
with torch.no_grad():
    torch.save(model(**inputs).logits, folder + "/remote_logits.pt")
print(type(model).__module__, type(processor).__module__)
"""


def test_remote_code_loads_in_a_process_that_cannot_import_the_package(tmp_path):
    model, processor = tiny_emovit("llama")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    inputs = dict(_inputs(processor))
    torch.save(inputs, tmp_path / "inputs.pt")

    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2].startswith("transformers_modules.")
    assert torch.equal(torch.load(tmp_path / "remote_logits.pt"), _logits(model, inputs))


@pytest.mark.parametrize("text_model", ["opt", "llama"])
def test_batched_generate_with_left_padding_equals_one_by_one(text_model):
    model, processor = tiny_emovit(text_model)
    prompts = ["What emotion?", "Please select the emotion closest to the image from the following options:"]

    batch = processor(images=IMAGES, text=prompts, return_tensors="pt", padding=True)
    batched = model.generate(**batch, max_new_tokens=6, do_sample=False)[:, batch["input_ids"].shape[1]:]
    for row, (image, prompt) in enumerate(zip(IMAGES, prompts)):
        single = processor(images=[image], text=[prompt], return_tensors="pt")
        alone = model.generate(**single, max_new_tokens=6, do_sample=False)[:, single["input_ids"].shape[1]:]
        assert batched[row].tolist() == alone[0].tolist()


def test_freezing_leaves_exactly_ln_vision_qformer_query_tokens_and_projection_trainable():
    model, _ = tiny_emovit("llama")

    counts = model.freeze_for_instruction_tuning()

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    parts = (model.qformer, model.language_projection, model.vision_model.post_layernorm)
    assert trainable == {name for name, _ in model.named_parameters()
                         if name.startswith(("qformer.", "language_projection.", "vision_model.post_layernorm."))
                         or name == "query_tokens"}
    expected = sum(p.numel() for part in parts for p in part.parameters()) + model.query_tokens.numel()
    assert counts["trainable"] == expected
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["frozen"] == counts["total"] - expected > 0


def test_query_tokens_start_random_as_in_lavis():
    model, _ = tiny_emovit("llama")
    assert 0.01 < model.query_tokens.std().item() < 0.03


def test_processor_with_other_num_query_tokens_is_refused_in_one_sentence():
    model, processor = tiny_emovit("llama")
    processor.num_query_tokens = model.config.num_query_tokens + 1

    with pytest.raises(EmoVITInputError, match="num_query_tokens"):
        model(**_inputs(processor))


def test_instructblip_folder_loads_as_emovit_with_identical_logits(tmp_path):
    base, processor = tiny_emovit("llama", instructblip=True)
    base.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "instructblip"

    model = EmoVITForConditionalGeneration.from_pretrained(tmp_path)

    assert model.config.model_type == "emovit"
    inputs = dict(processor(images=IMAGES, text=PROMPTS, return_tensors="pt", padding=True))
    assert torch.equal(_logits(model, inputs), _logits(base, inputs))


def test_config_of_another_model_type_is_refused_by_name(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EmoVITInputError, match="model_type 'bert'"):
        EmoVITForConditionalGeneration.from_pretrained(tmp_path)


def test_folder_without_weights_is_refused_naming_the_folder(tmp_path):
    model, _ = tiny_emovit("llama")
    model.config.save_pretrained(tmp_path)
    with pytest.raises(OSError, match=str(tmp_path)):
        EmoVITForConditionalGeneration.from_pretrained(tmp_path)


def test_chat_template_survives_save_and_load(tmp_path):
    _, processor = tiny_emovit("llama")
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How does it feel?"}]}]

    assert reloaded.chat_template == processor.chat_template
    assert reloaded.apply_chat_template(messages, tokenize=False) == "How does it feel?"


def test_image_text_to_text_pipeline_answers(tmp_path):
    model, processor = tiny_emovit("llama")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    answer = pipeline("image-text-to-text", model=str(tmp_path), trust_remote_code=True)

    question = "What emotion does this image evoke?"
    output = answer(images=IMAGES[0], text=question, max_new_tokens=4)[0]["generated_text"]

    greedy = backbone_adapter(model, processor).generate([IMAGES[0]], [question], max_new_tokens=4)[0]
    assert greedy and output.startswith(question) and output.removeprefix(question).strip() == greedy


def test_image_embeds_replace_pixel_values_exactly():
    model, processor = tiny_emovit("llama")
    inputs = dict(_inputs(processor))
    with torch.no_grad():
        with torch.no_grad():  # a trained final LayerNorm, so that skipping it would show
            model.vision_model.post_layernorm.weight.mul_(1.5)
        image_embeds = model.vision_features_before_layernorm(inputs.pop("pixel_values"))
        from_cache = model(image_embeds=image_embeds, **inputs)
        direct = model(**_inputs(processor))
    assert torch.allclose(from_cache.loss, direct.loss) and torch.equal(from_cache.logits, direct.logits)
