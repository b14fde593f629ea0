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

Safe to expose (`emovit.serving_inputs`): of transformers' routes only chat completions, `/v1/models` and `/health`
are kept (not `/load_model`, which loads any model a client names, nor `/reset`, the Responses, completions,
System One and transcription routes); images are decoded from the request by this server before transformers sees
the messages, within one pixel budget for all requests in progress; bodies are capped; a model's own code runs
only with `--trust-remote-code`.

Chat completions ignore `logprobs` (transformers serve drops the field), so probabilities have their own route,
answered by the image-emotion-classification pipeline (`modeling_emovit.pipeline_emovit`, the scorer rank
evaluation uses) on the model the server already loaded, with the calibration stored in its config:

    POST /v1/emotions {"image": "data:image/png;base64,..." (or a list of them; http(s) URLs with --allow-image-urls),
                       "candidate_labels": ["joy", ...] (2-256) or "webemo-25" (optional), "top_k": 3 (optional)}
    -> {"model": ..., "emotions": [{"label": "joy", "score": 0.71, "calibrated": true}, ...]}   (a list of such
       lists for a list; the pipeline's output as it is: top_k 5 by default, `calibrated` false where the stored
       calibration was not fitted on these candidates)
"""

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from transformers.cli.serving.utils import BaseHandler

from modeling_emovit.errors import EmoVITInputError

from .serving_inputs import (PixelBudget, ReleaseRequestImages, RequestBodyLimit, RequestImages, RequestLimits,
                             check_generation_fields, decode_message_images, install_error_replies, is_json_integer)

EMOTIONS_ROUTE = "/v1/emotions"
CHAT_ROUTE = "/v1/chat/completions"
KEPT_ROUTES = ("/v1/models", "/health")  # of transformers' own; the chat route is replaced, every other one dropped
_EMOTION_FIELDS = {"model", "image", "candidate_labels", "top_k"}
MAX_CANDIDATE_LABELS = 256
MAX_LABEL_CHARACTERS = 100


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

    async def handle_request(self, body: dict, request_id: str, decoder: RequestImages) -> JSONResponse:
        options = emotion_options(body)
        images = await _emotion_images(body.get("image"), decoder)
        model_id, model, processor = self._resolve_model(body)
        pipe = self._pipeline(model_id, model, processor)
        manager = self.generation_state.get_manager(model_id, use_cb=False)
        try:
            emotions = await manager.async_submit(pipe, images, **options)
        except (ValueError, OSError) as error:  # labels the pipeline refuses, an image the processor refuses
            raise HTTPException(status_code=400, detail=str(error)) from error
        return JSONResponse({"model": body["model"], "emotions": emotions})


def emotion_options(body: dict) -> dict:
    """The pipeline options of a `/v1/emotions` body, after refusing unknown fields (422) and out-of-range values
    (400, one sentence naming the field)."""
    unexpected = set(body) - _EMOTION_FIELDS
    if unexpected:
        raise HTTPException(status_code=422, detail=f"Unexpected fields in the request: {sorted(unexpected)[:10]}")
    labels, top_k = body.get("candidate_labels"), body.get("top_k")
    if labels is not None and not isinstance(labels, str):
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise EmoVITInputError("candidate_labels must be a list of label strings or a label-space name.")
        if len(labels) > MAX_CANDIDATE_LABELS:
            raise EmoVITInputError(f"candidate_labels has {len(labels)} labels; at most {MAX_CANDIDATE_LABELS} are "
                                   f"scored per request.")
        if any(len(label) > MAX_LABEL_CHARACTERS for label in labels):
            raise EmoVITInputError(f"candidate_labels: a label may have at most {MAX_LABEL_CHARACTERS} characters.")
    if top_k is not None and not (is_json_integer(top_k) and top_k >= 1):
        raise EmoVITInputError(f"top_k must be an integer of at least 1, not {str(top_k)[:20]}.")
    return {key: value for key, value in (("candidate_labels", labels), ("top_k", top_k)) if value is not None}


async def _emotion_images(images, decoder: RequestImages):
    """The decoded image, or list of images, of a `/v1/emotions` body."""
    if isinstance(images, list) and images:
        return [await decoder.decode(image, f"image[{k}]") for k, image in enumerate(images)]
    if isinstance(images, list) or images is None:
        raise EmoVITInputError("image must be a data URL (data:image/png;base64,...) or a non-empty list of them.")
    return await decoder.decode(images, "image")


def secure_routes(serve, limits: RequestLimits) -> None:
    """The app `serve` (a transformers `Serve`) built, cut down to the routes named in the module docstring, with
    the emotion route, the body cap, the generation-field checks and image decoding (within one pixel budget for the
    whole server) before chat completions and OpenAI-shaped errors."""
    app = serve.server.config.app
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) in KEPT_ROUTES]
    chat, emotion = serve._chat_handler, EmotionHandler(serve._model_manager, serve._generation_state)
    budget = PixelBudget(limits.max_pixels_in_flight)

    def request_images(request: Request) -> RequestImages:
        request.state.images = RequestImages(limits, budget)  # released by ReleaseRequestImages
        return request.state.images

    async def chat_completions(request: Request, body: dict):
        check_generation_fields(body, limits)
        await decode_message_images(body, request_images(request))
        return await chat.handle_request(body, request.state.request_id)

    async def emotions(request: Request, body: dict):
        return await emotion.handle_request(body, request.state.request_id, request_images(request))

    app.add_api_route(CHAT_ROUTE, chat_completions, methods=["POST"])
    app.add_api_route(EMOTIONS_ROUTE, emotions, methods=["POST"])
    install_error_replies(app, [CHAT_ROUTE, EMOTIONS_ROUTE, *KEPT_ROUTES])
    app.add_middleware(ReleaseRequestImages)
    app.add_middleware(RequestBodyLimit, max_bytes=limits.max_request_bytes)


def serve(model: str, host: str, port: int, device: str, limits: RequestLimits = RequestLimits(),
          trust_remote_code: bool = False, foreground: bool = True):
    """Serves MODEL on host:port: blocks until stopped (Ctrl-C, SIGTERM), or (`foreground=False`) returns the running
    server, whose `kill_server()` stops it. The model's own code (`auto_map`) runs only with `trust_remote_code`."""
    from transformers.cli.serve import Serve

    from modeling_emovit.errors import reading
    from modeling_emovit.loading import consent_to_remote_code

    class EmoVITServe(Serve):
        """transformers' server with the routes and guards of `secure_routes`, in this thread when in the
        foreground: uvicorn then handles Ctrl-C itself (a graceful shutdown), which it cannot in a thread. (Waiting
        on transformers' server thread instead lost the Ctrl-C once a request had been served: on CPython 3.11 a
        KeyboardInterrupt inside `Thread.join` can leave the thread marked as stopped, so `kill_server` returned
        without stopping uvicorn.)"""

        def start_server(self):
            secure_routes(self, limits)
            if foreground:
                self.server.run()
            else:
                super().start_server()

    limits.check()
    register_with_transformers_serve()
    # non_blocking=True: Serve builds the app, then calls start_server() (above), which serves.
    try:
        with reading(model), consent_to_remote_code(model):  # a folder that does not load is named by the boundary
            server = EmoVITServe(force_model=model, host=host, port=port, device=device,
                                 trust_remote_code=trust_remote_code, non_blocking=True)
    except KeyboardInterrupt:  # Ctrl-C while loading, or the one uvicorn raises again once it has shut down
        return None
    return None if foreground else server
