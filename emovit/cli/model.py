"""`emovit convert`, `emovit serve` and `emovit push`: model folders in and out (parsers only; handlers import lazily)."""

from . import add_push_parser, add_trust_remote_code_argument


def add_commands(subparsers) -> None:
    convert = subparsers.add_parser(
        "convert", help="Convert a LAVIS blip2_vicuna_instruct (the original EmoVIT release) or blip2_t5_instruct "
        "checkpoint to a folder.",
        description="Renames the weights of a LAVIS checkpoint (a LAVIS training checkpoint keeps the trained "
                    "ln_vision, Q-Former, query tokens and projection; the original release pickles the whole model) "
                    "onto an InstructBLIP base in transformers format and writes a folder that loads with "
                    "AutoModelForImageTextToText.from_pretrained(OUT, trust_remote_code=True). The checkpoint is read "
                    "with torch.load(weights_only=True) unless --trust-pickle is given.",
    )
    convert.add_argument("--lavis", required=True, help="LAVIS checkpoint file (.pth).")
    convert.add_argument("--base", required=True, help="InstructBLIP folder or Hub id in transformers format "
                         "(InstructBLIP-Vicuna for blip2_vicuna_instruct, InstructBLIP-Flan-T5 for blip2_t5_instruct).")
    convert.add_argument("--out", required=True, help="Output folder (loads with the Auto classes).")
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="Fully unpickle the checkpoint (runs code inside it): only for files you trust.",
    )
    convert.set_defaults(handler=_convert)

    serve = subparsers.add_parser(
        "serve", help="Serve an EmoVIT folder with OpenAI-compatible chat completions.",
        description="Runs `transformers serve` on one EmoVIT folder: POST /v1/chat/completions with one image and an "
                    "instruction per request (a request without an image is answered with HTTP 400), and POST "
                    "/v1/emotions for probabilities. Images are taken only as base64 data URLs inside the request "
                    "(never paths or, without --allow-image-urls, URLs). Blocks until stopped (Ctrl-C).",
    )
    serve.add_argument("model", help="EmoVIT folder or Hub id.")
    serve.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every interface).")
    serve.add_argument("--port", type=int, default=8000, help="TCP port.")
    serve.add_argument("--device", default="auto", help="'cpu', 'cuda:0', or 'auto'.")
    serve.add_argument("--max-request-mb", type=float, default=20,
                       help="Largest request body (and fetched image) in MB; bigger ones get HTTP 413 unread.")
    serve.add_argument("--allow-image-urls", action="store_true",
                       help="Also fetch images given as http(s) URLs (no redirects, within --image-url-timeout and "
                            "--max-request-mb). Lets clients make this server contact any address it can reach.")
    serve.add_argument("--image-url-timeout", type=float, default=10.0,
                       help="Seconds a fetched image may take, connection and download (with --allow-image-urls).")
    serve.add_argument("--max-new-tokens", type=int, default=1024,
                       help="Most tokens one chat completion may generate; a larger max_tokens or "
                            "max_completion_tokens gets HTTP 400, a request naming neither gets this many.")
    serve.add_argument("--max-megapixels-in-flight", type=float, default=None,
                       help="Megapixels of decoded images the server holds at once over all requests in progress "
                            "(default: four requests at PIL's per-request limit, 358, about 1 GB as RGB); a request "
                            "that would go over gets HTTP 429 with Retry-After, an image over all of it HTTP 400.")
    add_trust_remote_code_argument(serve)
    serve.set_defaults(handler=_serve)

    add_push_parser(subparsers, "push", "a model folder (weights, processor, code, card)",
                    "Folder written by save_pretrained (model and processor).", "user/emovit-vicuna-7b", _push)


def _convert(args) -> int:
    from modeling_emovit.convert_lavis import convert_lavis_checkpoint

    summary = convert_lavis_checkpoint(args.lavis, args.base, args.out, trust_pickle=args.trust_pickle)
    print(f"Wrote {args.out}: {summary['converted']} tensors from the checkpoint, "
          f"{summary['from_base']} from the base.")
    for module, source in summary["trained_modules"].items():
        print(f"  trained module {module}: from the {source}" if source in ("checkpoint", "base") else
              f"  trained module {module}: {source}")
    for reason, count in summary["dropped"].items():
        print(f"  dropped {count} x {reason}")
    for key in summary["vocabulary_rows_from_base"]:
        print(f"  {key}: the checkpoint's vocabulary rows, the base's extra rows")
    return 0


def _serve(args) -> int:
    from emovit.serving import serve
    from emovit.serving_inputs import RequestLimits

    in_flight = {} if args.max_megapixels_in_flight is None else {
        "max_pixels_in_flight": round(args.max_megapixels_in_flight * 1e6)}
    limits = RequestLimits(max_request_bytes=int(args.max_request_mb * 2**20), allow_image_urls=args.allow_image_urls,
                           image_url_timeout=args.image_url_timeout, max_new_tokens=args.max_new_tokens, **in_flight)
    serve(args.model, args.host, args.port, args.device, limits, trust_remote_code=args.trust_remote_code)
    return 0


def _push(args) -> int:
    from emovit.hub import push_model

    print(push_model(args.folder, args.repo_id, private=args.private))
    return 0
