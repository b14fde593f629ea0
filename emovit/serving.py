"""`emovit serve`: an OpenAI-compatible server for EmoVIT folders, through transformers' `Serve`.

transformers 5.24's server picks multimodal models from the model-type table `MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES`
(and checks each request's model class name against it); a type missing there is looked up as an attribute of the
`transformers` module, which a remote-code model is not. `AutoModelForMultimodalLM.register` alone does not add the
type to that table, so `register_with_transformers_serve` adds it; `tests/test_library_pins.py` checks that this
private table is still what the server reads. A request without an image makes the processor raise
`EmoVITInputError`; the server answers it with HTTP 400 and the error's sentence (OpenAI's error shape, so clients
see a `BadRequestError` and do not retry), not with a 500.
"""


def register_with_transformers_serve() -> None:
    """Makes `transformers serve` load "emovit" folders with `EmoVITForConditionalGeneration`."""
    from transformers import AutoModelForMultimodalLM
    from transformers.models.auto import modeling_auto

    from modeling_emovit import EmoVITConfig, EmoVITForConditionalGeneration

    modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES.setdefault("emovit", "EmoVITForConditionalGeneration")
    AutoModelForMultimodalLM.register(EmoVITConfig, EmoVITForConditionalGeneration, exist_ok=True)


async def bad_request(request, error: ValueError):
    """HTTP 400 for `EmoVITInputError` (matched by name: a folder's remote-code copy defines its own class)."""
    from starlette.responses import JSONResponse

    if type(error).__name__ != "EmoVITInputError":
        raise error  # any other error stays a server error (500)
    return JSONResponse(status_code=400, content={
        "error": {"message": str(error), "type": "invalid_request_error", "param": "messages", "code": None}})


def serve(model: str, host: str, port: int, device: str) -> None:
    """Serves MODEL on host:port (blocks until stopped)."""
    from transformers.cli.serve import Serve

    from modeling_emovit.errors import reading

    register_with_transformers_serve()
    # Started in its thread so that the input-error handler is added before the first request is served.
    with reading(model):  # a folder that does not load is named by the error boundary
        server = Serve(force_model=model, host=host, port=port, device=device, trust_remote_code=True,
                       non_blocking=True)
    server.server.config.app.add_exception_handler(ValueError, bad_request)
    try:
        # transformers 5.24's Serve has no public way to wait for a non-blocking server; its thread is `_thread`
        # (tests/test_serving.py runs a real server through this line).
        server._thread.join()
    except KeyboardInterrupt:
        server.kill_server()
