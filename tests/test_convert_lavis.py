"""Specification of `emovit convert`: LAVIS InstructBLIP checkpoints in, an Auto-class folder out.

The LAVIS files are written by `tests/lavis_checkpoints.py` under LAVIS's own key names (checked here against
`tests/fixtures/lavis_keys.json`, listed from LAVIS's module definitions), in the two shapes that occur: what
LAVIS `_save_checkpoint` keeps (trainable parameters + every buffer) and the release's whole pickled module. Each
converted model is compared with a reference mixed by hand, module by module, from the "trained" model and the base.
"""

from pathlib import Path

import pytest
import torch
from PIL import Image

from emovit.cli import main
from lavis_checkpoints import KEYS, key_patterns, lavis_state_dict, saved_by_save_checkpoint, zero_k_bias
from modeling_emovit import EmoVITInputError
from modeling_emovit.convert_lavis import convert_lavis_checkpoint, load_lavis_state_dict
from modeling_emovit.modeling_emovit import EmoVITForConditionalGeneration
from modeling_emovit.testing import tiny_emovit

LAVIS_QFORMER = {"cross_every": 2}  # cross-attention in Q-Former layers 0, 2, ... (LAVIS cross_attention_freq 2)
TRAINED = ("qformer", "query_tokens", "language_projection", "vision_model.post_layernorm")
VICUNA, T5 = "blip2_vicuna_instruct", "blip2_t5_instruct"


def _perturb_norms(model, seed):
    """Random init leaves every LayerNorm at ones and zeros: make them differ between models, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name.lower():
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


def _trained_and_base(folder, text_model):
    """A 'trained' EmoVIT (as LAVIS could hold it: EVA has no key bias) and a differently seeded InstructBLIP base."""
    trained, processor = tiny_emovit(text_model, seed=1, size_overrides=LAVIS_QFORMER)
    zero_k_bias(trained)
    _perturb_norms(trained, 1)
    base, base_processor = tiny_emovit(text_model, seed=2, instructblip=True, size_overrides=LAVIS_QFORMER)
    _perturb_norms(base, 2)
    base.save_pretrained(folder / "base")
    base_processor.save_pretrained(folder / "base")
    return trained, base, processor


@pytest.fixture(scope="module")
def vicuna(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vicuna")
    return (folder, *_trained_and_base(folder, "llama"))


def _hand_mixed(base_folder, trained):
    """The base with each trained module replaced by the trained model's, attribute by attribute."""
    reference = EmoVITForConditionalGeneration.from_pretrained(base_folder)
    with torch.no_grad():
        reference.qformer.load_state_dict(trained.qformer.state_dict())
        reference.query_tokens.copy_(trained.query_tokens)
        reference.language_projection.load_state_dict(trained.language_projection.state_dict())
        reference.vision_model.post_layernorm.load_state_dict(trained.vision_model.post_layernorm.state_dict())
    return reference.eval()


def _logits(model, processor):
    image = Image.new("RGB", (32, 32), (90, 20, 200))
    inputs = processor.build_training_inputs([image], ["What emotion?"], ["Predict emotion: awe"])
    with torch.no_grad():
        return model(**inputs).logits


def _lavis_checkpoint(state_dict):
    """The dict LAVIS `_save_checkpoint` writes around the model's state dict."""
    return {"model": state_dict, "optimizer": {"state": {}, "param_groups": []}, "config": {"run": {"init_lr": 1e-5}},
            "scaler": {"scale": 65536.0}, "epoch": 3}


def test_fixtures_have_exactly_lavis_key_names(vicuna, tmp_path):
    _, trained, _, _ = vicuna
    full = lavis_state_dict(trained, VICUNA)
    assert key_patterns(full) == KEYS[VICUNA]["state_dict"]
    assert key_patterns(saved_by_save_checkpoint(full, VICUNA)) == KEYS[VICUNA]["saved"]
    t5, _ = tiny_emovit("t5", size_overrides=LAVIS_QFORMER)
    assert key_patterns(saved_by_save_checkpoint(lavis_state_dict(t5, T5), T5)) == KEYS[T5]["saved"]


