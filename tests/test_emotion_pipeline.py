"""The image-emotion-classification pipeline: saved with the model, loaded where emovit cannot be imported, image in,
emotions with (calibrated) probabilities out, as transformers' image-classification pipelines return them."""

import json
import math
import subprocess
import sys

import pytest
import torch
from PIL import Image
from remote_code import WITHOUT_EMOVIT

from modeling_emovit.labels import MIKELS_EMOTIONS, categorical_answer, emovit_instruction, label_space_labels
from modeling_emovit.pipeline_emovit import ImageEmotionClassificationPipeline
from modeling_emovit.candidate_scoring import candidate_log_likelihoods
from modeling_emovit.testing import tiny_emovit

RED, BLUE = Image.new("RGB", (20, 20), (230, 20, 20)), Image.new("RGB", (20, 20), (20, 60, 230))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emovit")
    model, processor = tiny_emovit("llama", seed=3)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    RED.save(folder / "red.png")
    return folder, model, processor


def raw_log_likelihoods(model, processor, image, labels) -> list[float]:
    inputs = processor(images=[image], text=[emovit_instruction(labels)], return_tensors="pt")
    answers = processor.encode_answers([categorical_answer(label) for label in labels])
    return candidate_log_likelihoods(model, dict(inputs), answers)[0].tolist()


def test_one_image_gets_every_label_sorted_by_a_score_that_sums_to_one(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)

    result = classify(RED)

    assert sorted(entry["label"] for entry in result) == sorted(MIKELS_EMOTIONS)  # config.emotion_labels
    scores = [entry["score"] for entry in result]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-9)
    raw = dict(zip(MIKELS_EMOTIONS, raw_log_likelihoods(model, processor, RED, list(MIKELS_EMOTIONS))))
    total = math.log(sum(math.exp(value) for value in raw.values()))
    for entry in result:  # no calibration stored: the softmax of the answers' log-likelihoods
        assert entry["score"] == pytest.approx(math.exp(raw[entry["label"]] - total), rel=1e-5)


def test_a_label_space_name_or_list_top_k_and_batches(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)

    by_name = classify(BLUE, candidate_labels="emotion6", top_k=3)
    by_list = classify(BLUE, candidate_labels=list(label_space_labels("emotion6")), top_k=3)
    alone = [classify(image, candidate_labels="webemo-25") for image in (RED, BLUE)]
    batched = classify([RED, BLUE], candidate_labels="webemo-25", batch_size=2)

    assert len(by_name) == 3 and by_name == by_list
    assert {entry["label"] for entry in by_name} <= set(label_space_labels("emotion6"))
    assert len(batched) == 2 and len(batched[0]) == 25
    for one, many in zip(alone, batched):
        assert [e["label"] for e in one] == [e["label"] for e in many]
        assert [e["score"] for e in one] == pytest.approx([e["score"] for e in many], abs=1e-6)


def test_unknown_label_space_names_and_repeated_labels_are_refused(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    with pytest.raises(ValueError, match="not a label-space name"):
        classify(RED, candidate_labels="happy-sad")
    with pytest.raises(ValueError, match="distinct"):
        classify(RED, candidate_labels=["joy", "joy"])


def test_the_stored_calibration_turns_scores_into_probabilities(saved):
    _, model, processor = saved
    labels = list(label_space_labels("emotionroi"))
    model.config.emotion_calibration = {"temperature": 0.5, "bias": {label: 0.1 * i for i, label in enumerate(labels)},
                                        "labels": labels, "fitted_on": "test"}
    try:
        classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
        calibrated = {e["label"]: e["score"] for e in classify(RED, candidate_labels="emotionroi")}
        temperature_only = {e["label"]: e["score"] for e in classify(RED, candidate_labels=labels[::-1])}
    finally:
        model.config.emotion_calibration = None
    raw = torch.tensor(raw_log_likelihoods(model, processor, RED, labels), dtype=torch.float64)
    expected = (raw / 0.5 + 0.1 * torch.arange(len(labels))).softmax(-1)
    assert [calibrated[label] for label in labels] == pytest.approx(expected.tolist(), rel=1e-5)
    # The biases belong to one option order; another order gets the temperature alone.
    reversed_raw = torch.tensor(raw_log_likelihoods(model, processor, RED, labels[::-1]), dtype=torch.float64)
    assert [temperature_only[label] for label in labels[::-1]] == pytest.approx((reversed_raw / 0.5).softmax(-1).tolist(), rel=1e-5)


REMOTE_PIPELINE = WITHOUT_EMOVIT + """
import json
from transformers import pipeline
classify = pipeline("image-emotion-classification", model=sys.argv[1], trust_remote_code=True)
print(type(classify).__module__)
print(json.dumps(classify(sys.argv[1] + "/red.png", candidate_labels="emotion6", top_k=4)))
"""


def test_the_saved_folder_runs_the_pipeline_where_emovit_cannot_be_imported(saved, tmp_path):
    folder, model, processor = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["image-emotion-classification"]["impl"] == (
        "pipeline_emovit.ImageEmotionClassificationPipeline")
    assert {"pipeline_emovit.py", "candidate_scoring.py", "backbone.py", "backbone_instructblip.py", "calibration_emovit.py", "labels.py"} <= {
        path.name for path in folder.iterdir()}

    result = subprocess.run([sys.executable, "-c", REMOTE_PIPELINE, str(folder)], capture_output=True, text=True,
                            timeout=180, cwd=tmp_path, env={"PATH": "", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})

    assert result.returncode == 0, result.stderr[-3000:]
    module, answer = result.stdout.strip().splitlines()[-2:]
    assert module.startswith("transformers_modules.")
    here = ImageEmotionClassificationPipeline(model=model, processor=processor)(
        Image.open(folder / "red.png"), candidate_labels="emotion6", top_k=4)
    remote = json.loads(answer)
    assert [e["label"] for e in remote] == [e["label"] for e in here]
    assert [e["score"] for e in remote] == pytest.approx([e["score"] for e in here], abs=1e-6)
