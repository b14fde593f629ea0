"""Prompts, clue text, reply parsing and validation, and the offline rules backend (no server)."""

import json

import pytest

from dataset_builder.generation.prompts import PAIRS_RESPONSE_FORMAT, clue_text, load_prompt
from dataset_builder.generation.rules import RULES
from dataset_builder.generation.validation import RejectedOutput, parse_pairs, reply_parser, validate_pairs
from dataset_builder.records import EmotionRecord
from generation_fixtures import make_records

PAIR = {"question": "What is the dog doing?", "answer": "It is running after a ball."}


def test_prompt_files_carry_a_version_and_the_number_of_pairs():
    conversation, reasoning = load_prompt("conversation"), load_prompt("reasoning")
    assert (conversation.pairs, reasoning.pairs) == (3, 1)
    assert conversation.version.startswith("conversation/") and reasoning.version.startswith("reasoning/")
    structured, text = conversation.messages("clues"), conversation.messages("clues", structured=False)
    assert '{"pairs"' in structured[0]["content"] and "Question:" in text[0]["content"]
    assert structured[1] == {"role": "user", "content": "clues"}
    assert PAIRS_RESPONSE_FORMAT["json_schema"]["strict"] is True


def test_clue_text_is_caption_blank_line_then_present_clues_in_emovit_order():
    record = EmotionRecord("1", "x.jpg", "awe", "mikels8", "train", "emoset",
                           attributes={"brightness": 0.8, "colorfulness": 0.25, "scene": None, "object": ["mountain", "sky"],
                                       "facial_expression": None, "human_action": None})
    assert clue_text(record, "a mountain at dawn") == (
        "a mountain at dawn\n\nemotion: awe\nbrightness: 0.80\ncolorfulness: 0.25\nobject: mountain, sky"
    )
    assert clue_text(record) == "emotion: awe\nbrightness: 0.80\ncolorfulness: 0.25\nobject: mountain, sky"


def test_structured_json_and_fenced_json_replies_parse_to_pairs():
    assert parse_pairs(json.dumps({"pairs": [PAIR]})) == [PAIR]
    assert parse_pairs("```json\n" + json.dumps({"pairs": [PAIR]}) + "\n```") == [PAIR]


def test_text_fallback_parses_question_answer_lines_without_leaking_their_labels():
    text = ("1. Question: What is the dog doing?\nAnswer: It is running\nafter a ball.\n\n"
            "**Complex question:** Why does it feel joyful?\n**Answer:** The light is warm.")
    pairs = parse_pairs(text)
    assert pairs == [
        {"question": "What is the dog doing?", "answer": "It is running\nafter a ball."},
        {"question": "Why does it feel joyful?", "answer": "The light is warm."},
    ]
    assert validate_pairs(pairs, 2) == pairs


def test_a_reply_without_pairs_is_rejected():
    with pytest.raises(RejectedOutput, match="no question/answer pairs"):
        parse_pairs("The image is nice.")


@pytest.mark.parametrize("pairs, reason", [
    ([PAIR, PAIR], "expected 1 pairs, got 2"),
    ([{"question": "Why?", "answer": "  "}], "empty answer"),
    ([{"question": "Why?", "answer": "I'm sorry, I can't help with that."}], "refusal"),
    ([{"question": "Complex question: Why?", "answer": "Because."}], "leaked label"),
    ([{"question": "Why?", "answer": "The caption says it is sad."}], "mentions the caption"),
    ([{"question": "Why?", "answer": "Its attributes show low brightness."}], "mentions the caption or attributes"),
])
def test_validation_rejects_each_kind_of_bad_reply_with_its_reason(pairs, reason):
    with pytest.raises(RejectedOutput, match=reason):
        validate_pairs(pairs, 1)


@pytest.mark.parametrize("task", ["conversation", "reasoning"])
def test_rules_backend_pairs_are_deterministic_grounded_and_pass_validation(task):
    record = make_records(1)[0]
    pairs = RULES[task](record, record.caption)
    assert pairs == RULES[task](record, record.caption)
    assert reply_parser(load_prompt(task).pairs)(json.dumps({"pairs": pairs})) == pairs
    answers = " ".join(pair["answer"] for pair in pairs)
    assert record.label in answers and "dog" in answers


def test_rules_backend_works_with_no_clues_and_no_caption():
    record = EmotionRecord("bare", "x.jpg", None, "mikels8", "train", "emoset")
    for task, make in RULES.items():
        assert validate_pairs(make(record), load_prompt(task).pairs)
