"""The package list, the one part of the packaging that setup.cfg cannot say (everything else is there).

`recipes/` stays one folder at the top of the repository, where its README and commands point, and ships inside
the wheel as the data folder `emovit/recipes` (read by `emovit recipes list|copy` and `emovit train sft`): a
`package_dir` entry maps it, and setup.cfg's `find_namespace:` cannot add a mapped package to what it finds.
"""

from setuptools import find_namespace_packages, setup

LAYERS = ("modeling_emovit", "dataset_builder", "evaluation", "emovit")
# find_namespace: the metric script folders have no __init__.py
PACKAGES = find_namespace_packages(include=[pattern for name in LAYERS for pattern in (name, f"{name}.*")])

# accelerate_configs is the one recipes/ subfolder whose name Python could import: listed, so setuptools ships it
# without warning; the others (emovit-tiny, qwen2.5-vl-7b, ...) are plain data folders.
RECIPES = ["emovit.recipes", "emovit.recipes.accelerate_configs"]

setup(packages=[*PACKAGES, *RECIPES], package_dir={"emovit.recipes": "recipes"})
