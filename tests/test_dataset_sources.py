"""Source readers: released layouts -> records; every skipped item counted; bad roots and labels are clear errors."""

import json

import pytest
from dataset_trees import MIKELS, emoset_tree, save_image, write_split

from dataset_builder.report import BuildReport
from dataset_builder.sources import read_records
from modeling_emovit.errors import EmoVITInputError


def _read(source, root, split="train", **kwargs):
    report = BuildReport(source=source, split=split)
    return list(read_records(source, root, split, report, **kwargs)), report


def test_emoset_reader_yields_labels_and_visual_clues(tmp_path):
    emoset_tree(tmp_path, per_emotion=1)
    records, report = _read("emoset", tmp_path)
    assert [r.label for r in records] == list(MIKELS)
    first = records[0]
    assert first.id == "amusement_00000" and first.label_space == "emoset" and first.split == "train"
    assert first.attributes["object"] == ["dog", "ball"] and first.attributes["brightness"] == 0.4
    assert report.skipped == {}


def test_emoset_reader_counts_missing_and_broken_annotations_and_duplicates(tmp_path):
    entries = emoset_tree(tmp_path, per_emotion=2)
    (tmp_path / entries[0][2]).unlink()
    (tmp_path / entries[1][2]).write_text("{not json")
    (tmp_path / entries[2][2]).write_text(json.dumps({"emotion": "anger", "scene": "street"}))
    (tmp_path / entries[3][1]).unlink()
    write_split(tmp_path, "train", entries + [entries[4], "not an entry"])
    records, report = _read("emoset", tmp_path)
    assert len(records) == 16 - 3  # the duplicate and the malformed entry were extra
    assert report.skipped == {
        "missing annotation file": 1,
        "unreadable annotation file": 1,
        "missing image file": 1,
        "duplicate id": 1,
        "malformed split entry": 1,
    }
    assert report.notes == {"annotation missing keys (kept, clues left empty)": 1}
    kept = next(r for r in records if r.id == "anger_00100")
    assert kept.attributes == {"brightness": None, "colorfulness": None, "scene": "street", "object": None,
                               "facial_expression": None, "human_action": None}


def test_unknown_label_is_an_error_unless_skipped(tmp_path):
    entries = emoset_tree(tmp_path, per_emotion=1)
    entries[0][0] = "boredom"
    write_split(tmp_path, "train", entries)
    with pytest.raises(EmoVITInputError, match="boredom.*--skip-unknown"):
        _read("emoset", tmp_path)
    records, report = _read("emoset", tmp_path, skip_unknown=True)
    assert len(records) == 7
    assert report.skipped == {"label outside the label space": 1}


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_or_empty_root_is_one_clear_error(tmp_path, make):
    root = tmp_path / "emoset"
    if make == "empty":
        root.mkdir()
    with pytest.raises(EmoVITInputError, match=f"root {'does not exist' if make == 'missing' else 'is empty'}"):
        _read("emoset", root)


def test_split_file_naming_no_existing_image_is_one_clear_error(tmp_path):
    emoset_tree(tmp_path, per_emotion=1)
    write_split(tmp_path, "test", [["awe", "image/awe/awe_99999.jpg", "annotation/awe/awe_00200.json"]])
    with pytest.raises(EmoVITInputError, match="names no existing, usable image.*1 missing image file"):
        _read("emoset", tmp_path, split="test")
    with pytest.raises(EmoVITInputError, match="val.json"):
        _read("emoset", tmp_path, split="val")


def test_imagefolder_reads_metadata_jsonl_and_csv(tmp_path):
    save_image(tmp_path / "train" / "a.png")
    save_image(tmp_path / "train" / "b.jpg")
    (tmp_path / "train" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "label": "Scared", "caption": "a dark alley", "object": ["car"]}) + "\n"
        + "{broken\n"
        + json.dumps({"file_name": "b.jpg", "emotion": "joy", "label_space": "emotionroi", "brightness": "0.5"}) + "\n"
    )
    records, report = _read("imagefolder", tmp_path)
    assert [(r.id, r.label, r.label_space) for r in records] == [("a", "fear", "emoset"), ("b", "joy", "emotionroi")]
    assert records[0].caption == "a dark alley" and records[0].attributes == {"object": ["car"]}
    assert records[1].attributes == {"brightness": 0.5}
    assert report.skipped == {"unreadable metadata line": 1}

    save_image(tmp_path / "flat" / "c.jpg")
    (tmp_path / "flat" / "metadata.csv").write_text("file_name,label,split,object\nc.jpg,awe,test,tree;sky\nc.jpg,awe,train,\n")
    records, _ = _read("imagefolder", tmp_path / "flat", split="test")
    assert [(r.id, r.label, r.attributes["object"]) for r in records] == [("c", "awe", ["tree", "sky"])]


