"""`emovit data caption` and `emovit data generate` on an EmoSet-layout folder, into the dataset builder."""

import json

from dataset_builder.build import build_dataset
from dataset_builder.generation import failed_path
from dataset_trees import emoset_tree, save_image
from emovit.cli import main
from modeling_emovit.testing import tiny_emovit


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
    captions = lines(out)
    assert len(captions) == 7 and all(isinstance(row["caption"], str) for row in captions)
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
