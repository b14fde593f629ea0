"""This folder, installed as the package `emovit.recipes` (setup.py maps it): the recipe YAMLs, accelerate configs,
`launch.slurm` and chat templates travel with the wheel, and `emovit.training.recipe_files` finds and copies them."""