def test_class_folder_sources_read_lists_folders_and_split_all(tmp_path):
    for emotion in ("anger", "joy"):
        save_image(tmp_path / "roi" / "images" / emotion / "1.jpg")
    (tmp_path / "roi" / "training.txt").write_text("anger/1.jpg\njoy/1.jpg\n")
    records, _ = _read("emotionroi", tmp_path / "roi")
    assert [(r.id, r.label) for r in records] == [("anger/1", "anger"), ("joy/1", "joy")]

    save_image(tmp_path / "fi" / "emotion_dataset" / "awe" / "awe_1.jpg")
    records, _ = _read("fi", tmp_path / "fi", split="all")
    assert [(r.id, r.label, r.label_space) for r in records] == [("awe/awe_1", "awe", "fi")]
    with pytest.raises(EmoVITInputError, match="--split all"):
        _read("fi", tmp_path / "fi", split="train")

    save_image(tmp_path / "ue" / "images" / "love" / "dog" / "3.jpg")
    records, _ = _read("unbiasedemo", tmp_path / "ue", split="all")
    assert [(r.id, r.label) for r in records] == [("love/dog/3", "love")]


def test_emotion6_keeps_the_probability_distribution(tmp_path):
    save_image(tmp_path / "images" / "fear" / "7.jpg")
    (tmp_path / "ground_truth.txt").write_text(
        "[image_filename]\t[valence]\t[arousal]\t[anger]\t[disgust]\t[fear]\t[joy]\t[sadness]\t[surprise]\t[neutral]\n"
        "fear/7.jpg\t3.1\t6.2\t0.1\t0.0\t0.6\t0.0\t0.2\t0.1\t0.0\n"
    )
    (record,), _ = _read("emotion6", tmp_path, split="all")
    assert record.label == "fear" and record.attributes == {"valence": 3.1, "arousal": 6.2}
    assert record.label_distribution["fear"] == 0.6 and len(record.label_distribution) == 7


def test_webemo_reads_25_classes_at_every_level(tmp_path):
    save_image(tmp_path / "train" / "cheerfullness" / "1.jpg")
    save_image(tmp_path / "train" / "rage" / "2.jpg")
    levels = {name: [(r.label, r.label_space) for r in _read(name, tmp_path)[0]] for name in ("webemo", "webemo-7", "webemo-2")}
    assert levels == {
        "webemo": [("cheerfulness", "webemo-25"), ("rage", "webemo-25")],
        "webemo-7": [("joy", "webemo-7"), ("anger", "webemo-7")],
        "webemo-2": [("positive", "webemo-2"), ("negative", "webemo-2")],
    }


def test_imagefolder_keeps_a_record_with_a_malformed_object_list_and_notes_it(tmp_path):
    save_image(tmp_path / "train" / "a.jpg")
    save_image(tmp_path / "train" / "b.jpg")
    (tmp_path / "train" / "metadata.csv").write_text(
        'file_name,label,object,scene\na.jpg,awe,"[""tree"", ""sky""",park\nb.jpg,fear,"[""car""]",\n'
    )
    records, report = _read("imagefolder", tmp_path)
    assert [(r.id, r.attributes) for r in records] == [("a", {"scene": "park"}), ("b", {"object": ["car"]})]
    assert report.notes == {"unreadable object list (kept, left empty)": 1} and report.skipped == {}
    assert report.examples["unreadable object list (kept, left empty)"] == ["a"]


