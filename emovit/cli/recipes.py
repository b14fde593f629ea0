"""`emovit recipes list|copy`: the recipe YAMLs, accelerate configs and launch.slurm installed with the package."""


def add_commands(subparsers) -> None:
    recipes = subparsers.add_parser(
        "recipes", help="List or copy the installed training recipes and launch configs.",
        description="The recipes/ folder of the repository, installed with the package: one sft.yaml (and "
                    "for chat models a grpo.yaml) per model, accelerate/DeepSpeed configs, launch.slurm, sft.py and "
                    "grpo.py. Train with `emovit train sft --config PATH` or `emovit train grpo --config PATH` (PATH as "
                    "listed, or your copy).",
    )
    commands = recipes.add_subparsers(dest="recipes_command", required=True, metavar="RECIPES_COMMAND")
    listing = commands.add_parser(
        "list", help="Print each recipe with its stage, model and installed path.",
        description="Prints each recipe's name, stage (sft or grpo), the model it trains and the path of its "
                    "installed YAML, then the launch files (accelerate configs, launch.slurm, sft.py, grpo.py).",
    )
    listing.set_defaults(handler=_list)
    copy = commands.add_parser(
        "copy", help="Copy a recipe (or `all`) into a folder to edit it.",
        description="Writes NAME's files under DIR with their layout inside recipes/: `emovit recipes copy all "
                    "recipes` gives the repository's recipes/ folder, so the commands of the README and the paths "
                    "inside the YAMLs and launch.slurm (recipes/...) work from the folder holding it. Existing files "
                    "are never overwritten.",
    )
    copy.add_argument("name", help="A recipe (emovit-tiny, llava-1.5-7b, ...), accelerate_configs, launch.slurm, "
                                   "sft.py, grpo.py, README.md, or all.")
    copy.add_argument("dir", help="Destination folder (created if missing).")
    copy.set_defaults(handler=_copy)


def _list(args) -> int:
    from emovit.training.recipe_files import LAUNCH_FILES, recipe_model, recipe_yamls, recipes_folder

    folder = recipes_folder()
    print(f"Recipes in {folder} (train: emovit train sft|grpo --config PATH; edit: emovit recipes copy NAME DIR):")
    models = {recipe: recipe_model(recipe) for recipe in recipe_yamls()}
    names = [recipe.parent.name for recipe in models]
    width, model_width = max(map(len, [*names, *LAUNCH_FILES])), max(map(len, models.values()))
    for recipe, model in models.items():
        print(f"  {recipe.parent.name:<{width}}  {recipe.stem:<4}  {model:<{model_width}}  {folder / recipe}")
    print("Launch files:")
    for name in LAUNCH_FILES:
        print(f"  {name:<{width}}  {folder / name}")
    return 0


def _copy(args) -> int:
    from emovit.training.recipe_files import copy_recipes

    written = copy_recipes(args.name, args.dir)
    print(f"Wrote {len(written)} file(s) under {args.dir}:")
    for path in written:
        print(f"  {path}")
    return 0