def test_save_checkpoint_file_with_buffers_converts_to_the_hand_mixed_reference(vicuna):
    folder, trained, _, processor = vicuna
    saved = saved_by_save_checkpoint(lavis_state_dict(trained, VICUNA), VICUNA)
    assert any(key.endswith("rotary_emb.inv_freq") for key in saved) and "Qformer.bert.embeddings.position_ids" in saved
    torch.save(_lavis_checkpoint(saved), folder / "checkpoint_best.pth")

    summary = convert_lavis_checkpoint(folder / "checkpoint_best.pth", folder / "base", folder / "out")

    converted = EmoVITForConditionalGeneration.from_pretrained(folder / "out").eval()
    assert torch.equal(_logits(converted, processor), _logits(_hand_mixed(folder / "base", trained), processor))
    layers = trained.config.text_config.num_hidden_layers
    assert summary["dropped"] == {"buffers transformers recomputes (position_ids, rotary inv_freq)": 1 + layers}
    assert set(summary["trained_modules"].values()) == {"checkpoint"}
    assert summary["converted"] == len(saved) - 1 - layers  # every key but the dropped buffers


def test_whole_pickled_module_under_ddp_converts_every_weight_and_keeps_the_base_extra_vocabulary_rows(vicuna):
    folder, trained, base, processor = vicuna
    full = lavis_state_dict(trained, VICUNA)
    for key in ("llm_model.model.embed_tokens.weight", "llm_model.lm_head.weight"):  # LAVIS' Vicuna: no <image> row
        full[key] = full[key][:-1].clone()
    torch.save({f"module.{key}": tensor for key, tensor in full.items()}, folder / "model.pth")

    summary = convert_lavis_checkpoint(folder / "model.pth", folder / "base", folder / "whole")

    converted = EmoVITForConditionalGeneration.from_pretrained(folder / "whole").eval()
    assert torch.equal(_logits(converted, processor)[..., :-1], _logits(trained, processor)[..., :-1])
    assert torch.equal(converted.language_model.lm_head.weight[-1], base.language_model.lm_head.weight[-1])
    assert sorted(summary["vocabulary_rows_from_base"]) == ["language_model.lm_head.weight",
                                                             "language_model.model.embed_tokens.weight"]
    assert set(summary["trained_modules"].values()) == {"checkpoint"}


def test_flan_t5_checkpoint_converts_onto_an_instructblip_flan_t5_base(tmp_path):
    trained, base, processor = _trained_and_base(tmp_path, "t5")
    trained.language_model.load_state_dict(base.language_model.state_dict())  # the frozen Flan-T5 both started from
    saved = saved_by_save_checkpoint(lavis_state_dict(trained, T5), T5)
    assert "t5_model.encoder.embed_tokens.weight" in saved and "t5_proj.weight" in saved
    torch.save(_lavis_checkpoint(saved), tmp_path / "t5.pth")

    summary = convert_lavis_checkpoint(tmp_path / "t5.pth", tmp_path / "base", tmp_path / "out")

    converted = EmoVITForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(_logits(converted, processor), _logits(_hand_mixed(tmp_path / "base", trained), processor))
    assert summary["dropped"] == {"buffers transformers recomputes (position_ids, rotary inv_freq)": 1}


def test_a_trained_module_missing_from_the_checkpoint_is_named_as_taken_from_the_base(vicuna, capsys):
    folder, trained, base, _ = vicuna
    saved = saved_by_save_checkpoint(lavis_state_dict(trained, VICUNA), VICUNA)
    torch.save(_lavis_checkpoint({k: v for k, v in saved.items() if not k.startswith("llm_proj.")}), folder / "no_proj.pth")

    assert main(["convert", "--lavis", str(folder / "no_proj.pth"), "--base", str(folder / "base"),
                 "--out", str(folder / "no_proj")]) == 0

    converted = EmoVITForConditionalGeneration.from_pretrained(folder / "no_proj")
    assert torch.equal(converted.language_projection.weight, base.language_projection.weight)
    assert torch.equal(converted.query_tokens, trained.query_tokens)
    printed = capsys.readouterr().out
    assert "trained module projection: from the base" in printed and "trained module Q-Former: from the checkpoint" in printed


def test_half_a_q_v_bias_pair_is_one_sentence_and_exit_2(vicuna, capsys):
    folder, trained, _, _ = vicuna
    saved = saved_by_save_checkpoint(lavis_state_dict(trained, VICUNA), VICUNA)
    saved["visual_encoder.blocks.0.attn.q_bias"] = torch.zeros(trained.config.vision_config.hidden_size)
    torch.save(_lavis_checkpoint(saved), folder / "half_pair.pth")

    code = main(["convert", "--lavis", str(folder / "half_pair.pth"), "--base", str(folder / "base"), "--out", str(folder / "x")])

    error = capsys.readouterr().err
    assert code == 2 and "half_pair.pth" in error and "visual_encoder.blocks.0.attn.v_bias is missing" in error
    assert len(error.strip().splitlines()) == 1