def test_image_paths_leading_outside_the_root_are_skipped_and_counted_unless_allowed(tmp_path):
    secret = save_image(tmp_path / "outside" / "secret.jpg")  # e.g. a private photo beside the dataset
    root = tmp_path / "data"
    save_image(root / "train" / "a.jpg")
    (root / "train" / "link.jpg").symlink_to(secret)  # a symlink inside the root that points out of it
    (root / "train" / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in [
        {"file_name": "a.jpg", "label": "awe"},
        {"file_name": "../../outside/secret.jpg", "label": "awe", "id": "dotdot"},
        {"file_name": str(secret), "label": "awe", "id": "absolute"},
        {"file_name": "link.jpg", "label": "awe", "id": "symlink"},
    ]))
    records, report = _read("imagefolder", root)
    assert [r.id for r in records] == ["a"]
    assert report.skipped == {"path outside --root (read only with --allow-outside-root)": 3}
    outside = "path outside --root (read only with --allow-outside-root)"
    assert report.examples[outside] == ["dotdot", "absolute", "symlink"]
    records, report = _read("imagefolder", root, allow_outside_root=True)
    assert [r.id for r in records] == ["a", "dotdot", "absolute", "symlink"] and report.skipped == {}

    save_image(tmp_path / "fi" / "emotion_dataset" / "awe" / "1.jpg")
    (tmp_path / "fi" / "train.txt").write_text("awe/1.jpg awe\n../../../outside/secret.jpg amusement\n")
    records, report = _read("fi", tmp_path / "fi")
    assert [r.id for r in records] == ["awe/1"] and report.total_skipped == 1


def test_emoset_annotation_paths_leading_outside_the_root_are_never_read(tmp_path):
    entries = emoset_tree(tmp_path / "emoset", per_emotion=1)
    (tmp_path / "clues.json").write_text(json.dumps({"scene": "a secret from outside the dataset"}))
    entries[0][2] = "../clues.json"
    entries[1][2] = str(tmp_path / "clues.json")
    write_split(tmp_path / "emoset", "train", entries)
    records, report = _read("emoset", tmp_path / "emoset", allow_outside_root=True)
    assert len(records) == 6 and report.skipped == {"annotation path leading outside --root": 2}
    assert all(r.attributes["scene"] == "beach" for r in records)


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe not utf-8 \x80", None),
    (b"5", "expected a JSON list of \\[label, image path, annotation path\\] entries, not a number"),
    (b'{"amusement": []}', "not an object"),
])
def test_an_emoset_split_file_of_the_wrong_encoding_or_shape_is_named(tmp_path, content, expected):
    emoset_tree(tmp_path, per_emotion=1)
    (tmp_path / "train.json").write_bytes(content)
    if expected is None:  # a decode error: the entry point's boundary words it, naming the file
        from emovit.error_boundary import explain

        with pytest.raises(UnicodeDecodeError) as raised:
            _read("emoset", tmp_path)
        assert explain(raised.value).startswith(f"{tmp_path / 'train.json'}: not UTF-8 text (byte 0xff at offset 0)")
    else:
        with pytest.raises(EmoVITInputError, match=expected):
            _read("emoset", tmp_path)


def test_emoset_split_entries_of_the_wrong_shape_are_skipped_and_counted(tmp_path):
    entries = emoset_tree(tmp_path, per_emotion=1)
    write_split(tmp_path, "train", entries + [[1, 2, 3], ["awe", "image/awe/awe_00200.jpg", None], ["awe"]])
    records, report = _read("emoset", tmp_path)
    assert len(records) == 8 and report.skipped == {"malformed split entry": 3}


def test_imagefolder_rows_with_non_text_fields_are_skipped_and_counted(tmp_path):
    save_image(tmp_path / "train" / "a.jpg")
    (tmp_path / "train" / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in [
        {"file_name": "a.jpg", "label": "awe"},
        {"file_name": 5, "label": "awe"},
        {"file_name": "a.jpg", "label": ["awe"]},
        {"file_name": "a.jpg", "label": "awe", "label_space": {"x": 1}},
    ]))
    records, report = _read("imagefolder", tmp_path)
    assert [r.id for r in records] == ["a"]
    assert report.skipped == {"metadata row with a non-text file_name, label, label_space, caption or split": 3}
