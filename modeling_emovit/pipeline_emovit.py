"""The image-emotion-classification pipeline: images in, emotions with probabilities out.

    from transformers import pipeline
    classify = pipeline("image-emotion-classification", model=folder_or_repo, trust_remote_code=True)
    classify("photo.jpg")  # the model's 5 likeliest labels: [{"label": "awe", "score": 0.81, "calibrated": True}, ...]
    classify(["a.jpg", "b.jpg"], "webemo-25", top_k=3, batch_size=8)  # candidate labels, zero-shot style

A cross of transformers' two image-classification pipelines: like `image-classification` it defaults to the
model's own labels (`config.emotion_labels`, which training writes from its data; Mikels' eight for a config
without them) and to `top_k=5`, capped at the number of candidates; like `zero-shot-image-classification` it takes
`candidate_labels` (a label list or a label-space name such as "webemo-25"; by keyword or as the second positional
argument) and `hypothesis_template`, and each image gets a list of dicts sorted by score. A candidate label is
scored by the likelihood of its answer, `hypothesis_template` filled with the label (default EmoVIT's answer
"Predict emotion: {}"), after the instruction (`prompt`; default EmoVIT's, listing the candidates); the scores are
the softmax of those log-likelihoods over every candidate (they sum to 1 over all candidates, not over the top_k
returned), calibrated where the calibration in the model config was fitted (`calibration_emovit`).

Each dict is `{"label", "score", "calibrated"}`: the two keys transformers' pipelines return, plus whether `score`
went through the stored calibration. It does only when the candidates are exactly the labels it was fitted on, in
that order (`config.emotion_calibration["labels"]`), and the instruction and answers are EmoVIT's own (no `prompt`
or `hypothesis_template` of the caller's); otherwise `score` is the plain softmax and `calibrated` is False.

Where it departs from the stock pipelines, and why:
- images: a PIL image, a path, encoded bytes, an http(s) or `data:` URL (`timeout` bounds the wait, as in
  transformers' `load_image`), or one numpy array / torch tensor `(H, W[, C])` or `(C, H, W)`
  (`image_utils.open_image_input`); a list of any of these for several images;
- with `candidate_labels` given, zero-shot returns every candidate; this pipeline keeps its `top_k=5` (pass
  `top_k=len(candidate_labels)` for all), and a string names a label space rather than one label;
- `function_to_apply` (image-classification's) is refused like any unknown keyword (TypeError): the scores are
  always a softmax over the candidates, since log-likelihoods of answers have no sigmoid reading;
- `top_k` must be a positive integer (stock takes any int); `strategy` picks the scorer's way of batching
  candidates ("packed"/"expanded", same scores).

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
import numbers
from pathlib import Path

from transformers import Pipeline

from .backbone import backbone_adapter
from .calibration_emovit import calibration_applies, emotion_probabilities
from .candidate_scoring import DEFAULT_STRATEGY
from .image_utils import open_image_input
from .labels import LABEL_SPACE_POLARITIES, MIKELS_EMOTIONS, categorical_answer, emovit_instruction, label_space_labels

TASK = "image-emotion-classification"
DEFAULT_TOP_K = 5  # transformers' image-classification default, capped at the number of candidates
DEFAULT_HYPOTHESIS_TEMPLATE = categorical_answer("{}")  # "Predict emotion: {}", the answer EmoVIT is trained to give
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
    """Images in (PIL, path, bytes, URL, array or tensor), `[{"label", "score", "calibrated"}]` per image out, most
    probable first (see module docstring)."""

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter = backbone_adapter(self.model, self.processor)
        self.adapter.require_emotion_questions(getattr(self.model, "name_or_path", None) or type(self.model).__name__)

    def __call__(self, image, candidate_labels=None, **kwargs):
        """`candidate_labels` also positionally, as zero-shot-image-classification takes them; more positional
        arguments are a TypeError (the stock base class would drop them with a warning)."""
        if candidate_labels is not None:
            kwargs["candidate_labels"] = candidate_labels
        return super().__call__(image, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, top_k=None, prompt=None, hypothesis_template=None,
                             timeout=None, strategy=None):
        """candidate_labels: list or label-space name; top_k: keep the k most probable (default 5); prompt: an
        instruction other than EmoVIT's (default: EmoVIT's, listing the candidates); hypothesis_template: each
        candidate's answer, "{}" standing for the label; timeout: seconds to wait for an image URL; strategy: the
        scorer's ("packed"/"expanded"). Any other keyword is a TypeError, as in transformers' image-classification."""
        labels = resolve_candidate_labels(candidate_labels) if candidate_labels is not None else None
        preprocess, forward, postprocess = {}, {}, {}
        if labels is not None:
            forward["candidate_labels"] = postprocess["candidate_labels"] = labels
        if prompt is not None or labels is not None:
            preprocess["prompt"] = prompt if prompt is not None else emovit_instruction(labels)
        if timeout is not None:
            preprocess["timeout"] = timeout
        if hypothesis_template is not None:
            forward["hypothesis_template"] = _checked_template(hypothesis_template)
        if strategy is not None:
            forward["strategy"] = strategy
        if top_k is not None:
            postprocess["top_k"] = _checked_top_k(top_k)
        own_prompt = prompt is not None and prompt != emovit_instruction(labels or self._default_labels())
        if own_prompt or hypothesis_template not in (None, DEFAULT_HYPOTHESIS_TEMPLATE):
            postprocess["calibrate"] = False  # the calibration was fitted on EmoVIT's instruction and answers
        return preprocess, forward, postprocess

    def _default_labels(self) -> list[str]:
        """The model config's `emotion_labels` (EmoVIT's, or those training wrote), else Mikels' eight."""
        return list(getattr(self.model.config, "emotion_labels", None) or MIKELS_EMOTIONS)

    def preprocess(self, image, prompt=None, timeout=None):
        """The decoded image (RGB, upright) and the instruction; `_forward` asks the adapter for a batch of them."""
        return {"image": open_image_input(image, timeout=timeout),
                "prompt": prompt or emovit_instruction(self._default_labels())}

    def _forward(self, model_inputs, candidate_labels=None, hypothesis_template=DEFAULT_HYPOTHESIS_TEMPLATE,
                 strategy=DEFAULT_STRATEGY):
        labels = candidate_labels or self._default_labels()
        images, prompt = model_inputs["image"], model_inputs["prompt"]
        # batched, both are lists (one prompt for the whole call)
        images, prompt = (images, prompt[0]) if isinstance(prompt, list) else ([images], prompt)
        answers = [hypothesis_template.format(label) for label in labels]
        return {"log_likelihoods": self.adapter.answer_log_likelihoods(images, prompt, answers, strategy=strategy)}

    def postprocess(self, model_outputs, candidate_labels=None, top_k=DEFAULT_TOP_K, calibrate=True):
        labels = candidate_labels or self._default_labels()
        calibration = getattr(self.model.config, "emotion_calibration", None) if calibrate else None
        calibrated = calibration_applies(labels, calibration)
        probabilities = emotion_probabilities(model_outputs["log_likelihoods"], labels, calibration)[0].tolist()
        ranked = sorted(zip(labels, probabilities), key=lambda pair: -pair[1])
        return [{"label": label, "score": score, "calibrated": calibrated} for label, score in ranked[:top_k]]


def _checked_top_k(top_k) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
    return int(top_k)


def _checked_template(template) -> str:
    if not isinstance(template, str) or "{}" not in template:
        raise ValueError(f"hypothesis_template must be a string with {{}} where the label goes, got {template!r}.")
    return template


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
