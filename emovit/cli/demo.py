"""`emovit demo`: the whole pipeline on a drawn sample (parser only; the handler imports lazily)."""


def add_commands(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="The whole EmoVIT pipeline on a drawn sample, on CPU, in minutes.",
        description="Draws an EmoSet-layout sample, writes instructions, builds the dataset, pretrains a tiny base, "
                    "instruction-tunes it as EmoVIT, evaluates both in rank and generate modes and prints a summary "
                    "(with --grpo, then trains and evaluates the RL recipe); an interrupted run resumes at its first "
                    "unfinished stage.",
    )
    demo.add_argument("--out", default="demo-output", help="Output folder (an interrupted run resumes there).")
    demo.add_argument("--steps", type=int, default=300, help="EmoVIT instruction-tuning steps.")
    demo.add_argument("--base-steps", type=int, default=200, help="Pretraining steps of the tiny base model.")
    demo.add_argument("--seed", type=int, default=0, help="Seed of the sample, the models and the training.")
    demo.add_argument("--images-per-emotion", type=int, nargs=2, default=(100, 25), metavar=("TRAIN", "TEST"),
                      help="Images per emotion in the train and test splits of the drawn sample.")
    demo.add_argument("--val-images-per-emotion", type=int, default=25,
                      help="Held-out validation images per emotion, used only to calibrate rank probabilities.")
    demo.add_argument("--backend", choices=("rules", "openai"), default=None,
                      help="Instruction generation backend (default: openai when OPENAI_API_KEY or --base-url is set, else "
                           "rules).")
    demo.add_argument("--model", default=None, help="Model for the openai backend.")
    demo.add_argument("--base-url", default=None, help="OpenAI-compatible server for the openai backend.")
    demo.add_argument("--grpo", action="store_true",
                      help="Then the RL stage: recipes/tiny-vlm/grpo.yaml (a cold start on the reasoning format, then "
                           "GRPO) trains a small random chat VLM on the same train split, and both of its models are "
                           "evaluated in the reasoning format; about 4 more minutes on 2 CPU cores.")
    demo.add_argument("--grpo-steps", type=int, nargs=2, default=None, metavar=("COLD_START", "GRPO"),
                      help="Steps of the RL stage's cold start and of GRPO (default: the recipe's, 200 and 200); "
                           "implies --grpo.")
    demo.set_defaults(handler=_demo)


def _demo(args) -> int:
    import os

    from emovit.demo.pipeline import run_demo

    backend = args.backend or ("openai" if os.environ.get("OPENAI_API_KEY") or args.base_url else "rules")
    run_demo(args.out, steps=args.steps, base_steps=args.base_steps, seed=args.seed,
             per_emotion=tuple(args.images_per_emotion), backend=backend,
             model=args.model, base_url=args.base_url, val_per_emotion=args.val_images_per_emotion,
             grpo=args.grpo or args.grpo_steps is not None,
             grpo_steps=tuple(args.grpo_steps) if args.grpo_steps else None)
    return 0
