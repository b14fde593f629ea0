"""`emovit data build --mix release`: the original release's images and tasks (its `emo/all.py`,
`emo/gpt4_conversation.py`, `emo/gpt4_reasoning.py`), picked by position in each emotion's list of EmoSet's
`train.json`, in the file's order."""

import json

from dataset_trees import MIKELS, emoset_tree, generations_file

from dataset_builder import mix
from dataset_builder.build import build_dataset
from emovit.cli import main


def test_release_mix_counts_per_emotion_follow_train_json_order(tmp_path):
    # 5700 images per emotion, emotions interleaved as in EmoSet's (unsorted) split files
    entries = [[emotion, f"image/{emotion}/{emotion}_{n:05d}.jpg", f"annotation/{emotion}/{emotion}_{n:05d}.json"]
               for n in range(5700) for emotion in MIKELS]
    (tmp_path / "train.json").write_text(json.dumps(entries))

    chosen = mix.release_mix(tmp_path, "train")

    per_task = {task: sum(task in tasks for tasks in chosen.values()) for task in ("categorical", "conversation", "reasoning")}
    assert per_task == {"categorical": 8 * 4600, "conversation": 8 * 1000, "reasoning": 8 * 100}
    assert chosen["fear_00000"] == ("reasoning", "conversation") and chosen["fear_00999"] == ("conversation",)
    assert chosen["fear_01000"] == ("categorical",) and chosen["fear_05599"] == ("categorical",)
    assert "fear_05600" not in chosen
    assert not any("categorical" in tasks and "conversation" in tasks for tasks in chosen.values())


def test_build_with_the_release_mix_keeps_each_image_to_its_tasks(tmp_path, monkeypatch):
    # the release's ranges scaled down: reasoning position 0, conversation 0-1, categorical 2-3 (5 images per emotion)
    monkeypatch.setitem(mix.RELEASE_POSITIONS, "reasoning", range(0, 1))
    monkeypatch.setitem(mix.RELEASE_POSITIONS, "conversation", range(0, 2))
    monkeypatch.setitem(mix.RELEASE_POSITIONS, "categorical", range(2, 4))
    entries = emoset_tree(tmp_path / "emoset", per_emotion=5)
    ids = [image.split("/")[-1][:-4] for _, image, _ in entries]
    generations = generations_file(tmp_path / "generations.jsonl", ids, pairs=1)  # every image, both tasks

    report = build_dataset("emoset", tmp_path / "emoset", "train", tmp_path / "out", generations=generations,
                           mix="release")

    assert report.rows == {"all": 8 * (2 + 2 + 1), "categorical": 16, "conversation": 16, "reasoning": 8,
                           "messages": 8 * 4}  # one conversation per image
    assert report.skipped["image not in the release mix"] == 8
    assert report.skipped["generation for an image not in the release mix"] == 16
    assert report.notes["generation for a task the release mix does not give this image (left out)"] == 8 * 2 * 2 + 8
    assert report.without_generations == {"conversation": 0, "reasoning": 0}


def test_release_mix_needs_emoset_train(tmp_path, capsys):
    emoset_tree(tmp_path / "emoset", per_emotion=1, split="test")
    code = main(["data", "build", "--source", "emoset", "--root", str(tmp_path / "emoset"), "--split", "test",
                 "--tasks", "categorical", "--mix", "release", "--out", str(tmp_path / "out")])
    assert code == 2 and "--split train" in capsys.readouterr().err
