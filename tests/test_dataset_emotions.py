"""Label spaces, the free-text normaliser, polarity, and the categorical instruction templates."""

import pytest

from dataset_builder.emotions import LABEL_SPACES, get_label_space, normalize_emotion, polarity_of
from dataset_builder.instructions import (
    CATEGORICAL_PARAPHRASES,
    categorical_answer,
    categorical_instruction,
    choose_paraphrase,
)
from modeling_emovit.errors import EmoVITInputError

MIKELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
EMOVIT_INSTRUCTION = (
    "Please select the emotion closest to the image from the following options:amusement, anger, awe, contentment, "
    "disgust, excitement, fear and sadness (Do not provide answers outside of the candidates options.) Please answer "
    "in the following format:  Predict emotion:"
)


def test_every_dataset_has_its_label_space_with_the_published_classes():
    assert set(LABEL_SPACES) == {"emoset", "fi", "emotionroi", "emotion6", "unbiasedemo", "webemo-2", "webemo-7", "webemo-25"}
    assert LABEL_SPACES["emoset"].labels == MIKELS == LABEL_SPACES["fi"].labels
    assert LABEL_SPACES["emotionroi"].labels == ("anger", "disgust", "fear", "joy", "sadness", "surprise")
    assert LABEL_SPACES["emotion6"].labels == ("anger", "disgust", "fear", "joy", "sadness", "surprise")
    assert LABEL_SPACES["unbiasedemo"].labels == ("anger", "fear", "joy", "love", "sadness", "surprise")
    assert LABEL_SPACES["webemo-2"].labels == ("negative", "positive")
    assert LABEL_SPACES["webemo-7"].labels == ("anger", "confusion", "fear", "joy", "love", "sadness", "surprise")
    assert len(LABEL_SPACES["webemo-25"].labels) == 25
    assert {"cheerfulness", "irritability", "enthrallment", "zest", "neglect"} <= set(LABEL_SPACES["webemo-25"].labels)


def test_every_label_has_a_polarity():
    for space in LABEL_SPACES.values():
        assert set(space.polarity) == set(space.labels)
        assert set(space.polarity.values()) <= {"positive", "negative", "neutral"}
    assert polarity_of("awe", "emoset") == "positive"
    assert polarity_of("fear", "emoset") == "negative"
    assert polarity_of("gratitude", "webemo-25") == "positive"
    assert polarity_of("confusion", "webemo-7") == "negative"


def test_unknown_space_or_label_is_one_clear_error():
    with pytest.raises(EmoVITInputError, match="emoset"):
        get_label_space("mikels")
    with pytest.raises(EmoVITInputError, match="amusement"):
        polarity_of("joy", "emoset")


@pytest.mark.parametrize(
    "text, space, label",
    [
        ("Amusement", "emoset", "amusement"),
        ("amused", "emoset", "amusement"),
        ("  SCARED!! ", "emoset", "fear"),
        ("in awe", "emoset", "awe"),
        ("Predict emotion: Amusement.", "emoset", "amusement"),
        ("predict emotion:contentment", "emoset", "contentment"),
        ("fears", "emoset", "fear"),
        ("the image evokes sadness", "emoset", "sadness"),
        ("amazed", "emoset", "awe"),
        ("amazed", "emotionroi", "surprise"),
        ("happy", "unbiasedemo", "joy"),
        ("cheerfullness", "webemo-25", "cheerfulness"),
        ("Irritabilty", "webemo-25", "irritability"),
    ],
)
def test_normalizer_maps_free_text_onto_a_label(text, space, label):
    assert normalize_emotion(text, space) == label


@pytest.mark.parametrize("text", ["joy", "", None, "table", "anger and awe", "love"])
def test_normalizer_returns_none_outside_the_space_or_when_ambiguous(text):
    assert normalize_emotion(text, "emoset") is None


def test_categorical_template_is_emovits_verbatim():
    assert categorical_instruction(MIKELS) == EMOVIT_INSTRUCTION
    assert categorical_answer("awe") == "Predict emotion: awe"
    assert CATEGORICAL_PARAPHRASES[0].format(options="x") == categorical_instruction(["x"])


def test_paraphrases_list_every_candidate_and_keep_the_answer_format():
    for index in range(len(CATEGORICAL_PARAPHRASES)):
        text = categorical_instruction(("joy", "fear", "anger"), index)
        assert "joy, fear and anger" in text
        assert "Predict emotion:" in text


def test_paraphrase_choice_is_deterministic_per_record_and_seed():
    choices = [choose_paraphrase(f"img_{n}", 42, 5) for n in range(200)]
    assert choices == [choose_paraphrase(f"img_{n}", 42, 5) for n in range(200)]
    assert set(choices) == set(range(5))
    assert choices != [choose_paraphrase(f"img_{n}", 7, 5) for n in range(200)]
