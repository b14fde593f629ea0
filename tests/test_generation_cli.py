"""`emovit data caption` and `emovit data generate` on an EmoSet-layout folder, into the dataset builder."""

import json
import re
import sqlite3

import pytest

from dataset_builder.build import build_dataset
from dataset_builder.generation import failed_path
from dataset_trees import emoset_tree, save_image
from emovit.cli import main
from generation_fixtures import closed_port_url, opposite_emotion_reply, pairs_reply
from modeling_emovit.image_utils import open_image
from modeling_emovit.testing import tiny_emovit
from openai_server import running_openai_server


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rules_backend_output_builds_into_a_dataset(tmp_path):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    out = tmp_path / "generations.jsonl"
    assert main(["data", "generate", "--root", str(tmp_path / "emoset"), "--backend", "rules", "--no-progress",
                 "--out", str(out)]) == 0
    assert len(lines(out)) == 16 and {row["backend"] for row in lines(out)} == {"rules"}
    report = build_dataset("emoset", tmp_path / "emoset", "train", tmp_path / "dataset", generations=out,
                           tasks=("conversation", "reasoning"))
    assert report.rows["conversation"] == 8 * 3 and report.rows["reasoning"] == 8


def test_openai_backend_without_a_key_stops_at_once_naming_the_variable(tmp_path, capsys):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    code = main(["data", "generate", "--root", str(tmp_path / "emoset"), "--api-key-env", "NO_SUCH_KEY_VAR",
                 "--out", str(tmp_path / "g.jsonl")])
    assert code == 2 and "NO_SUCH_KEY_VAR" in capsys.readouterr().err
    assert not (tmp_path / "g.jsonl").exists()


