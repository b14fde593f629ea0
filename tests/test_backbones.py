"""Backbone adapters as a specification: the family is decided in `modeling_emovit/backbone.py` alone, each tiny
backbone gets its family's adapter, and rank scores did not move when the five branches on "EmoVIT processor or
chat template" became adapters.

`fixtures/rank_scores_before_adapters.json` holds the scores the code computed before the adapters existed (commit
0e82fc9, `evaluation.predictors.RankPredictor(model, processor, space, strategy=...).answer_log_likelihoods(IMAGES,
emovit_instruction(space.labels))` on each tiny model built with its default seed), recorded once there; the
scores' correctness is specified elsewhere, against one forward per candidate (`test_candidate_scoring.py`) and
against a direct forward over the chat template (`test_chat_vlms.py`).

"Equal" is within a relative 1e-5. The scores are float32 sums of magnitude about 30 to 40, where one float32 step is
3.8e-6, so an absolute 1e-6 asks for bit-identical kernels: the same code gave 1 to 2 steps of difference from the
recording on one CPU and more on CI's. A relative 1e-5 (about 3e-4 here) admits kernel rounding and little else:
changing one character of the prompt moved some score by 3e-3 (LLaVA) to 0.5 (EmoVIT-OPT) on these tiny backbones.
"""

import ast
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from dataset_builder.emotions import get_label_space
from evaluation.predictors import RankPredictor
from modeling_emovit.backbone import backbone_adapter
from modeling_emovit.labels import emovit_instruction
from modeling_emovit.testing import tiny_emovit
from modeling_emovit.testing_vlms import tiny_vlm

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling_emovit", "dataset_builder", "evaluation", "emovit", "recipes", "benchmarks")
FAMILY_MODULES = {"backbone_chat_template", "backbone_instructblip"}
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "rank_scores_before_adapters.json").read_text())
IMAGES = [Image.new("RGB", (40, 40), (200, 30, 30)), Image.new("RGB", (64, 32), (20, 90, 220)),
          Image.new("RGB", (40, 40), (240, 220, 10)), Image.new("RGB", (33, 47), (10, 120, 60))]
BACKBONES = {
    "emovit-llama": lambda: tiny_emovit("llama"), "emovit-opt": lambda: tiny_emovit("opt"),
    "emovit-t5": lambda: tiny_emovit("t5"), **{kind: (lambda kind=kind: tiny_vlm(kind))
                                              for kind in ("llava", "idefics3", "qwen2_vl", "qwen2_5_vl")},
}


def _names_used(path: Path) -> tuple[set[str], set[str]]:
    """(modules a file imports, relative ones by their bare name; attribute and plain names it references)."""
    tree = ast.parse(path.read_text())
    imported, referenced = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[-1])
            referenced |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[-1] for alias in node.names}
        elif isinstance(node, ast.Attribute):
            referenced.add(node.attr)
        elif isinstance(node, ast.Name):
            referenced.add(node.id)
    return imported, referenced


def test_the_family_is_decided_in_backbone_py_and_nowhere_else():
    """No module but backbone.py imports a family's module or asks `uses_chat_template`, and none but the chat
    family's renders a chat template: a new caller cannot branch on the family by itself."""
    offending = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            imported, referenced = _names_used(path)
            name = path.relative_to(REPO).as_posix()
            problems = []
            if name != "modeling_emovit/backbone.py":
                problems += sorted(imported & FAMILY_MODULES)
                problems += ["uses_chat_template"] if "uses_chat_template" in referenced - {"backbone"} else []
            if name != "modeling_emovit/backbone_chat_template.py" and "apply_chat_template" in referenced:
                problems.append("apply_chat_template")
            if problems:
                offending[name] = problems
    assert offending == {}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_rank_scores_are_what_they_were_before_the_adapters(name):
    model, processor = BACKBONES[name]()
    adapter = backbone_adapter(model, processor)
    assert adapter.family == ("instructblip" if name.startswith("emovit") else "chat-template")
    for space_name in ("emoset", "webemo-7"):
        space = get_label_space(space_name)
        for strategy in ("packed", "expanded"):
            scores = RankPredictor(adapter, space, strategy=strategy).answer_log_likelihoods(
                IMAGES, emovit_instruction(space.labels))
            before = torch.tensor(BEFORE[f"{space_name}/{name}/{strategy}"], dtype=torch.float64)
            assert scores.shape == before.shape
            assert torch.allclose(scores.double(), before, rtol=1e-5, atol=0), (space_name, strategy)


def test_a_processor_without_a_chat_template_that_is_not_emovits_is_refused_by_name():
    from modeling_emovit.errors import EmoVITInputError

    model, processor = tiny_vlm("llava")
    processor.chat_template = None
    adapter = backbone_adapter(model, processor)  # asked the bare way, as a captioner would be
    with pytest.raises(EmoVITInputError, match=r"^some/folder: its processor \(LlavaProcessor\) has no chat template"):
        adapter.require_emotion_questions("some/folder")


@pytest.mark.parametrize("name", ["emovit-llama", "llava"])
def test_generation_budget_covers_the_longest_candidate_answer_and_its_end(name):
    model, processor = BACKBONES[name]()
    adapter = backbone_adapter(model, processor)
    answers = ["Predict emotion: awe", "Predict emotion: excitement"]
    lengths = adapter.answer_lengths(answers)
    own = [len(ids) for ids in processor.tokenizer(answers, add_special_tokens=False)["input_ids"]]
    assert lengths == [n + 1 for n in own]  # the answer's tokens, then eos (EmoVIT) or the end of the turn
