"""`emovit serve`: an OpenAI-compatible server for EmoVIT folders (and the chat-template VLMs transformers serves by
itself: LLaVA, Idefics3, Qwen2-VL, ...), through transformers' `Serve`, plus per-label emotion probabilities at
`POST /v1/emotions`.

transformers 5.24's server picks multimodal models from the model-type table `MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES`
(and checks each request's model class name against it); a type missing there is looked up as an attribute of the
`transformers` module, which a remote-code model is not. `AutoModelForMultimodalLM.register` alone does not add the
type to that table, so `register_with_transformers_serve` adds it; `tests/test_library_pins.py` checks that this
private table is still what the server reads. A request without an image makes the processor raise
`EmoVITInputError`; the server answers it with HTTP 400 and the error's sentence (OpenAI's error shape, so clients
see a `BadRequestError` and do not retry), not with a 500.

Chat completions ignore `logprobs` (transformers serve drops the field), so probabilities have their own route,
answered by the image-emotion-classification pipeline (`modeling_emovit.pipeline_emovit`, the scorer rank
evaluation uses) on the model the server already loaded, with the calibration stored in its config:

    POST /v1/emotions {"image": "data:image/png;base64,..." or "https://...", or a list of them,
                       "candidate_labels": ["joy", ...] or "webemo-25" (optional), "top_k": 3 (optional)}
    -> {"model": ..., "emotions": [{"label": "joy", "score": 0.71, "calibrated": true}, ...]}   (a list of such
       lists for a list; the pipeline's output as it is: top_k 5 by default, `calibrated` false where the stored
       calibration was not fitted on these candidates)
"""

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from transformers.cli.serving.utils import BaseHandler

EMOTIONS_ROUTE = "/v1/emotions"
_EMOTION_FIELDS = {"model", "image", "candidate_labels", "top_k"}


def register_with_transformers_serve() -> None:
    """Makes `transformers serve` load "emovit" folders with `EmoVITForConditionalGeneration`."""
    from transformers import AutoModelForMultimodalLM
    from transformers.models.auto import modeling_auto

    from modeling_emovit import EmoVITConfig, EmoVITForConditionalGeneration

    modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES.setdefault("emovit", "EmoVITForConditionalGeneration")
    AutoModelForMultimodalLM.register(EmoVITConfig, EmoVITForConditionalGeneration, exist_ok=True)


class EmotionHandler(BaseHandler):
    """Answers `POST /v1/emotions` (see module docstring) with the emotion pipeline around the served model, in the
    server's inference thread."""

    def __init__(self, model_manager, generation_state):
        super().__init__(model_manager, generation_state)
        self.pipelines = {}

    def _pipeline(self, model_id: str, model, processor):
        from modeling_emovit.pipeline_emovit import ImageEmotionClassificationPipeline

        pipe = self.pipelines.get(model_id)
        if pipe is None or pipe.model is not model:  # built again when the server reloaded the model
            pipe = self.pipelines[model_id] = ImageEmotionClassificationPipeline(model=model, processor=processor)
        return pipe

    async def handle_request(self, body: dict, request_id: str) -> JSONResponse:
        images, options = _emotion_request(body)
        model_id, model, processor = self._resolve_model(body)
        pipe = self._pipeline(model_id, model, processor)
        manager = self.generation_state.get_manager(model_id, use_cb=False)
        try:
            emotions = await manager.async_submit(pipe, images, **options)
        except (ValueError, OSError) as error:  # labels the pipeline refuses, an image that does not decode
            raise HTTPException(status_code=400, detail=str(error)) from error
        return JSONResponse({"model": body["model"], "emotions": emotions})


def _emotion_request(body: dict) -> tuple:
    """(image or images, pipeline options), after refusing unknown fields and images that are not URLs (422)."""
    unexpected = set(body) - _EMOTION_FIELDS
    if unexpected:
        raise HTTPException(status_code=422, detail=f"Unexpected fields in the request: {sorted(unexpected)}")
    images = body.get("image")
    urls = images if isinstance(images, list) else [images]
    if not urls or not all(isinstance(url, str) and url.startswith(("data:", "http://", "https://")) for url in urls):
        raise HTTPException(status_code=422, detail="`image` must be a data: or http(s) URL, or a list of them.")
    return images, {key: body[key] for key in ("candidate_labels", "top_k") if body.get(key) is not None}


async def bad_request(request, error: ValueError):
    """HTTP 400 for `EmoVITInputError` (matched by name: a folder's remote-code copy defines its own class)."""
    if type(error).__name__ != "EmoVITInputError":
        raise error  # any other error stays a server error (500)
    return JSONResponse(status_code=400, content={
        "error": {"message": str(error), "type": "invalid_request_error", "param": "messages", "code": None}})


def serve(model: str, host: str, port: int, device: str, foreground: bool = True):
    """Serves MODEL on host:port: blocks until stopped, or (`foreground=False`) returns the running server, whose
    `kill_server()` stops it."""
    from transformers.cli.serve import Serve

    from modeling_emovit.errors import reading

    class EmoVITServe(Serve):
        """transformers' server with the input-error handler and the emotion route added before it listens."""

        def start_server(self):
            app = self.server.config.app
            app.add_exception_handler(ValueError, bad_request)
            handler = EmotionHandler(self._model_manager, self._generation_state)

            async def emotions(request: Request, body: dict):
                return await handler.handle_request(body, request.state.request_id)

            app.add_api_route(EMOTIONS_ROUTE, emotions, methods=["POST"])
            super().start_server()

    register_with_transformers_serve()
    # non_blocking=True: Serve builds the app, then calls start_server() (above), which serves from a thread.
    with reading(model):  # a folder that does not load is named by the error boundary
        server = EmoVITServe(force_model=model, host=host, port=port, device=device, trust_remote_code=True,
                             non_blocking=True)
    if not foreground:
        return server
    try:
        # transformers 5.24's Serve has no public way to wait for a non-blocking server; its thread is `_thread`
        # (tests/test_serving.py runs a real server through this line).
        server._thread.join()
    except KeyboardInterrupt:
        server.kill_server()