def test_a_vicuna_checkpoint_onto_a_flan_t5_base_is_refused(vicuna, tmp_path):
    folder, trained, _, _ = vicuna
    torch.save(_lavis_checkpoint(saved_by_save_checkpoint(lavis_state_dict(trained, VICUNA), VICUNA)), tmp_path / "v.pth")
    t5_base, t5_processor = tiny_emovit("t5", instructblip=True)
    t5_base.save_pretrained(tmp_path / "t5_base")
    t5_processor.save_pretrained(tmp_path / "t5_base")
    with pytest.raises(EmoVITInputError, match="blip2_vicuna_instruct checkpoint .* InstructBLIP-Vicuna base"):
        convert_lavis_checkpoint(tmp_path / "v.pth", tmp_path / "t5_base", tmp_path / "out")


def test_pickled_module_is_refused_unless_trusted(tmp_path):
    module = torch.nn.Linear(2, 2)
    torch.save(module, tmp_path / "whole_module.pth")

    with pytest.raises(EmoVITInputError, match="--trust-pickle"):
        load_lavis_state_dict(tmp_path / "whole_module.pth")
    assert set(load_lavis_state_dict(tmp_path / "whole_module.pth", trust_pickle=True)) == {"weight", "bias"}


def test_cli_refuses_unsafe_pickle_in_one_sentence_with_exit_2(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole_module.pth")
    code = main(["convert", "--lavis", str(tmp_path / "whole_module.pth"), "--base", str(tmp_path),
                 "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2
    assert "whole_module.pth" in error and "--trust-pickle" in error and "Traceback" not in error


def test_keys_from_another_architecture_are_refused(tmp_path, vicuna):
    folder, _, _, _ = vicuna
    torch.save({"model": {"text_encoder.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(EmoVITInputError, match="not LAVIS blip2_vicuna_instruct/blip2_t5_instruct weights"):
        convert_lavis_checkpoint(tmp_path / "other.pth", folder / "base", tmp_path / "out")


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
@pytest.mark.parametrize("trust_pickle", [False, True])
def test_a_checkpoint_that_is_not_a_readable_torch_file_is_named(damage, trust_pickle, tmp_path):
    torch.save({"query_tokens": torch.zeros(1, 4, 32)}, tmp_path / "good.pth")
    whole = (tmp_path / "good.pth").read_bytes()
    path = tmp_path / f"{damage}.pth"
    path.write_bytes({"truncated": whole[: len(whole) // 2], "empty": b"", "text": b"hello, not a checkpoint"}[damage])
    with pytest.raises(EmoVITInputError, match=rf"^{path}: not a readable PyTorch checkpoint \(empty, truncated or "):
        load_lavis_state_dict(path, trust_pickle=trust_pickle)


def test_a_base_folder_that_does_not_exist_is_named_and_nothing_is_written(tmp_path, capsys):
    torch.save({"model": {"query_tokens": torch.zeros(1, 4, 32)}}, tmp_path / "emovit.pth")  # as LAVIS names it
    missing = tmp_path / "no-such-base"
    assert main(["convert", "--lavis", str(tmp_path / "emovit.pth"), "--base", str(missing),
                 "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    last = error.strip().splitlines()[-1]
    assert last.startswith(f"emovit convert: --base {missing}: neither an existing local folder")
    assert not (tmp_path / "out").exists()


# The release's model.pth is `torch.save(self.model, ...)` of a LAVIS `Blip2VicunaInstruct`: unpickling imports
# `lavis.models.blip2_models.blip2_vicuna_instruct` and, through it, `lavis.models.blip2_models.Qformer`, whose
# first lines import names transformers 5 removed. The stand-in modules below keep LAVIS's module paths and class
# names (all a pickle records); LAVIS_UNDER_TRANSFORMERS_5 replaces Qformer.py's body by LAVIS's own import line.
LAVIS_PACKAGES = ("lavis", "lavis/models", "lavis/models/blip2_models")
QFORMER_STAND_IN = "import torch\n\n\nclass BertLMHeadModel(torch.nn.Module):\n    pass\n"
QFORMER_UNDER_TRANSFORMERS_5 = (  # lavis/models/blip2_models/Qformer.py, its transformers import
    "from transformers.modeling_utils import (\n    PreTrainedModel,\n    apply_chunking_to_forward,\n"
    "    find_pruneable_heads_and_indices,\n    prune_linear_layer,\n)\n"
)
BLIP2_VICUNA_INSTRUCT = '''
import torch
from lavis.models.blip2_models.Qformer import BertLMHeadModel


class Blip2VicunaInstruct(torch.nn.Module):
    """Holds a LAVIS state dict under its own key names; the Q-Former is a `BertLMHeadModel`, as in LAVIS."""

    def __init__(self, state_dict):
        super().__init__()
        for key, tensor in state_dict.items():
            *path, name = key.split(".")
            module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, BertLMHeadModel() if module is self and part == "Qformer" else torch.nn.Module())
                module = module._modules[part]
            if tensor.is_floating_point() and not name.endswith("inv_freq"):
                module.register_parameter(name, torch.nn.Parameter(tensor, requires_grad=False))
            else:
                module.register_buffer(name, tensor)
'''
# What the release ran after each epoch (old tree `runner_base.py`): `torch.save(self.model, 'model.pth')`.
PICKLE_THE_MODULE = ("import sys, torch; from lavis.models.blip2_models.blip2_vicuna_instruct import Blip2VicunaInstruct; "
                     "torch.save(Blip2VicunaInstruct(torch.load(sys.argv[1])), sys.argv[2])")


def _lavis_tree(root, qformer_source: str):
    for package in LAVIS_PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "lavis/models/blip2_models/Qformer.py").write_text(qformer_source)
    (root / "lavis/models/blip2_models/blip2_vicuna_instruct.py").write_text(BLIP2_VICUNA_INSTRUCT)
    return root


def _python_with(path_entry):
    """The environment of a subprocess whose Python (and `python` on PATH) imports from `path_entry`."""
    import os
    import sys

    return {**os.environ, "PYTHONPATH": str(path_entry),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def pickled_release_module(vicuna, tmp_path_factory):
    """`model.pth` as the release wrote it (a pickled LAVIS module), written where a LAVIS package imports."""
    import subprocess
    import sys

    folder, trained, _, _ = vicuna
    work = tmp_path_factory.mktemp("release_pickle")
    lavis = _lavis_tree(work / "lavis_env", QFORMER_STAND_IN)
    torch.save(lavis_state_dict(trained, VICUNA), work / "state_dict.pth")
    subprocess.run([sys.executable, "-c", PICKLE_THE_MODULE, "state_dict.pth", "model.pth"],
                   cwd=work, env=_python_with(lavis), check=True, timeout=120)
    return work, lavis


@pytest.fixture
def forget_lavis():
    """Drops the modules of an imported LAVIS tree after the test."""
    import sys

    yield
    for name in [name for name in sys.modules if name == "lavis" or name.startswith("lavis.")]:
        del sys.modules[name]


def _convert_refused(work, base, capsys):
    code = main(["convert", "--lavis", str(work / "model.pth"), "--base", str(base), "--out", str(work / "out"),
                 "--trust-pickle"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and "Traceback" not in error
    assert not (work / "out").exists()
    return error


def test_a_pickled_lavis_module_without_lavis_says_how_to_resave_its_state_dict(pickled_release_module, vicuna, capsys):
    from modeling_emovit.convert_lavis import RESAVE_SNIPPET

    work, _ = pickled_release_module
    error = _convert_refused(work, vicuna[0] / "base", capsys)
    assert "ModuleNotFoundError: No module named 'lavis'" in error
    assert RESAVE_SNIPPET.format(path=work / "model.pth") in error and "docs/fidelity.md" in error


def test_a_pickled_lavis_module_under_transformers_5_names_the_removed_import(
        pickled_release_module, vicuna, tmp_path, monkeypatch, forget_lavis, capsys):
    work, _ = pickled_release_module
    monkeypatch.syspath_prepend(str(_lavis_tree(tmp_path / "lavis_env", QFORMER_UNDER_TRANSFORMERS_5)))
    error = _convert_refused(work, vicuna[0] / "base", capsys)
    assert "ImportError: cannot import name 'apply_chunking_to_forward'" in error and "re-save its state dict" in error


def test_the_documented_resave_snippet_writes_a_state_dict_that_converts_without_trust(pickled_release_module, vicuna):
    import subprocess

    from modeling_emovit.convert_lavis import RESAVE_SNIPPET

    folder, trained, _, processor = vicuna
    work, lavis = pickled_release_module
    snippet = RESAVE_SNIPPET.format(path="model.pth")
    assert snippet in (Path(__file__).resolve().parents[1] / "docs" / "fidelity.md").read_text()
    subprocess.run(snippet, shell=True, cwd=work, env=_python_with(lavis), check=True, timeout=120)

    summary = convert_lavis_checkpoint(work / "model_state_dict.pth", folder / "base", work / "converted")

    converted = EmoVITForConditionalGeneration.from_pretrained(work / "converted").eval()
    assert torch.equal(_logits(converted, processor), _logits(trained, processor))
    assert set(summary["trained_modules"].values()) == {"checkpoint"}
