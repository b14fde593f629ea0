"""build_dataset and `emovit data build/export`: Parquet per config that `load_dataset` reads back offline, the card,
the report's counts, bad inputs skipped and counted, and the EmoVIT JSON round trip."""

import json

import datasets
import pytest
import yaml
from dataset_trees import MIKELS, emoset_tree, generations_file, save_image, write_split
from PIL import Image

from dataset_builder.build import MESSAGES_LEFT_OUT, build_dataset
from dataset_builder.instructions import categorical_instruction
from emovit.cli import main

# The original release's categorical instruction, byte for byte as its instruction data carries it (github
# aimmemotion/EmoVIT): no space after the colon, two before "Predict". Written out here, not built by the package.
EMOVIT_INSTRUCTION = (
    "Please select the emotion closest to the image from the following options:amusement, anger, awe, contentment, "
    "disgust, excitement, fear and sadness (Do not provide answers outside of the candidates options.) Please answer "
    "in the following format:  Predict emotion:"
)


@pytest.fixture(scope="module")
def emoset_build(tmp_path_factory):
    """16 EmoSet images: one truncated JPEG, one CMYK, one annotation missing keys, one extra entry with an unknown
    label; generations for every image but `awe_00201` (whose lines failed) plus bad lines."""
    root = tmp_path_factory.mktemp("emoset")
    entries = emoset_tree(root, per_emotion=2)
    jpeg = (root / entries[0][1]).read_bytes()
    (root / entries[0][1]).write_bytes(jpeg[: len(jpeg) // 2])  # amusement_00000: truncated
    save_image(root / entries[1][1], mode="CMYK", format="JPEG")  # amusement_00001
    (root / entries[2][2]).write_text(json.dumps({"emotion": "anger"}))  # anger_00100: no clues
    write_split(root, "train", entries + [["boredom", entries[3][1], entries[3][2]]])
    ids = [entry[1].split("/")[-1][:-4] for entry in entries]
    gens = generations_file(root / "gens.jsonl", [i for i in ids if i != "awe_00201"] + ["ghost_00001"])
    with open(gens, "a") as handle:
        handle.write(json.dumps({"id": "awe_00201", "task": "conversation", "error": "rate limited"}) + "\n")
        handle.write(json.dumps({"id": "awe_00201", "task": "reasoning", "pairs": []}) + "\n")
        handle.write("{oops\n")
    out = tmp_path_factory.mktemp("built")
    report = build_dataset("emoset", root, "train", out, generations=gens, skip_unknown=True)
    return root, gens, out, report


def _rows(out, config, split="train"):
    return datasets.load_dataset(str(out), config, split=split)


def test_report_counts_every_written_row_and_skipped_item(emoset_build):
    _, _, out, report = emoset_build
    assert report.records == 15
    assert report.rows == {"all": 71, "categorical": 15, "conversation": 28, "reasoning": 28, "messages": 15}
    assert report.generated_by == {"test (gpt-test)": 28}  # 14 decodable images with pairs, x 2 tasks
    assert report.per_task == {"categorical": 15, "conversation": 28, "reasoning": 28}
    assert report.per_emotion == {label: 1 if label == "amusement" else 2 for label in MIKELS}
    assert report.skipped == {
        "corrupt, truncated or non-image file": 1,
        "label outside the label space": 1,
        "generation failed (error line)": 1,
        "generation without question/answer pairs": 1,
        "generation for an image not in this split": 2,
        "unreadable generation line": 1,
    }
    assert report.examples["corrupt, truncated or non-image file"] == ["amusement_00000"]
    assert report.notes == {"annotation missing keys (kept, clues left empty)": 1}
    assert report.without_generations == {"conversation": 1, "reasoning": 1}
    assert json.loads((out / "build_report.json").read_text())["train"] == report.to_dict()


def test_every_config_loads_back_offline_with_the_schema_and_counts(emoset_build):
    _, _, out, report = emoset_build
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "all", "build_report.json", "messages"]  # rows once
    default = datasets.load_dataset(str(out))
    assert list(default) == ["train"] and default["train"].num_rows == 71
    for config in ("categorical", "conversation", "reasoning", "all"):
        rows = _rows(out, config)
        assert rows.num_rows == report.rows[config]
        assert list(rows.features) == ["id", "image", "image_sha256", "source", "emotion", "label", "label_space",
                                       "attributes", "caption", "task", "prompt", "completion"]
        assert isinstance(rows.features["image"], datasets.Image)
        assert rows.features["label"].names == list(MIKELS)  # the label space travels with the data
        assert rows.features["label"].int2str(rows["label"]) == rows["emotion"]
        if config != "all":
            assert set(rows["task"]) == {config}


def test_categorical_rows_use_emovits_template_and_answer(emoset_build):
    rows = _rows(emoset_build[2], "categorical").remove_columns("image")
    assert set(rows["prompt"]) == {EMOVIT_INSTRUCTION}
    assert all(row["completion"] == f"Predict emotion: {row['emotion']}" for row in rows)
    awe = next(row for row in rows if row["id"] == "awe_00200")
    assert awe["attributes"]["object"] == ["dog", "ball"] and awe["attributes"]["scene"] == "beach"
    assert awe["source"] == "emoset" and awe["label_space"] == "emoset"
    bare = next(row for row in rows if row["id"] == "anger_00100")
    assert bare["attributes"]["scene"] is None and bare["attributes"]["object"] == []


def test_generated_pairs_become_one_row_each(emoset_build):
    rows = _rows(emoset_build[2], "reasoning").remove_columns("image")
    anger = [row for row in rows if row["id"] == "anger_00101"]
    assert [(row["prompt"], row["completion"]) for row in anger] == [
        ("reasoning question 0 about anger_00101?", "reasoning answer 0."),
        ("reasoning question 1 about anger_00101?", "reasoning answer 1."),
    ]
    assert "awe_00201" not in set(rows["id"])


def test_images_are_embedded_and_cmyk_becomes_rgb(emoset_build):
    root, _, out, _ = emoset_build
    rows = _rows(out, "categorical")
    cmyk = next(row for row in rows if row["id"] == "amusement_00001")["image"]
    assert cmyk.mode == "RGB" and cmyk.size == (16, 16)
    raw = rows.cast_column("image", datasets.Image(decode=False))
    awe = next(row for row in raw if row["id"] == "awe_00200")["image"]
    assert awe["bytes"] == (root / "image/awe/awe_00200.jpg").read_bytes()


def test_each_image_is_decoded_once_per_build_and_every_config_holds_the_same_bytes(emoset_build, tmp_path, monkeypatch):
    import dataset_builder.images

    root, gens, _, _ = emoset_build
    decoded = []
    opened = dataset_builder.images.open_image
    monkeypatch.setattr(dataset_builder.images, "open_image",
                        lambda data, **kwargs: decoded.append(data) or opened(data, **kwargs))
    out = tmp_path / "out"
    report = build_dataset("emoset", root, "train", out, generations=gens, skip_unknown=True)

    # 5 configs from 2 builder runs; 16 readable-or-not images checked once each, and the CMYK one, re-encoded,
    # decoded once more at full size (a JPEG's check decodes it at 1/8 scale)
    assert len(report.rows) == 5 and len(decoded) == 17
    assert report.skipped["corrupt, truncated or non-image file"] == 1  # the truncated one, counted once
    cells = {config: {row["id"]: row["image"]["bytes"] for row in
                      _rows(out, config).cast_column("image", datasets.Image(decode=False))}
             for config in ("all", "categorical", "conversation")}
    assert cells["categorical"]["amusement_00001"] == cells["all"]["amusement_00001"]  # the re-encoded CMYK
    assert all(cells["all"][image] == cell for config in cells for image, cell in cells[config].items())


def test_card_declares_configs_features_counts_and_licence(emoset_build):
    card = (emoset_build[2] / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    configs = {c["config_name"]: c for c in metadata["configs"]}
    assert set(configs) == {"categorical", "conversation", "reasoning", "all", "messages"} and configs["all"]["default"]
    # every task's config reads the `all` files, through a filter datasets' Parquet builder applies
    assert configs["reasoning"]["data_files"] == [{"split": "train", "path": "all/train-*.parquet"}]
    assert configs["reasoning"]["filters"] == [["task", "==", "reasoning"]] and "filters" not in configs["all"]
    infos = {info["config_name"]: info for info in metadata["dataset_info"]}
    assert infos["all"]["splits"][0]["num_examples"] == 71
    assert "| awe | 2 |" in card and "| reasoning | 28 |" in card
    assert "non-commercial research" in card and "| corrupt, truncated or non-image file | 1 |" in card


def test_two_processes_write_the_same_rows(emoset_build, tmp_path):
    root, gens, out, report = emoset_build
    parallel = build_dataset("emoset", root, "train", tmp_path, generations=gens, skip_unknown=True, num_proc=2)
    assert parallel.rows == report.rows and parallel.skipped == report.skipped
    key = lambda row: (row["id"], row["task"], row["prompt"])  # noqa: E731
    one, two = (_rows(folder, "all").remove_columns("image") for folder in (out, tmp_path))
    assert sorted(one, key=key) == sorted(two, key=key)
    assert len(list((tmp_path / "all").glob("train-*.parquet"))) == 2


def test_emovit_json_round_trip_keeps_every_instruction(emoset_build, tmp_path):
    _, _, out, _ = emoset_build
    exported = tmp_path / "emovit.json"
    assert main(["data", "export", str(out), "--json", str(exported), "--images-dir", str(tmp_path / "image")]) == 0
    entries = json.loads(exported.read_text())
    assert len(entries) == 71
    assert entries[0]["conversations"][0] == {"from": "human", "value": EMOVIT_INSTRUCTION}
    assert set(entries[0]) == {"id", "image", "task", "conversations"}

    rebuilt = build_dataset("emovit_json", exported, "train", tmp_path / "again")
    assert rebuilt.rows == {"all": 71, "categorical": 15, "conversation": 28, "reasoning": 28, "messages": 15}
    fields = lambda folder: sorted(  # noqa: E731
        (r["id"], r["emotion"], r["task"], r["prompt"], r["completion"]) for r in _rows(folder, "all").remove_columns("image")
    )
    assert fields(tmp_path / "again") == fields(out)


def _emovit_entry(image, question, answer):
    """One entry as the release's `emo/all.py` writes them: no task key."""
    return {"id": image[-9:-4], "image": image,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def test_emovit_json_single_task_file_takes_its_task_from_its_name(tmp_path):
    save_image(tmp_path / "image" / "awe" / "awe_00003.jpg")
    (tmp_path / "reasoning.json").write_text(json.dumps([_emovit_entry("awe_00003.jpg", "Why?", "Because.")]))
    report = build_dataset("emovit_json", tmp_path / "reasoning.json", "train", tmp_path / "out",
                           tasks=("conversation", "reasoning"))
    assert report.rows == {"all": 1, "conversation": 0, "reasoning": 1}  # one turn: no messages, and a note says so
    assert report.notes == {MESSAGES_LEFT_OUT: 1}
    metadata = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    assert [config["config_name"] for config in metadata["configs"]] == ["reasoning", "all"]  # an empty one is not listed


def test_release_merged_json_keeps_categorical_and_conversation_images_apart_and_finds_train_image(tmp_path):
    """The release's merged file: categorical images and conversation images disjoint, images in image/train_image/."""
    for stem in ("awe_00003", "fear_01500"):
        save_image(tmp_path / "emo" / "image" / "train_image" / f"{stem}.jpg")
    entries = [_emovit_entry("awe_00003.jpg", "What is there?", "A hill."),
               _emovit_entry("awe_00003.jpg", "Why is it moving?", "Complex Answer: the light."),
               _emovit_entry("fear_01500.jpg", EMOVIT_INSTRUCTION, "Predict emotion: fear")]
    (tmp_path / "emo" / "train.json").write_text(json.dumps(entries))

    report = build_dataset("emovit_json", tmp_path / "emo" / "train.json", "train", tmp_path / "out")

    assert report.rows == {"all": 3, "categorical": 1, "conversation": 2, "reasoning": 0, "messages": 2}
    assert report.skipped == {}
    assert _rows(tmp_path / "out", "categorical")["id"] == ["fear_01500"]  # none for the conversation-only image
    # reasoning and conversation entries of a merged file look alike: taken as conversation, and counted
    assert report.notes == {"generated entry of a merged file without a task key (taken as conversation)": 2}


def test_cli_build_prints_counts_and_rejects_unknown_labels(tmp_path, capsys):
    for name in ("a", "b", "c"):
        save_image(tmp_path / "data" / "train" / f"{name}.jpg")
    (tmp_path / "data" / "train" / "c.jpg").write_bytes(b"not an image")
    (tmp_path / "data" / "train" / "metadata.csv").write_text("file_name,label\na.jpg,amused\nb.jpg,boredom\nc.jpg,awe\n")
    base = ["data", "build", "--source", "imagefolder", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    assert main(base) == 2
    assert "boredom" in capsys.readouterr().err
    assert main(base + ["--skip-unknown", "--tasks", "categorical"]) == 0
    printed = capsys.readouterr().out
    assert "1 images; rows: all 1, categorical 1; labels: amusement, anger, awe," in printed
    assert "Skipped 2 items" in printed and "1  label outside the label space" in printed
    row = _rows(tmp_path / "out", "categorical")[0]
    assert (row["id"], row["emotion"], row["completion"]) == ("a", "amusement", "Predict emotion: amusement")
    assert isinstance(row["image"], Image.Image)


def test_conversation_without_generations_is_a_clear_error(tmp_path, capsys):
    emoset_tree(tmp_path / "root", per_emotion=1)
    args = ["data", "build", "--source", "emoset", "--root", str(tmp_path / "root"), "--out", str(tmp_path / "out")]
    assert main(args + ["--tasks", "reasoning"]) == 2
    assert "--generations" in capsys.readouterr().err
    assert main(args) == 0  # default tasks: categorical only when no generations are given
    assert "Note: 2 x task left out: no --generations file given" in capsys.readouterr().out


def test_paraphrase_option_varies_the_template_but_not_the_answer():
    from dataset_builder.builder import instruction_rows

    records = [{"id": f"awe_{n}", "label_space": "emoset", "emotion": "awe", "generations": {}} for n in range(40)]
    rows = [next(instruction_rows(record, ("categorical",), seed=42, paraphrases=True, labels=MIKELS)) for record in records]
    assert len({prompt for _, prompt, _ in rows}) > 1
    assert {completion for _, _, completion in rows} == {"Predict emotion: awe"}
    assert all("amusement, anger, awe, contentment, disgust, excitement, fear and sadness" in prompt for _, prompt, _ in rows)


def test_rebuilding_a_split_without_generations_drops_its_stale_conversation_and_reasoning_shards(tmp_path):
    entries = emoset_tree(tmp_path / "root", per_emotion=1)
    write_split(tmp_path / "root", "val", entries)
    gens = generations_file(tmp_path / "gens.jsonl", [entry[1].split("/")[-1][:-4] for entry in entries])
    out = tmp_path / "out"
    for split in ("train", "val"):
        build_dataset("emoset", tmp_path / "root", split, out, generations=gens)
    rebuilt = build_dataset("emoset", tmp_path / "root", "train", out)

    assert rebuilt.rows == {"all": 8, "categorical": 8}
    assert sorted(path.relative_to(out).as_posix() for path in out.glob("*/train-*.parquet")) == [
        "categorical/train-00000-of-00001.parquet"]  # the earlier all/ and messages/ shards of train are gone
    metadata = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    configs = {c["config_name"]: c["data_files"] for c in metadata["configs"]}
    assert configs["conversation"] == [{"split": "val", "path": "all/val-*.parquet"}]
    assert configs["all"] == [{"split": "train", "path": "categorical/train-*.parquet"},
                              {"split": "val", "path": "all/val-*.parquet"}]
    assert json.loads((out / "build_report.json").read_text())["train"]["rows"] == {"all": 8, "categorical": 8}
    assert _rows(out, "all").num_rows == 8
    assert list(datasets.load_dataset(str(out), "messages")) == ["val"]


def test_webemo_7_card_says_its_seven_classes_are_unverified(tmp_path):
    save_image(tmp_path / "webemo" / "train" / "confusion" / "1.jpg")
    save_image(tmp_path / "webemo" / "train" / "rage" / "2.jpg")
    build_dataset("webemo-7", tmp_path / "webemo", "train", tmp_path / "out", tasks=("categorical",))
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Labels of **webemo-7**: The 7 classes" in card and "unverified" in card
    build_dataset("webemo", tmp_path / "webemo", "train", tmp_path / "fine", tasks=("categorical",))
    assert "unverified" not in (tmp_path / "fine" / "README.md").read_text()


def test_emotion6_classification_offers_the_six_folder_emotions_only(tmp_path):
    save_image(tmp_path / "emotion6" / "test" / "joy" / "1.jpg")
    (tmp_path / "emotion6" / "ground_truth.txt").write_text(
        "header\njoy/1.jpg\t6.1\t5.0\t0\t0\t0\t0.7\t0\t0.1\t0.2\n")
    build_dataset("emotion6", tmp_path / "emotion6", "test", tmp_path / "out", tasks=("categorical",))
    row = _rows(tmp_path / "out", "categorical", split="test")[0]
    assert row["prompt"] == categorical_instruction(("anger", "disgust", "fear", "joy", "sadness", "surprise"))
    assert {"label": "neutral", "probability": pytest.approx(0.2)} in row["attributes"]["label_distribution"]


def test_building_train_then_test_into_one_folder_neither_writes_nor_lists_an_empty_split(tmp_path):
    """The test images have no generated pairs: conversation/reasoning get no test split at all."""
    root, out = tmp_path / "root", tmp_path / "out"
    entries = emoset_tree(root, per_emotion=1)
    write_split(root, "test", entries[:4])
    gens = generations_file(tmp_path / "gens.jsonl", [entry[1].split("/")[-1][:-4] for entry in entries[4:]])
    write_split(root, "train", entries[4:])
    build_dataset("emoset", root, "train", out, generations=gens)
    build_dataset("emoset", root, "test", out, generations=gens)

    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*.parquet")) == [
        "all/test-00000-of-00001.parquet", "all/train-00000-of-00001.parquet", "messages/train-00000-of-00001.parquet"]
    metadata = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    splits = {c["config_name"]: [f["split"] for f in c["data_files"]] for c in metadata["configs"]}
    assert splits["conversation"] == splits["reasoning"] == splits["messages"] == ["train"]  # test: one turn each
    assert sorted(splits["categorical"]) == sorted(splits["all"]) == ["test", "train"]
    infos = {info["config_name"]: [s["name"] for s in info["splits"]] for info in metadata["dataset_info"]}
    assert infos["conversation"] == ["train"]
    assert list(datasets.load_dataset(str(out), "conversation")) == ["train"]  # no "corresponds to no data"
    assert datasets.load_dataset(str(out), "categorical", split="test").num_rows == 4


def test_card_names_the_backend_and_model_that_wrote_the_pairs_and_real_sizes(emoset_build):
    out = emoset_build[2]
    card = (out / "README.md").read_text()
    assert "GPT-generated" not in card
    assert "by: `test (gpt-test)` (28 image-task generations)" in card  # generations_file: backend test, model gpt-test
    metadata = yaml.safe_load(card.split("---")[1])
    files = {config["config_name"]: [f["path"] for f in config["data_files"]] for config in metadata["configs"]}
    for info in metadata["dataset_info"]:
        shards = sorted(shard for pattern in files[info["config_name"]] for shard in out.glob(pattern))
        assert info["download_size"] == sum(shard.stat().st_size for shard in shards)  # the files the config reads
        assert info["dataset_size"] == sum(split["num_bytes"] for split in info["splits"]) > 0
    sizes = {info["config_name"]: info["splits"][0]["num_bytes"] for info in metadata["dataset_info"]}
    loaded = _rows(out, "conversation").data.nbytes  # num_bytes: the Arrow size of the config's own rows
    assert abs(sizes["conversation"] - loaded) < 0.05 * loaded and sizes["conversation"] < 0.5 * sizes["all"]


def test_messages_config_holds_each_images_instructions_as_one_conversation(emoset_build):
    out = emoset_build[2]
    chats = datasets.load_dataset(str(out), "messages", split="train")
    assert chats.num_rows == 15 and list(chats.features) == ["id", "images", "messages", "image_sha256", "source",
                                                             "emotion", "label", "label_space"]
    assert isinstance(chats.features["images"], datasets.List) and isinstance(chats.features["images"].feature, datasets.Image)
    chat = next(row for row in chats if row["id"] == "anger_00101")
    rows = [row for row in _rows(out, "all").remove_columns("image") if row["id"] == "anger_00101"]
    turns = [(turn["role"], [part["text"] for part in turn["content"] if part["type"] == "text"]) for turn in chat["messages"]]
    expected = []
    for row in rows:  # the same instructions as the prompt/completion rows, in the same (task) order
        expected += [("user", [row["prompt"]]), ("assistant", [row["completion"]])]
    assert turns == expected
    assert chat["messages"][0]["content"][0] == {"type": "image", "text": None}  # TRL fills this placeholder
    assert sum(part["type"] == "image" for turn in chat["messages"] for part in turn["content"]) == 1
    assert len(chat["images"]) == 1 and chat["images"][0].size == (16, 16)


def test_data_sample_writes_an_emoset_layout_that_data_build_reads(tmp_path, capsys):
    sample = tmp_path / "sample"
    args = ["data", "sample", "--out", str(sample), "--images-per-emotion", "2", "1", "--val-images-per-emotion", "1"]
    assert main(args) == 0
    assert f"sample to {sample}: 16 train, 8 validation and 8 test images" in capsys.readouterr().out
    assert len(json.loads((sample / "test.json").read_text())) == len(json.loads((sample / "val.json").read_text())) == 8
    for split, images in (("train", 16), ("validation", 8)):  # val.json is EmoSet's validation split
        report = build_dataset("emoset", sample, split, tmp_path / split, tasks=("categorical",))
        assert report.records == images and report.total_skipped == 0
        assert report.notes == {MESSAGES_LEFT_OUT: 1}  # and no annotation lacks a clue key EmoSet's reader looks for
    assert main(["data", "sample", "--out", str(sample)]) == 2  # never drawn over an existing folder
    assert "already exists and is not an empty folder" in capsys.readouterr().err


def _tree(folder) -> dict[str, bytes]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in files}


def test_a_split_in_which_no_image_decodes_is_refused_and_leaves_the_output_as_it_was(tmp_path, capsys):
    entries = emoset_tree(tmp_path / "root", per_emotion=1)
    args = ["data", "build", "--source", "emoset", "--root", str(tmp_path / "root"), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    before = _tree(tmp_path / "out")
    for _, image, _ in entries:
        (tmp_path / "root" / image).write_bytes(b"not an image")
    assert main(args) == 2  # an earlier build's shards are neither replaced by empty ones nor deleted
    error = capsys.readouterr().err
    assert "no image of split 'train' could be read (skipped 8 corrupt, truncated or non-image file)" in error
    assert _tree(tmp_path / "out") == before
    assert main(args[:-1] + [str(tmp_path / "new")]) == 2 and not (tmp_path / "new").exists()


def test_a_second_build_into_the_same_folder_is_refused_while_the_first_holds_it(tmp_path, capsys):
    import fcntl

    emoset_tree(tmp_path / "root", per_emotion=1)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".emovit-build.lock", "w") as lock:  # what a running `emovit data build` holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["data", "build", "--source", "emoset", "--root", str(tmp_path / "root"), "--out", str(out)])
    assert code == 2 and "another `emovit data build` is writing this folder now" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == [".emovit-build.lock"]


def test_a_build_works_inside_out_and_removes_work_folders_left_by_a_killed_build(tmp_path, monkeypatch):
    import tempfile

    emoset_tree(tmp_path / "root", per_emotion=1)
    out = tmp_path / "out"
    (out / ".emovit-build-killed" / "cache").mkdir(parents=True)  # what kill -9 left behind
    (out / ".emovit-build-killed" / "cache" / "shard.arrow").write_bytes(b"x" * 100)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))  # /tmp must stay untouched
    (tmp_path / "system-tmp").mkdir()
    build_dataset("emoset", tmp_path / "root", "train", out)
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no work folder, no lock file
    assert (out / "categorical").is_dir() and (out / "README.md").is_file()
    assert list((tmp_path / "system-tmp").iterdir()) == []


