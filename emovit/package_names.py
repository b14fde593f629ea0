"""The two generic top-level names this distribution installs, `dataset_builder` and `evaluation`, and the check, run
first by every entry point (`emovit ...`, `emovit.training.sft`), that no package of the user's hides them.

`python -m ...`, `accelerate launch -m ...` and PYTHONPATH put the launch folder before site-packages, so a user's own
`evaluation/__init__.py` there wins over ours and the failure surfaces later as `No module named
'evaluation.model_card'`. Renaming our packages would break every documented import (`from evaluation.metrics import
metric_path`), and taking the name over would break the user's own package in the same process, so the clash is
named instead, in one sentence with both paths, before anything imports either package. The `emovit` console script
does not search the launch folder, so it is not affected.
"""

import importlib.util
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError

SHADOWABLE = ("dataset_builder", "evaluation")


def _found_at(name: str) -> Path | None:
    """The package folder (or module file) Python would import `name` from; imports nothing not imported yet."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:  # not there, or only namespace folders (a regular package wins over them)
        return None
    origin = Path(spec.origin).resolve()
    return origin.parent if origin.name == "__init__.py" else origin


def check_package_names() -> None:
    """Raises `EmoVITInputError` when `dataset_builder` or `evaluation` would be imported from anywhere but this
    distribution (the folder beside `emovit/`, in site-packages or in the source tree of an editable install)."""
    installed = Path(__file__).resolve().parents[1]
    for name in SHADOWABLE:
        ours, found = installed / name, _found_at(name)
        if found is not None and found != ours:
            raise EmoVITInputError(
                f"The package {found} (first on sys.path: the folder you launched from, or PYTHONPATH) hides emovit's "
                f"own `{name}` package at {ours}; rename yours, or launch from another folder."
            )
