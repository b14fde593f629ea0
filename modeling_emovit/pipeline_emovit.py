"""The image-emotion-classification pipeline: images in, emotions with probabilities out.

    from transformers import pipeline
    classify = pipeline("image-emotion-classification", model=folder_or_repo, trust_remote_code=True)
    classify("photo.jpg")  # [{"label": "awe", "score": 0.81}, {"label": "contentment", "score": 0.09}, ...]
    classify(["a.jpg", "b.jpg"], candidate_labels="webemo-25", top_k=3, batch_size=8)

Like transformers' image-classification pipelines, each image gets `[{"label", "score"}]`, most probable first,
scores summing to 1 over the candidates. A candidate label is scored by the likelihood of EmoVIT's answer
"Predict emotion: <label>" after EmoVIT's instruction listing the candidates (`scoring_emovit`), then turned into
probabilities with the calibration stored in the model config (`calibration_emovit`). `candidate_labels`: a label
list or a label-space name ("emoset", "webemo-25", ...); default: the model's `config.emotion_labels`.

`EmoVITForConditionalGeneration.save_pretrained` saves this file, and its relative imports, beside the weights and
names it in config.json (`custom_pipelines`), so it works where emovit is not installed.
"""

from transformers import Pipeline

from .calibration_emovit import emotion_probabilities
from .labels import LABEL_SPACE_POLARITIES, categorical_answer, emovit_instruction, label_space_labels
from .scoring_emovit import DEFAULT_STRATEGY, candidate_log_likelihoods

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
        return list(self.model.config.emotion_labels)

    def preprocess(self, image, prompt=None):
        """The model's inputs for one image: pixels, and the instruction after `<image>` placeholders."""
        prompt = prompt or emovit_instruction(self._default_labels())
        return self.processor(images=image, text=prompt, return_tensors="pt")

    def _forward(self, model_inputs, candidate_labels=None, strategy=DEFAULT_STRATEGY):
        labels = candidate_labels or self._default_labels()
        model_inputs["pixel_values"] = model_inputs["pixel_values"].to(self.model.dtype)
        answers = self.processor.encode_answers([categorical_answer(label) for label in labels])
        scores = candidate_log_likelihoods(self.model, dict(model_inputs), answers, strategy=strategy)
        return {"log_likelihoods": scores}

    def postprocess(self, model_outputs, candidate_labels=None, top_k=None):
        labels = candidate_labels or self._default_labels()
        calibration = getattr(self.model.config, "emotion_calibration", None)
        probabilities = emotion_probabilities(model_outputs["log_likelihoods"], labels, calibration)[0].tolist()
        ranked = sorted(zip(labels, probabilities), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked[:top_k]]
