"""The image-emotion-classification pipeline: saved with the model, loaded where emovit cannot be imported, image in,
emotions with (calibrated) probabilities out, as transformers' image-classification pipelines return them.

The conventions checked against are those of transformers 5.24's own pipelines (`pipelines/image_classification.py`:
`top_k` 5 by default and capped at the label count, unknown keywords a TypeError, arrays accepted as images;
`pipelines/zero_shot_image_classification.py`: `candidate_labels` as the second positional argument,
`hypothesis_template` filled with each label, `timeout` for image URLs)."""

import json
import math
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from remote_code import WITHOUT_EMOVIT

from modeling_emovit.labels import MIKELS_EMOTIONS, emovit_instruction, label_space_labels
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


def raw_log_likelihoods(model, processor, image, labels, answer="Predict emotion: {}") -> list[float]:
    """Each label's answer log-likelihood after EmoVIT's instruction, through the processor and scorer directly."""
    inputs = processor(images=[image], text=[emovit_instruction(labels)], return_tensors="pt")
    answers = processor.encode_answers([answer.format(label) for label in labels])
    return candidate_log_likelihoods(model, dict(inputs), answers)[0].tolist()


def softmax(values, temperature=1.0) -> list[float]:
    return (torch.tensor(values, dtype=torch.float64) / temperature).softmax(-1).tolist()


@pytest.fixture
def calibrated_on_mikels(saved):
    """The saved model with the issue's calibration: T = 0.08, fitted on the 8 Mikels labels."""
    _, model, processor = saved
    model.config.emotion_calibration = {"temperature": 0.08, "bias": None, "labels": list(MIKELS_EMOTIONS),
                                        "fitted_on": "test"}
    yield ImageEmotionClassificationPipeline(model=model, processor=processor)
    model.config.emotion_calibration = None


def test_one_image_gets_every_label_sorted_by_a_score_that_sums_to_one(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)

    result = classify(RED, top_k=8)

    assert sorted(entry["label"] for entry in result) == sorted(MIKELS_EMOTIONS)  # config.emotion_labels
    scores = [entry["score"] for entry in result]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-9)
    raw = dict(zip(MIKELS_EMOTIONS, raw_log_likelihoods(model, processor, RED, list(MIKELS_EMOTIONS))))
    total = math.log(sum(math.exp(value) for value in raw.values()))
    for entry in result:  # no calibration stored: the softmax of the answers' log-likelihoods
        assert entry["score"] == pytest.approx(math.exp(raw[entry["label"]] - total), rel=1e-5)
        assert entry["calibrated"] is False


def test_without_top_k_the_five_likeliest_come_back_and_top_k_is_capped_at_the_candidates(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)

    every = classify(RED, top_k=8)
    assert classify(RED) == every[:5]  # image-classification's default top_k
    assert len(classify(RED, candidate_labels="emotion6", top_k=50)) == 6  # capped, as stock caps at num_labels
    assert len(classify(RED, candidate_labels=["joy", "fear"])) == 2
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            classify(RED, top_k=bad)


