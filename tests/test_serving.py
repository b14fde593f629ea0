"""Specification of `emovit serve`: a real `transformers serve` process on loopback answers chat with an image, and
per-label emotion probabilities at /v1/emotions from the same scorer and calibration as the pipeline."""

import json

import httpx2
import openai
import pytest
from PIL import Image
from serving_helpers import data_url, serving

from modeling_emovit.pipeline_emovit import ImageEmotionClassificationPipeline, save_emotion_pipeline
from modeling_emovit.testing import tiny_emovit
from modeling_emovit.testing_vlms import tiny_vlm


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`emovit serve FOLDER` on a tiny EmoVIT; a calibration is stored in the folder's config, as
    `emovit eval --calibrate-on` leaves it."""
    folder = tmp_path_factory.mktemp("served")
    model, processor = tiny_emovit("llama")
    model.config.emotion_calibration = {"temperature": 0.7, "bias": None, "labels": list(model.config.emotion_labels),
                                        "fitted_on": "test"}
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    with serving(folder) as server:
        yield folder, server.client, model, processor


def test_served_model_answers_an_openai_chat_request_with_an_image(served):
    folder, client, _, _ = served
    reply = client.chat.completions.create(
        model=str(folder),
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(Image.new("RGB", (32, 32), (200, 20, 20)))}},
            {"type": "text", "text": "What emotion does this image evoke?"},
        ]}],
        max_tokens=4,
    )

    assert reply.choices[0].message.content


def test_a_request_without_an_image_is_answered_400_with_a_sentence(served):
    folder, client, _, _ = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=str(folder), messages=[{"role": "user", "content": "How does it feel?"}],
                                       max_tokens=4)
    assert refused.value.status_code == 400
    assert "send one image with the instruction" in refused.value.message


def test_emotions_route_returns_the_pipelines_calibrated_probabilities(served):
    folder, client, model, processor = served
    images = [Image.new("RGB", (32, 32), (200, 20, 20)), Image.new("RGB", (32, 32), (20, 20, 200))]

    # Through the openai client's own HTTP stack (its base URL, headers and errors); the SDK has no typed method.
    reply = client.post("/emotions", cast_to=httpx2.Response, body={
        "image": [data_url(image) for image in images], "candidate_labels": "emotion6", "top_k": 6})
    single = client.post("/emotions", cast_to=httpx2.Response, body={"image": data_url(images[0]), "top_k": 2})

    served_emotions = json.loads(reply.content)["emotions"]
    local = ImageEmotionClassificationPipeline(model=model, processor=processor)  # config carries the calibration
    for image, answer in zip(images, served_emotions):
        expected = local(image, candidate_labels="emotion6", top_k=6)
        assert [e["label"] for e in answer] == [e["label"] for e in expected]
        assert [e["score"] for e in answer] == pytest.approx([e["score"] for e in expected], abs=1e-6)
        assert sum(e["score"] for e in answer) == pytest.approx(1.0)
        assert {e["calibrated"] for e in answer} == {False}  # fitted on the model's Mikels labels, not Emotion6's
    top = json.loads(single.content)["emotions"]
    assert len(top) == 2 and {e["label"] for e in top} <= set(model.config.emotion_labels)
    assert {e["calibrated"] for e in top} == {True}  # the model's own labels: the calibration applies


def test_emotions_route_answers_for_a_chat_template_model_as_its_pipeline_does(tmp_path):
    # A LLaVA folder as `recipes/sft.py` leaves it: transformers' own class, the emotion pipeline saved beside it.
    model, processor = tiny_vlm("llava")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    save_emotion_pipeline(tmp_path)
    image = Image.new("RGB", (32, 32), (200, 20, 20))
    with serving(tmp_path) as server:
        reply = server.client.post("/emotions", cast_to=httpx2.Response, body={"image": data_url(image), "top_k": 3})
    expected = ImageEmotionClassificationPipeline(model=model, processor=processor)(image, top_k=3)
    served_emotions = json.loads(reply.content)["emotions"]
    assert [e["label"] for e in served_emotions] == [e["label"] for e in expected]
    assert [e["score"] for e in served_emotions] == pytest.approx([e["score"] for e in expected], abs=1e-6)


@pytest.mark.parametrize("body, status, message", [
    ({"image": "/etc/passwd"}, 400, "base64 data URLs"),  # never a path on the server's disk
    ({"image": "data:image/png;base64,AAAA", "logprobs": True}, 422, "Unexpected fields"),
    ({"image": "data:image/png;base64,AAAA"}, 400, ""),  # not an image
    ({"image": "RED", "candidate_labels": "no-such-space"}, 400, "not a label-space name"),
])
def test_emotions_route_refuses_bad_requests_by_field(served, body, status, message):
    _, client, _, _ = served
    if body["image"] == "RED":
        body = {**body, "image": data_url(Image.new("RGB", (32, 32), (200, 20, 20)))}
    response = httpx2.post(str(client.base_url) + "emotions", json=body, timeout=60)
    assert response.status_code == status and message in response.text