def test_the_build_summary_names_images_skipped_for_leading_outside_the_root(tmp_path, capsys):
    save_image(tmp_path / "outside.jpg")
    save_image(tmp_path / "data" / "a.jpg")
    (tmp_path / "data" / "metadata.csv").write_text("file_name,label\na.jpg,awe\n../outside.jpg,fear\n")
    base = ["data", "build", "--source", "imagefolder", "--root", str(tmp_path / "data"), "--tasks", "categorical"]
    assert main(base + ["--out", str(tmp_path / "outside-skipped")]) == 0
    assert "1  path outside --root (read only with --allow-outside-root)" in capsys.readouterr().out
    assert _rows(tmp_path / "outside-skipped", "categorical")["id"] == ["a"]
    assert main(base + ["--out", str(tmp_path / "outside-allowed"), "--allow-outside-root"]) == 0
    assert sorted(_rows(tmp_path / "outside-allowed", "categorical")["id"]) == ["../outside", "a"]


def test_a_single_task_build_gives_all_the_same_rows_as_its_task(tmp_path):
    emoset_tree(tmp_path / "root", per_emotion=1)
    report = build_dataset("emoset", tmp_path / "root", "train", tmp_path / "out", tasks=("categorical",))
    assert report.rows == {"all": 8, "categorical": 8}  # one instruction per image: no `messages` unless asked
    metadata = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    paths = {c["config_name"]: c["data_files"] for c in metadata["configs"]}
    assert paths == {"categorical": [{"split": "train", "path": "categorical/train-*.parquet"}],
                     "all": [{"split": "train", "path": "categorical/train-*.parquet"}]}  # one set of files for both
    every, categorical = _rows(tmp_path / "out", "all"), _rows(tmp_path / "out", "categorical")
    assert every.features == categorical.features
    assert every.remove_columns("image").to_list() == categorical.remove_columns("image").to_list()
