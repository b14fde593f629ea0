"""The image-emotion-classification pipeline: images in, emotions with probabilities out.

    from transformers import pipeline
    classify = pipeline("image-emotion-classification", model=folder_or_repo, trust_remote_code=True)
    classify("photo.jpg")  # [{"label": "awe", "score": 0.81}, {"label": "contentment", "score": 0.09}, ...]
    classify(["a.jpg", "b.jpg"], candidate_labels="webemo-25", top_k=3, batch_size=8)

Like transformers' image-classification pipelines, each image gets `[{"label", "score"}]`, most probable first,
scores summing to 1 over the candidates. A candidate label is scored by the likelihood of EmoVIT's answer
"Predict emotion: <label>" after EmoVIT's instruction listing the candidates, then turned into probabilities with
the calibration stored in the model config (`calibration_emovit`). `candidate_labels`: a label list or a label-space
name ("emoset", "webemo-25", ...); default: the model's `config.emotion_labels`.

The model's backbone adapter (`backbone.backbone_adapter`) puts the question: EmoVIT the bare instruction, a model
whose processor has a chat template (LLaVA, Idefics3/SmolVLM, Qwen2-VL, ...) a user turn, as the chat recipes train
it. `preprocess` only decodes the image; `_forward` hands a batch of images to the adapter, which groups those whose
prompts tokenize alike (Qwen2-VL gives images of different sizes different numbers of tokens).

`EmoVITForConditionalGeneration.save_pretrained` saves this file, and its relative imports, beside the weights and
names it in config.json (`custom_pipelines`); `save_emotion_pipeline` does the same for a folder holding one of
transformers' own models (what `recipes/sft.py` calls after training one). Either way it works where emovit is not
installed.
"""

import json
from pathlib import Path

from transformers import Pipeline

from .backbone import backbone_adapter
from .calibration_emovit import emotion_probabilities
from .candidate_scoring import DEFAULT_STRATEGY
from .image_utils import open_image_input
from .labels import LABEL_SPACE_POLARITIES, MIKELS_EMOTIONS, categorical_answer, emovit_instruction, label_space_labels

TASK = "image-emotion-classification"
# config.json's `custom_pipelines`: what `pipeline(TASK, model=folder, trust_remote_code=True)` loads.
CUSTOM_PIPELINES = {
    TASK: {
        "impl": "pipeline_emovit.ImageEmotionClassificationPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "tf": [],
        "type": "multimodal",
    }
}


def resolve_candidate_labels(candidate_labels) -> list[str]:
    """A label list as given, or the labels of a label space named by a string; refuses empty or repeated labels."""
    if isinstance(candidate_labels, str):
        if candidate_labels not in LABEL_SPACE_POLARITIES:
            raise ValueError(
                f"candidate_labels={candidate_labels!r} is not a label-space name ({', '.join(LABEL_SPACE_POLARITIES)}); "
                f"pass a list of labels for any other set."
            )
        return list(label_space_labels(candidate_labels))
    labels = [str(label) for label in candidate_labels]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"candidate_labels must name at least two distinct labels, got {labels}.")
    return labels


class ImageEmotionClassificationPipeline(Pipeline):
    """Images (PIL, path, URL or base64 string) in, `[{"label", "score"}]` per image out (see module docstring)."""

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter = backbone_adapter(self.model, self.processor)
        self.adapter.require_emotion_questions(getattr(self.model, "name_or_path", None) or type(self.model).__name__)

    def _sanitize_parameters(self, candidate_labels=None, top_k=None, prompt=None, strategy=None, **kwargs):
        """candidate_labels: list or label-space name; top_k: keep the k most probable; prompt: an instruction other
        than EmoVIT's (default: EmoVIT's, listing the candidates); strategy: the scorer's ("packed"/"expanded")."""
        labels = resolve_candidate_labels(candidate_labels) if candidate_labels is not None else None
        preprocess, forward, postprocess = {}, {}, {}
        if labels is not None:
            forward["candidate_labels"] = postprocess["candidate_labels"] = labels
        if prompt is not None:
            preprocess["prompt"] = prompt
        if labels is not None and prompt is None:
            preprocess["prompt"] = emovit_instruction(labels)
        if strategy is not None:
            forward["strategy"] = strategy
        if top_k is not None:
            postprocess["top_k"] = int(top_k)
        return preprocess, forward, postprocess

    def _default_labels(self) -> list[str]:
        """The model config's `emotion_labels` (EmoVIT's), else Mikels' eight (a chat-template model's config)."""
        return list(getattr(self.model.config, "emotion_labels", None) or MIKELS_EMOTIONS)

    def preprocess(self, image, prompt=None):
        """The decoded image (RGB, upright) and the instruction; `_forward` asks the adapter for a batch of them."""
        return {"image": open_image_input(image), "prompt": prompt or emovit_instruction(self._default_labels())}

    def _forward(self, model_inputs, candidate_labels=None, strategy=DEFAULT_STRATEGY):
        labels = candidate_labels or self._default_labels()
        images, prompt = model_inputs["image"], model_inputs["prompt"]
        # batched, both are lists (one prompt for the whole call)
        images, prompt = (images, prompt[0]) if isinstance(prompt, list) else ([images], prompt)
        answers = [categorical_answer(label) for label in labels]
        return {"log_likelihoods": self.adapter.answer_log_likelihoods(images, prompt, answers, strategy=strategy)}

    def postprocess(self, model_outputs, candidate_labels=None, top_k=None):
        labels = candidate_labels or self._default_labels()
        calibration = getattr(self.model.config, "emotion_calibration", None)
        probabilities = emotion_probabilities(model_outputs["log_likelihoods"], labels, calibration)[0].tolist()
        ranked = sorted(zip(labels, probabilities), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked[:top_k]]


def save_emotion_pipeline(folder) -> list[Path]:
    """Beside a saved model of one of transformers' own classes (LLaVA, Idefics3, Qwen2-VL, ...): this file and its
    relative imports, and config.json's `custom_pipelines` entry (every other key left as it was). Returns the files
    copied."""
    from transformers.dynamic_module_utils import custom_object_save

    copied = custom_object_save(ImageEmotionClassificationPipeline, folder)
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    config["custom_pipelines"] = {task: dict(entry) for task, entry in CUSTOM_PIPELINES.items()}
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return copied
