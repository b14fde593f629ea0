"""The recipe files as installed: YAMLs, accelerate configs, `launch.slurm`, `sft.py`, `grpo.py` and chat templates.

`recipes/` at the top of the repository is the one copy; the wheel carries it as the package `emovit.recipes`
(setup.py), and an editable install maps the same name onto the source folder, so this module finds the files the
same way in both. `emovit recipes list|copy` and the launch hints in error messages read from here.
"""

import importlib.resources
import shutil
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

# A recipe folder holds one YAML per training stage it has: sft.yaml (`emovit train sft`), grpo.yaml (`emovit train grpo`).
STAGE_FILES = ("sft.yaml", "grpo.yaml")
LAUNCH_FILES = ("accelerate_configs", "launch.slurm", "sft.py", "grpo.py", "README.md")
EVERYTHING = "all"


def recipes_folder() -> Path:
    """The installed recipes folder (site-packages/emovit/recipes, or the source tree's recipes/)."""
    return Path(str(importlib.resources.files("emovit.recipes")))


def recipe_file(relative: str) -> Path:
    """An installed recipe file by its path inside recipes/ (e.g. "accelerate_configs/cpu_ddp.yaml")."""
    return recipes_folder() / relative


def recipe_yamls() -> list[Path]:
    """Every stage YAML of every recipe folder, as paths inside recipes/ ("llava-1.5-7b/sft.yaml", ...), sorted."""
    root = recipes_folder()
    return sorted(path.relative_to(root) for stage in STAGE_FILES for path in root.glob(f"*/{stage}"))


def recipe_names() -> list[str]:
    """The recipe folders (each holds an sft.yaml, a grpo.yaml or both), sorted."""
    return sorted({path.parent.name for path in recipe_yamls()})


def recipe_model(recipe: Path) -> str:
    """The model a recipe YAML (a path inside recipes/) trains: its `model_name_or_path`."""
    import yaml

    return str(yaml.safe_load((recipes_folder() / recipe).read_text()).get("model_name_or_path", "?"))


def _files_of(name: str) -> list[Path]:
    """The shipped files an entry stands for, as paths inside recipes/ (no __init__.py, no caches)."""
    root = recipes_folder()
    if name == EVERYTHING:
        chosen = [path for path in root.rglob("*") if path.is_file()]
    elif name in recipe_names() or name in LAUNCH_FILES:
        entry = root / name
        chosen = [path for path in entry.rglob("*") if path.is_file()] if entry.is_dir() else [entry]
    else:
        raise EmoVITInputError(
            f"No recipe named {name!r}; choose one of {', '.join([*recipe_names(), *LAUNCH_FILES, EVERYTHING])} "
            f"(`emovit recipes list`)."
        )
    shipped = [path.relative_to(root) for path in chosen if path.name != "__init__.py" and path.suffix != ".pyc"]
    return sorted(path for path in shipped if "__pycache__" not in path.parts)


def copy_recipes(name: str, destination) -> list[Path]:
    """Copies a recipe folder, a launch file or `all` into `destination`, keeping the layout inside recipes/ (so
    copied into a folder named `recipes`, the paths the YAMLs and launch.slurm use work from its parent). Refuses,
    before writing anything, to overwrite a file. Returns the files written."""
    destination = Path(destination)
    relative = _files_of(name)
    existing = [destination / path for path in relative if (destination / path).exists()]
    if existing:
        raise EmoVITInputError(f"{existing[0]} already exists; copy into another folder or remove it first.")
    written = []
    for path in relative:
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(recipes_folder() / path, target)
        written.append(target)
    return written
