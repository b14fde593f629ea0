"""`emovit demo`: the whole pipeline on a drawn sample (parser only; the handler imports lazily)."""


def add_commands(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="The whole EmoVIT pipeline on a drawn sample, on CPU, in minutes.")
    demo.add_argument("--out", default="demo-output", help="Output folder (an interrupted run resumes there).")
    demo.add_argument("--steps", type=int, default=300, help="EmoVIT instruction-tuning steps.")
    demo.add_argument("--base-steps", type=int, default=200, help="Pretraining steps of the tiny base model.")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--images-per-emotion", type=int, nargs=2, default=(100, 25), metavar=("TRAIN", "TEST"),
                      help="Size of the drawn sample (default: 100 train and 25 test images per emotion).")
    demo.add_argument("--val-images-per-emotion", type=int, default=25,
                      help="Held-out validation images per emotion, used only to calibrate rank probabilities.")
    demo.add_argument("--backend", choices=("rules", "openai"), default=None,
                      help="Instruction generation backend (default: openai when OPENAI_API_KEY or --base-url is set).")
    demo.add_argument("--model", default=None, help="Model for the openai backend.")
    demo.add_argument("--base-url", default=None, help="OpenAI-compatible server for the openai backend.")
    demo.set_defaults(handler=_demo)


def _demo(args) -> int:
    import os

    from emovit.demo.pipeline import run_demo

    backend = args.backend or ("openai" if os.environ.get("OPENAI_API_KEY") or args.base_url else "rules")
    run_demo(args.out, steps=args.steps, base_steps=args.base_steps, seed=args.seed,
             per_emotion=tuple(args.images_per_emotion), backend=backend,
             model=args.model, base_url=args.base_url, val_per_emotion=args.val_images_per_emotion)
    return 0
