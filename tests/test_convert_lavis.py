"""Specification of `emovit convert`: LAVIS blip2_vicuna_instruct weights in, an Auto-class folder out."""

import subprocess
import sys

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from modeling_emovit import EmoVITInputError
from modeling_emovit.convert_lavis import convert_lavis_checkpoint, load_lavis_state_dict, transformers_to_lavis
from modeling_emovit.testing import tiny_emovit


@pytest.fixture(scope="module")
def trained_and_base(tmp_path_factory):
    """A 'trained' tiny model exported to LAVIS keys, and a differently initialised InstructBLIP base folder."""
    folder = tmp_path_factory.mktemp("convert")
    trained, processor = tiny_emovit("llama", seed=1)
    base, base_processor = tiny_emovit("llama", seed=2, instructblip=True)
    base.save_pretrained(folder / "base")
    base_processor.save_pretrained(folder / "base")
    return folder, trained, processor


def _logits(model, processor):
    image = Image.new("RGB", (32, 32), (90, 20, 200))
    inputs = processor.build_training_inputs([image], ["What emotion?"], ["Predict emotion: awe"])
    with torch.no_grad():
        return model(**inputs).logits


def test_lavis_keys_convert_back_to_identical_logits(trained_and_base):
    folder, trained, processor = trained_and_base
    torch.save({"model": transformers_to_lavis(trained.state_dict()), "epoch": 3}, folder / "emovit.pth")

    counts = convert_lavis_checkpoint(folder / "emovit.pth", folder / "base", folder / "out")

    converted = AutoModelForImageTextToText.from_pretrained(folder / "out", trust_remote_code=True)
    assert counts["converted"] == len(trained.state_dict())
    assert torch.equal(_logits(converted, processor), _logits(trained, processor))


def test_partial_checkpoint_keeps_the_frozen_weights_of_the_base(trained_and_base):
    folder, trained, _ = trained_and_base
    trainable = {k: v for k, v in trained.state_dict().items() if k.split(".")[0] in ("qformer", "query_tokens", "language_projection")}
    torch.save({"model": transformers_to_lavis(trainable)}, folder / "partial.pth")

    counts = convert_lavis_checkpoint(folder / "partial.pth", folder / "base", folder / "partial")

    converted = AutoModelForImageTextToText.from_pretrained(folder / "partial", trust_remote_code=True)
    base = AutoModelForImageTextToText.from_pretrained(folder / "base")
    assert counts["from_base"] > 0
    assert torch.equal(converted.query_tokens, trained.query_tokens)
    assert torch.equal(converted.vision_model.embeddings.patch_embedding.weight, base.vision_model.embeddings.patch_embedding.weight)


def test_pickled_module_is_refused_unless_trusted(tmp_path):
    module = torch.nn.Linear(2, 2)
    torch.save(module, tmp_path / "whole_module.pth")

    with pytest.raises(EmoVITInputError, match="--trust-pickle"):
        load_lavis_state_dict(tmp_path / "whole_module.pth")
    assert set(load_lavis_state_dict(tmp_path / "whole_module.pth", trust_pickle=True)) == {"weight", "bias"}


def test_cli_refuses_unsafe_pickle_in_one_sentence_with_exit_2(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole_module.pth")
    result = subprocess.run(
        [sys.executable, "-m", "emovit", "convert", "--lavis", str(tmp_path / "whole_module.pth"),
         "--base", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "whole_module.pth" in result.stderr and "--trust-pickle" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_from_another_architecture_are_refused(tmp_path, trained_and_base):
    folder, _, _ = trained_and_base
    torch.save({"model": {"text_encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(EmoVITInputError, match="not blip2_vicuna_instruct"):
        convert_lavis_checkpoint(tmp_path / "other.pth", folder / "base", tmp_path / "out")
