"""`emovit data generate --prompts-from DIR`: the original release's prompts, read from a clone at run time.

The "clone" here is written by the test in the release's layout (`emo/prompt/conversation.txt` with CRLF line ends
and no examples, `emo/prompt/reasoning.txt` with three in-context examples) and in this test's own words: the
release's texts are never copied into the package or its tests. The clue format is the release's `emo/cap-anno.py`.
"""

import hashlib
import json

from dataset_trees import emoset_tree
from emovit.cli import main
from generation_fixtures import make_records
from openai_server import running_openai_server

from dataset_builder.generation.prompts import release_clue_text

CONVERSATION = "Pretend to see a picture.\r\nAsk two plain questions and a hard one.\r\nQuestion:\r\nAnswer:\r\n"
EXAMPLE = "caption & attributes:\n\na cat on a sofa\n\nemotion: amusement\nbrightness: 0.5\n\nQuestion: Why?\n\nAnswer: Fun.\n"
REASONING = "Ask one hard question about a picture.\n\nSome examples:\n\n" + "\n".join([EXAMPLE] * 3)


def release_clone(root):
    prompts = root / "emo" / "prompt"
    prompts.mkdir(parents=True)
    (prompts / "conversation.txt").write_bytes(CONVERSATION.encode())
    (prompts / "reasoning.txt").write_bytes(REASONING.encode())
    return root


def release_style_reply(body: dict) -> str:
    """What GPT answered the release: free text, the third question labelled as complex."""
    if body["messages"][0]["content"].startswith("Ask one hard"):
        return "Question: Why does it feel this way?\nAnswer: Because of the light."
    return ("Question: What is there?\nAnswer: A dog.\n\nQuestion: What colour is it?\nAnswer: Brown.\n\n"
            "Complex question: What might happen next?\nAnswer: It may run to the sea.")


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_release_clue_text_is_cap_anno_format():
    record = make_records(1)[0]
    assert release_clue_text(record) == (
        "a dog chasing a ball number 0 on a beach\n\nemotion: amusement\nbrightness: 0.0\ncolorfulness: 0.65\n"
        "object: ['dog', 'ball']\nfacial_expression: happy\nhuman_action: running"
    )


def test_prompts_from_a_clone_are_sent_as_they_are_with_the_release_defaults(tmp_path):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    clone = release_clone(tmp_path / "EmoVIT")
    out = tmp_path / "generations.jsonl"
    command = ["data", "generate", "--root", str(tmp_path / "emoset"), "--prompts-from", str(clone), "--no-progress",
               "--cache", str(tmp_path / "cache.sqlite"), "--out", str(out)]
    with running_openai_server(respond=release_style_reply) as (base_url, stats):
        assert main([*command, "--base-url", base_url]) == 0

    assert stats.requests == 16
    systems = {body["messages"][0]["content"] for body in stats.bodies}
    assert systems == {CONVERSATION.replace("\r\n", "\n"), REASONING}  # read in text mode, as the release's scripts
    body = stats.bodies[0]
    assert body["model"] == "gpt-4" and body["temperature"] == 1 and "max_tokens" not in body
    assert "response_format" not in body
    user = body["messages"][1]["content"]
    assert "\n\nemotion: " in user and "scene" not in user and "object: ['dog', 'ball']" in user
    written = {(row["id"], row["task"]): row for row in rows(out)}
    conversation = written[("amusement_00000", "conversation")]
    assert [pair["question"] for pair in conversation["pairs"]] == [
        "What is there?", "What colour is it?", "What might happen next?"]
    digest = hashlib.sha256(REASONING.encode()).hexdigest()
    assert written[("amusement_00000", "reasoning")]["prompt_version"] == f"release/{digest}"
    assert written[("amusement_00000", "reasoning")]["model"] == "gpt-4"


def test_the_prompt_file_hash_is_part_of_the_cache_key(tmp_path):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    clone = release_clone(tmp_path / "EmoVIT")
    base = ["data", "generate", "--root", str(tmp_path / "emoset"), "--prompts-from", str(clone), "--no-progress",
            "--tasks", "reasoning", "--cache", str(tmp_path / "cache.sqlite")]
    with running_openai_server(respond=release_style_reply) as (base_url, stats):
        assert main([*base, "--base-url", base_url, "--out", str(tmp_path / "a.jsonl")]) == 0
        assert main([*base, "--base-url", base_url, "--out", str(tmp_path / "b.jsonl")]) == 0
        assert stats.requests == 8  # the second run came from the cache
        (clone / "emo" / "prompt" / "reasoning.txt").write_text(REASONING + "\nOne more line.\n")
        assert main([*base, "--base-url", base_url, "--out", str(tmp_path / "c.jsonl")]) == 0
        assert stats.requests == 16


def test_a_folder_without_the_release_prompts_is_one_sentence(tmp_path, capsys):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    code = main(["data", "generate", "--root", str(tmp_path / "emoset"), "--prompts-from", str(tmp_path),
                 "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "g.jsonl")])
    error = capsys.readouterr().err
    assert code == 2 and "emo/prompt/conversation.txt" in error and len(error.strip().splitlines()) == 1
