"""`emovit serve`: an OpenAI-compatible server for EmoVIT folders, through `transformers serve`.

`transformers serve` chooses multimodal models from a static model-type table and otherwise looks the architecture
up as an attribute of the `transformers` module, so a remote-code model type must be added to that table first.
"""

import sys


def register_with_transformers_serve() -> None:
    import modeling_emovit
    from transformers import AutoModelForMultimodalLM
    from transformers.models.auto import modeling_auto

    modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES.setdefault("emovit", "EmoVITForConditionalGeneration")
    AutoModelForMultimodalLM.register(
        modeling_emovit.EmoVITConfig, modeling_emovit.EmoVITForConditionalGeneration, exist_ok=True
    )


def serve(model: str, host: str, port: int, device: str) -> None:
    """Runs `transformers serve MODEL` in this process (blocks until stopped)."""
    from transformers.cli.transformers import main as transformers_cli

    register_with_transformers_serve()
    sys.argv = ["transformers", "serve", model, "--host", host, "--port", str(port), "--device", device]
    transformers_cli()
