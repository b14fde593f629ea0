"""`emovit data caption` and `emovit data generate` on an EmoSet-layout folder, into the dataset builder."""

import json

from dataset_builder.build import build_dataset
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