def test_caption_command_captions_in_batches_counts_unreadable_images_and_resumes(tmp_path, capsys):
    entries = emoset_tree(tmp_path / "emoset", per_emotion=1)
    (tmp_path / "emoset" / entries[0][1]).write_bytes(b"not an image")
    model, processor = tiny_emovit()
    model.save_pretrained(tmp_path / "captioner")
    processor.save_pretrained(tmp_path / "captioner")
    out = tmp_path / "captions.jsonl"
    command = ["data", "caption", "--root", str(tmp_path / "emoset"), "--model", str(tmp_path / "captioner"),
               "--batch-size", "3", "--prompt", "Describe the image.", "--max-new-tokens", "4", "--no-progress",
               "--out", str(out)]
    assert main(command) == 0
    captions = {row["id"]: row for row in lines(out)}
    readable = {image.split("/")[-1][:-4]: image for _, image, _ in entries[1:]}
    assert len(lines(out)) == 7 and set(captions) == set(readable)  # the unreadable image is the one left out
    assert {row["model"] for row in captions.values()} == {str(tmp_path / "captioner")}
    for stem, image in readable.items():  # each caption is what transformers' greedy `generate` says for its image
        inputs = processor(images=[open_image(tmp_path / "emoset" / image)], text=["Describe the image."],
                           return_tensors="pt")
        output = model.eval().generate(**inputs, max_new_tokens=4, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        assert captions[stem]["caption"] == processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()
    assert "skipped: 1 x unreadable image" in capsys.readouterr().out
    save_image(tmp_path / "emoset" / entries[0][1])
    assert main(command) == 0
    assert len(lines(out)) == 8 and len({row["id"] for row in lines(out)}) == 8
    assert "already written 7" in capsys.readouterr().out


def test_caption_resume_with_nothing_left_succeeds_without_loading_the_model(tmp_path, capsys):
    entries = emoset_tree(tmp_path / "emoset", per_emotion=1)
    out = tmp_path / "captions.jsonl"
    out.write_text("".join(json.dumps({"id": image.split("/")[-1][:-4], "caption": "a photo", "model": "m"}) + "\n"
                           for _, image, _ in entries))
    assert main(["data", "caption", "--root", str(tmp_path / "emoset"), "--model", str(tmp_path / "no-such-model"),
                 "--no-progress", "--out", str(out)]) == 0
    assert "captioned 0, already written 8" in capsys.readouterr().out
    assert len(lines(out)) == 8


def test_generate_exits_1_when_every_item_failed(tmp_path, capsys):
    from openai_server import running_openai_server

    emoset_tree(tmp_path / "emoset", per_emotion=1)
    out = tmp_path / "g.jsonl"
    with running_openai_server(script=lambda number, body: "server_error") as (base_url, stats):
        code = main(["data", "generate", "--root", str(tmp_path / "emoset"), "--base-url", base_url,
                     "--max-records", "1", "--max-retries", "0", "--no-progress", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "failed 2" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        f"emovit data generate: all 2 items of this run failed or were skipped (see the summary above); nothing was "
        f"added to {out}.")
    assert out.read_text() == "" and len(lines(failed_path(out))) == 2


def test_caption_and_generate_report_what_the_source_reader_skipped(tmp_path, capsys):
    entries = emoset_tree(tmp_path / "emoset", per_emotion=1)
    (tmp_path / "emoset" / entries[0][1]).unlink()
    assert main(["data", "generate", "--root", str(tmp_path / "emoset"), "--backend", "rules", "--no-progress",
                 "--out", str(tmp_path / "g.jsonl")]) == 0
    assert "skipped: 1 x missing image file" in capsys.readouterr().out


def test_caption_resume_counts_a_garbled_line_and_captions_its_image_again(tmp_path, capsys):
    entries = emoset_tree(tmp_path / "emoset", per_emotion=1)
    ids = [image.split("/")[-1][:-4] for _, image, _ in entries]
    out = tmp_path / "captions.jsonl"
    out.write_text("".join(json.dumps({"id": i, "caption": "a photo", "model": "m"}) + "\n" for i in ids[1:])
                   + '{"id": "' + ids[0] + '", "capt\x00garbled\n')
    model, processor = tiny_emovit()
    model.save_pretrained(tmp_path / "captioner")
    processor.save_pretrained(tmp_path / "captioner")
    assert main(["data", "caption", "--root", str(tmp_path / "emoset"), "--model", str(tmp_path / "captioner"),
                 "--prompt", "Describe the image.", "--max-new-tokens", "2", "--no-progress", "--out", str(out)]) == 0
    assert "captioned 1, already written 7" in (printed := capsys.readouterr().out)
    assert "note: 1 x garbled line in the output dropped (its image is captioned again)" in printed


def generate(root, out, base_url, *extra) -> list[str]:
    return ["data", "generate", "--root", str(root), "--base-url", base_url, "--max-records", "2", "--no-progress",
            "--out", str(out), *extra]


def not_a_cache(path):
    path.write_bytes(b"these bytes are no SQLite database" * 100)


def another_programs_database(path):
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE responses (url TEXT, status INTEGER)")


@pytest.mark.parametrize("make_cache", [not_a_cache, another_programs_database])
def test_a_cache_file_that_is_no_response_cache_is_one_sentence_naming_it_and_nothing_is_sent(tmp_path, capsys,
                                                                                              make_cache):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    make_cache(tmp_path / "cache.sqlite")
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        code = main(generate(tmp_path / "emoset", tmp_path / "g.jsonl", base_url, "--cache",
                             str(tmp_path / "cache.sqlite")))
    [message] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and stats.requests == 0
    assert message.startswith(f"emovit data: {tmp_path / 'cache.sqlite'}: not a usable SQLite response cache (")
    assert message.endswith("); move it away or give another cache file.")


def test_a_closed_port_fails_at_once_with_cannot_connect_naming_the_url(tmp_path, capsys):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    url = closed_port_url()
    # --max-retries 1 only bounds how long a regression takes to fail: no retry is made
    code = main(generate(tmp_path / "emoset", tmp_path / "g.jsonl", url, "--max-retries", "1"))
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        f"emovit data: cannot connect to {url} (connection refused): check the server address (--base-url) and that "
        "the server is running."]
    assert (tmp_path / "g.jsonl").read_text() == ""


def test_a_poisoned_server_gets_nothing_written_and_the_summary_counts_its_replies_by_reason(tmp_path, capsys):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    with running_openai_server(respond=opposite_emotion_reply) as (base_url, stats):
        code = main(generate(tmp_path / "emoset", tmp_path / "g.jsonl", base_url, "--max-rejections", "0"))
        checked = capsys.readouterr().out
        unchecked = main(generate(tmp_path / "emoset", tmp_path / "h.jsonl", base_url, "--no-content-checks"))
    assert code == 1 and lines(tmp_path / "g.jsonl") == []
    assert "  failed: 4 x rejected: answer states another emotion than the label" in checked.splitlines()
    assert "  rejected reply: 4 x answer states another emotion than the label" in checked.splitlines()
    assert unchecked == 0 and len(lines(tmp_path / "h.jsonl")) == 4 and stats.requests == 8


def test_dry_run_prints_the_requests_and_their_cost_and_sends_nothing(tmp_path, capsys, monkeypatch):
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out, cache = tmp_path / "g.jsonl", tmp_path / "cache.sqlite"
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        assert main(generate(tmp_path / "emoset", out, base_url, "--dry-run", "--cache", str(cache))) == 0
        [planned] = capsys.readouterr().out.strip().splitlines()
        assert stats.requests == 0 and not any(tmp_path.glob("g.jsonl*")) and not cache.exists()
        assert main(generate(tmp_path / "emoset", out, base_url, "--cache", str(cache))) == 0
        sent = stats.bodies[:]
        assert main(generate(tmp_path / "emoset", tmp_path / "again.jsonl", base_url, "--dry-run", "--cache",
                             str(cache))) == 0
        from_cache = capsys.readouterr().out.strip().splitlines()[-1]
    numbers = re.fullmatch(r"dry run, nothing sent: (\d+) requests to gpt-4o-mini \(0 items from the cache\), about "
                           r"(\d+) prompt tokens and at most (\d+) completion tokens; estimated cost at most "
                           r"\$(\d+\.\d{4}), retries not included", planned)
    assert numbers, planned
    requests, prompt_tokens, completion_tokens, cost = int(numbers[1]), int(numbers[2]), int(numbers[3]), numbers[4]
    # what the run then sent: as many requests, their text at OpenAI's four characters per token, max_tokens 1024
    # each at most; priced at gpt-4o-mini's list price ($0.15 / $0.60 per 1M input / output tokens)
    assert requests == len(sent) == 4 and completion_tokens == 4 * 1024
    assert prompt_tokens == sum(sum(len(message["content"]) for message in body["messages"]) // 4 for body in sent)
    assert cost == f"{(prompt_tokens * 0.15 + completion_tokens * 0.60) / 1e6:.4f}"
    assert from_cache.startswith("dry run, nothing sent: 0 requests to gpt-4o-mini (4 items from the cache)")
