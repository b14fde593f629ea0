"""The package layers, read from the source: `modeling_emovit` <- `dataset_builder` <- `evaluation` <- `emovit`.

Each package may import only the ones to its left; the metric modules import none (they stand alone as `evaluate`
modules, pushable as Spaces); the files saved beside a model's weights import only each other (remote code).
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["modeling_emovit", "dataset_builder", "evaluation", "emovit"]
# What `register_for_auto_class` (and `EmoVITForConditionalGeneration.save_pretrained` or `save_emotion_pipeline`, for
# the emotion pipeline) copies beside the weights, with their relative imports.
REMOTE_CODE = ["configuration_emovit.py", "modeling_emovit.py", "processing_emovit.py", "pipeline_emovit.py",
               "backbone.py", "backbone_instructblip.py", "backbone_chat_template.py", "candidate_scoring.py",
               "decoding.py", "calibration_emovit.py", "labels.py", "errors.py", "image_utils.py",
               "processing_qwen2_vl_image_only.py"]


def imported_packages(path: Path) -> set[str]:
    """Top-level names of the absolute imports of a file (relative imports stay inside its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def package_modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "metrics" not in p.relative_to(REPO / package).parts)


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package):
    above = set(LAYERS[LAYERS.index(package) + 1:])
    offending = {str(path.relative_to(REPO)): sorted(imported_packages(path) & above) for path in package_modules(package)}
    assert {module: names for module, names in offending.items() if names} == {}


def test_metric_modules_import_no_emovit_package():
    metrics = sorted((REPO / "evaluation" / "metrics").rglob("*.py"))
    assert metrics
    assert {str(path.relative_to(REPO)): sorted(imported_packages(path) & set(LAYERS)) for path in metrics} == {
        str(path.relative_to(REPO)): [] for path in metrics
    }


def test_remote_code_files_import_only_each_other():
    for name in REMOTE_CODE:
        path = REPO / "modeling_emovit" / name
        assert not imported_packages(path) & set(LAYERS), name
        relative = {node.module for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.level == 1}
        assert all((REPO / "modeling_emovit" / f"{module}.py").is_file() for module in relative), name
