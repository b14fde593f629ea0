"""`emovit add-pipeline FOLDER`: the image-emotion-classification pipeline beside any chat-template model folder.

A folder written by stock `trl sft` (LLaVA, SmolVLM, Qwen2-VL, ...) has no pipeline code and no `custom_pipelines`
entry, so `pipeline("image-emotion-classification", model=FOLDER, trust_remote_code=True)` raises `KeyError: Unknown
task`; this writes both with `modeling_emovit.pipeline_emovit.save_emotion_pipeline`, as `recipes/sft.py` does after
training. `emovit eval` points here when it meets such a folder.
"""

import json
from pathlib import Path

ADD_PIPELINE_HINT = "`emovit add-pipeline {folder}` adds it"


def add_commands(subparsers) -> None:
    add = subparsers.add_parser(
        "add-pipeline", help="Add the image-emotion-classification pipeline to a chat-template model folder.",
        description="Writes the pipeline's code beside the weights and its `custom_pipelines` entry into config.json "
                    "(every other key kept), so that pipeline(\"image-emotion-classification\", model=FOLDER, "
                    "trust_remote_code=True) works, also where emovit is not installed. For folders trained by stock "
                    "`trl sft`; recipes/sft.py and EmoVIT folders already carry it.",
    )
    add.add_argument("folder", help="Model folder with config.json and a processor that has a chat template.")
    add.set_defaults(handler=_add_pipeline)


def lacks_emotion_pipeline(folder) -> bool:
    """Whether a local model folder (with config.json) has no image-emotion-classification pipeline entry."""
    from modeling_emovit.pipeline_emovit import TASK

    config = Path(folder) / "config.json"
    return config.is_file() and TASK not in json.loads(config.read_text()).get("custom_pipelines", {})


def _add_pipeline(args) -> int:
    from transformers import AutoProcessor

    import modeling_emovit
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.errors import EmoVITInputError, reading
    from modeling_emovit.loading import check_processor_folder
    from modeling_emovit.pipeline_emovit import TASK, save_emotion_pipeline

    folder = Path(args.folder)
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise EmoVITInputError(f"{folder} is a LoRA adapter, without the config.json that names the pipeline; add it "
                               f"to the merged model's folder (`--merge_adapter true` in the recipe writes one).")
    if not (folder / "config.json").is_file():
        raise EmoVITInputError(f"{folder} has no config.json: give a model folder (save_pretrained's output).")
    check_processor_folder(folder, "the emotion pipeline")
    modeling_emovit.register()  # an EmoVIT folder's processor loads with the package's own class
    with reading(folder):
        processor = AutoProcessor.from_pretrained(folder)
    backbone_adapter(None, processor).require_emotion_questions(str(folder))  # the processor alone decides
    copied = save_emotion_pipeline(folder)
    print(f"Added the {TASK} pipeline to {folder} ({', '.join(sorted(path.name for path in copied))}, and "
          f"custom_pipelines in config.json): pipeline({TASK!r}, model={str(folder)!r}, trust_remote_code=True).")
    return 0