def test_candidate_labels_given_positionally_are_used_as_zero_shot_takes_them(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    labels = ["joy", "fear", "sadness"]

    positional = classify(RED, labels)

    assert positional == classify(RED, candidate_labels=labels) and {e["label"] for e in positional} == set(labels)
    assert classify([RED, BLUE], "emotion6", top_k=6)[1] == classify(BLUE, candidate_labels="emotion6", top_k=6)
    with pytest.raises(TypeError):  # a third positional argument is not dropped with a warning
        classify(RED, labels, 2)


@pytest.mark.parametrize("keyword", ["function_to_apply", "top_n", "candidate_label"])
def test_unknown_keywords_raise_a_type_error_as_image_classification_does(saved, keyword):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    with pytest.raises(TypeError, match=keyword):
        classify(RED, **{keyword: "softmax"})
    with pytest.raises(TypeError, match=keyword):
        ImageEmotionClassificationPipeline(model=model, processor=processor, **{keyword: "softmax"})


def test_a_numpy_array_or_torch_tensor_is_read_as_the_same_image(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    pixels = np.array(RED)  # (H, W, 3) uint8
    expected = classify(RED, top_k=8)

    as_arrays = [pixels, torch.from_numpy(pixels).permute(2, 0, 1), pixels / 255.0, np.asarray(RED.convert("RGBA"))]
    for image in as_arrays:  # channels last / first, uint8 / float in 0-1, RGBA (opaque)
        result = classify(image, top_k=8)
        assert [e["label"] for e in result] == [e["label"] for e in expected]
        assert [e["score"] for e in result] == pytest.approx([e["score"] for e in expected], abs=1e-6)
    batched = classify(as_arrays[:2], batch_size=2, top_k=8)
    assert [[e["label"] for e in result] for result in batched] == [[e["label"] for e in expected]] * 2
    with pytest.raises(ValueError, match=r"shape \(2, 20, 20, 3\) is not one image"):
        classify(np.stack([pixels, pixels]))
    with pytest.raises(ValueError, match="outside the range"):
        classify(pixels * 2.0)  # floats that are neither 0-1 nor whole numbers in 0-255


def test_hypothesis_template_is_each_candidates_answer_and_needs_a_placeholder(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    labels = ["joy", "fear", "sadness"]
    template = "This image makes people feel {}."

    result = {e["label"]: e["score"] for e in classify(RED, labels, hypothesis_template=template)}

    expected = softmax(raw_log_likelihoods(model, processor, RED, labels, answer=template))
    assert [result[label] for label in labels] == pytest.approx(expected, rel=1e-5)
    assert result != {e["label"]: e["score"] for e in classify(RED, labels)}  # not EmoVIT's answer
    with pytest.raises(ValueError, match="hypothesis_template must be a string with {}"):
        classify(RED, labels, hypothesis_template="This image makes people feel")


def test_timeout_bounds_the_wait_for_an_image_url(saved):
    """A loopback socket that accepts connections and never answers: with `timeout` the call fails instead of
    hanging (the thread is joined with a bound, so a missing timeout fails the test rather than stalling it)."""
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    silent = socket.create_server(("127.0.0.1", 0))
    raised = []

    def ask():
        try:
            classify(f"http://127.0.0.1:{silent.getsockname()[1]}/photo.png", timeout=0.5)
        except Exception as error:  # httpx's timeout error, whichever httpx transformers uses
            raised.append(type(error).__name__)

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(60)
    silent.close()
    assert not worker.is_alive() and raised and "Timeout" in raised[0]


def test_a_label_space_name_or_list_top_k_and_batches(saved):
    _, model, processor = saved
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)

    by_name = classify(BLUE, candidate_labels="emotion6", top_k=3)
    by_list = classify(BLUE, candidate_labels=list(label_space_labels("emotion6")), top_k=3)
    alone = [classify(image, candidate_labels="webemo-25", top_k=25) for image in (RED, BLUE)]
    batched = classify([RED, BLUE], candidate_labels="webemo-25", batch_size=2, top_k=25)

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


def test_the_stored_calibration_turns_scores_into_probabilities_for_its_own_labels_only(saved):
    _, model, processor = saved
    labels = list(label_space_labels("emotionroi"))
    model.config.emotion_calibration = {"temperature": 0.5, "bias": {label: 0.1 * i for i, label in enumerate(labels)},
                                        "labels": labels, "fitted_on": "test"}
    try:
        classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
        calibrated = classify(RED, candidate_labels="emotionroi", top_k=6)
        reordered = classify(RED, candidate_labels=labels[::-1], top_k=6)
    finally:
        model.config.emotion_calibration = None
    raw = torch.tensor(raw_log_likelihoods(model, processor, RED, labels), dtype=torch.float64)
    expected = (raw / 0.5 + 0.1 * torch.arange(len(labels))).softmax(-1)
    assert [{e["label"]: e["score"] for e in calibrated}[label] for label in labels] == pytest.approx(
        expected.tolist(), rel=1e-5)
    assert {e["calibrated"] for e in calibrated} == {True}
    # Fitted on one option order (one instruction): another order is another question, answered uncalibrated.
    reversed_raw = raw_log_likelihoods(model, processor, RED, labels[::-1])
    assert [{e["label"]: e["score"] for e in reordered}[label] for label in labels[::-1]] == pytest.approx(
        softmax(reversed_raw), rel=1e-5)
    assert {e["calibrated"] for e in reordered} == {False}


def test_a_calibration_fitted_on_mikels_labels_leaves_other_candidates_raw(saved, calibrated_on_mikels):
    """The issue's case: T = 0.08 fitted on Mikels-8 made ["happy", "sad", "scared"] 0.99999999999 / 6e-12 / 1e-84."""
    _, model, processor = saved
    classify = calibrated_on_mikels
    others = ["happy", "sad", "scared"]

    elsewhere = classify(RED, others)
    at_home = classify(RED, top_k=8)  # the model's labels: what the calibration was fitted on

    raw = dict(zip(others, softmax(raw_log_likelihoods(model, processor, RED, others))))
    assert {e["label"]: e["score"] for e in elsewhere} == pytest.approx(raw, rel=1e-5)
    assert {e["calibrated"] for e in elsewhere} == {False}
    mikels = list(MIKELS_EMOTIONS)
    sharpened = dict(zip(mikels, softmax(raw_log_likelihoods(model, processor, RED, mikels), temperature=0.08)))
    assert {e["label"]: e["score"] for e in at_home} == pytest.approx(sharpened, rel=1e-5)
    assert {e["calibrated"] for e in at_home} == {True}
    # The calibration was fitted on EmoVIT's instruction and answers: a question of the caller's is answered raw.
    assert {e["calibrated"] for e in classify(RED, prompt="Which emotion does this image evoke?")} == {False}
    assert {e["calibrated"] for e in classify(RED, hypothesis_template="Emotion: {}")} == {False}
    assert {e["calibrated"] for e in classify(RED, prompt=emovit_instruction(mikels))} == {True}


REMOTE_PIPELINE = WITHOUT_EMOVIT + """
import json
from transformers import pipeline
classify = pipeline("image-emotion-classification", model=sys.argv[1], trust_remote_code=True)
import numpy as np
from PIL import Image
print(type(classify).__module__)
print(json.dumps(classify(sys.argv[1] + "/red.png", candidate_labels="emotion6", top_k=4)))
print(json.dumps(classify(np.asarray(Image.open(sys.argv[1] + "/red.png")), "emotion6", top_k=4)))
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
    module, answer, from_array = result.stdout.strip().splitlines()[-3:]
    assert module.startswith("transformers_modules.")
    here = ImageEmotionClassificationPipeline(model=model, processor=processor)(
        Image.open(folder / "red.png"), candidate_labels="emotion6", top_k=4)
    for remote in (json.loads(answer), json.loads(from_array)):  # a path, and an array with positional labels
        assert [e["label"] for e in remote] == [e["label"] for e in here]
        assert [e["score"] for e in remote] == pytest.approx([e["score"] for e in here], abs=1e-6)
        assert [e["calibrated"] for e in remote] == [False] * 4
