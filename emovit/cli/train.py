"""`emovit train ...` (parsers only; handlers import lazily)."""


from . import add_trust_remote_code_argument


def add_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="Training helpers (the training itself: recipes/sft.py).")
    commands = train.add_subparsers(dest="train_command", required=True, metavar="TRAIN_COMMAND")
    cache = commands.add_parser(
        "cache-features",
        help="Run the frozen vision encoder once over a dataset split and store its outputs beside the dataset.",
        description="Stores image_embeds for `vision_feature_cache:` in a recipe; training then skips the ViT.",
    )
    cache.add_argument("--model", required=True, help="Model folder, Hub id or tiny-random name (as in the recipe).")
    cache.add_argument("--dataset", required=True, help="Dataset folder or Hub id (as `dataset_name` in the recipe).")
    cache.add_argument("--config", default=None, help="Dataset config name (as `dataset_config`).")
    cache.add_argument("--split", default="train")
    cache.add_argument("--out", default=None, help="Output folder; default <dataset>/vision_features/<config>-<split>.")
    cache.add_argument("--batch-size", type=int, default=16)
    cache.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="Storage dtype.")
    cache.add_argument("--device", default="cpu", help="torch device for the encoder, e.g. cuda.")
    cache.add_argument("--seed", type=int, default=42, help="Seed of a tiny-random model (the recipe's `seed`).")
    add_trust_remote_code_argument(cache)
    cache.set_defaults(handler=_cache_features)


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
