"""`emovit train sft|grpo|cache-features` (parsers only; handlers import lazily)."""


from . import add_trust_remote_code_argument

# (subcommand, what it does, its TRL config): each is the module emovit.training.<subcommand>, its `main` the script
RECIPE_STAGES = (
    ("sft", "Instruction-tune a model", "SFTConfig"),
    ("grpo", "Cold-start SFT, then GRPO with verifiable emotion rewards,", "GRPOConfig"),
)


def add_commands(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="Train a recipe (`emovit train sft --config RECIPE.yaml`) and its helpers.",
        description="`emovit train sft` is the recipe script (the repository's recipes/sft.py); the recipes ship with "
                    "the package: `emovit recipes list` prints their paths, `emovit recipes copy NAME DIR` copies one "
                    "to edit.",
    )
    commands = train.add_subparsers(dest="train_command", required=True, metavar="TRAIN_COMMAND")
    for stage, what, script in RECIPE_STAGES:
        parser = commands.add_parser(
            stage, add_help=False, usage=f"emovit train {stage} --config RECIPE.yaml [--KEY VALUE ...]",
            help=f"{what} from a recipe YAML plus overrides (`emovit train {stage} --help` lists the keys).",
            description=f"The same script as the repository's recipes/{stage}.py: TRL's {script}, ModelConfig and "
                        f"script arguments from --config, each overridable as --KEY VALUE. One process; for several: "
                        f"`accelerate launch --config_file CONFIG.yaml -m emovit train {stage} ...` (CONFIG from "
                        f"`emovit recipes list`).",
        )
        parser.set_defaults(handler=_run_recipe, passes_arguments_on=True)
    cache = commands.add_parser(
        "cache-features",
        help="Run the frozen vision encoder once over a dataset split and store its outputs beside the dataset.",
        description="Stores image_embeds for `vision_feature_cache:` in a recipe; training then skips the ViT.",
    )
    cache.add_argument("--model", required=True, help="Model folder, Hub id or tiny-random name (as in the recipe).")
    cache.add_argument("--dataset", required=True, help="Dataset folder or Hub id (as `dataset_name` in the recipe).")
    cache.add_argument("--config", default=None, help="Dataset config name (as `dataset_config`).")
    cache.add_argument("--split", default="train", help="Dataset split (as `dataset_train_split`).")
    cache.add_argument("--out", default=None, help="Output folder; default <dataset>/vision_features/<config>-<split>.")
    cache.add_argument("--batch-size", type=int, default=16, help="Images per encoder forward pass.")
    cache.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="Storage dtype.")
    cache.add_argument("--device", default="cpu", help="torch device for the encoder, e.g. cuda.")
    cache.add_argument("--seed", type=int, default=42, help="Seed of a tiny-random model (the recipe's `seed`).")
    add_trust_remote_code_argument(cache)
    cache.set_defaults(handler=_cache_features)


def _run_recipe(args) -> int:
    import importlib

    main = importlib.import_module(f"emovit.training.{args.train_command}").main
    return main([*args.passed_on, *(["--debug"] if args.debug else [])])


def _cache_features(args) -> int:
    from pathlib import Path

    from dataset_builder.loading import load_split
    from emovit.training.feature_cache import cache_vision_features, default_cache_dir
    from modeling_emovit.errors import EmoVITInputError
    from modeling_emovit.loading import load_model_and_processor

    if args.out is None and not Path(args.dataset).is_dir():
        raise EmoVITInputError(f"--dataset {args.dataset} is not a local folder: give --out for the cache.")
    out = args.out or default_cache_dir(args.dataset, args.config, args.split)
    dataset = load_split(args.dataset, args.config, args.split, required=("image",))  # checked before the model loads
    model, processor = load_model_and_processor(args.model, seed=args.seed, trust_remote_code=args.trust_remote_code)
    model.vision_model.to(args.device)  # only the encoder runs: the language model stays where it loaded
    written = cache_vision_features(model, processor, dataset, out, args.batch_size, args.dtype)
    print(f"Wrote vision features of {len(dataset)} rows to {written}")
    return 0
