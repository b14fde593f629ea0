"""`emovit convert`, `emovit serve` and `emovit demo` (parsers only; handlers import lazily)."""


def add_commands(subparsers) -> None:
    convert = subparsers.add_parser(
        "convert", help="Convert a LAVIS blip2_vicuna_instruct checkpoint (the original EmoVIT release) to a folder."
    )
    convert.add_argument("--lavis", required=True, help="LAVIS checkpoint file (.pth).")
    convert.add_argument("--base", required=True, help="InstructBLIP folder or Hub id in transformers format.")
    convert.add_argument("--out", required=True, help="Output folder (loads with the Auto classes).")
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="Fully unpickle the checkpoint (runs code inside it): only for files you trust.",
    )
    convert.set_defaults(handler=_convert)

    serve = subparsers.add_parser("serve", help="Serve an EmoVIT folder with OpenAI-compatible chat completions.")
    serve.add_argument("model", help="EmoVIT folder or Hub id.")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", default="auto", help="'cpu', 'cuda:0', or 'auto'.")
    serve.set_defaults(handler=_serve)

    demo = subparsers.add_parser("demo", help="The whole EmoVIT pipeline on a drawn sample, on CPU, in minutes.")
    demo.add_argument("--out", default="demo-output", help="Output folder (an interrupted run resumes there).")
    demo.add_argument("--steps", type=int, default=300, help="EmoVIT instruction-tuning steps.")
    demo.add_argument("--base-steps", type=int, default=200, help="Pretraining steps of the tiny base model.")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--images-per-emotion", type=int, nargs=2, default=(100, 25), metavar=("TRAIN", "TEST"),
                      help="Size of the drawn sample (default: 100 train and 25 test images per emotion).")
    demo.add_argument("--backend", choices=("rules", "openai"), default=None,
                      help="Instruction generation backend (default: openai when OPENAI_API_KEY or --base-url is set).")
    demo.add_argument("--model", default=None, help="Model for the openai backend.")
    demo.add_argument("--base-url", default=None, help="OpenAI-compatible server for the openai backend.")
    demo.set_defaults(handler=_demo)


def _convert(args) -> int:
    from modeling_emovit.convert_lavis import convert_lavis_checkpoint

    convert_lavis_checkpoint(args.lavis, args.base, args.out, trust_pickle=args.trust_pickle)
    print(f"Wrote {args.out}")
    return 0


def _serve(args) -> int:
    from emovit.serving import serve

    serve(args.model, args.host, args.port, args.device)
    return 0


def _demo(args) -> int:
    import os

    from emovit.demo.pipeline import run_demo

    backend = args.backend or ("openai" if os.environ.get("OPENAI_API_KEY") or args.base_url else "rules")
    run_demo(args.out, steps=args.steps, base_steps=args.base_steps, seed=args.seed,
             per_emotion=tuple(args.images_per_emotion), backend=backend,
             model=args.model, base_url=args.base_url)
    return 0
