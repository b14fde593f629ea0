"""Label spaces the data defines: plain class folders read as `load_dataset("imagefolder")` reads them, `--labels`
and `--label-space`, the space carried by the built dataset (its `label` ClassLabel) and resolved by `emovit eval`
with no flag, and every label read as another label counted."""

import json

import datasets
import pytest
from dataset_trees import emoset_tree, save_image, write_split

from dataset_builder.build import build_dataset
from dataset_builder.emotions import defined_label_space
from dataset_builder.instructions import categorical_instruction
from dataset_builder.loading import load_split
from emovit.cli import main
from evaluation.label_space import resolve_label_space
from modeling_emovit.errors import EmoVITInputError

EKMAN = ("anger", "disgust", "fear", "joy", "sadness", "surprise")


def _class_folders(root, labels_and_counts, split="train"):
    """`<root>/<split>/<label>/<n>.png`: the class-folder layout of datasets' imagefolder (no metadata file)."""
    for index, (label, count) in enumerate(labels_and_counts):
        for number in range(count):
            save_image(root / split / label / f"{number}.png", (40 * index, 20 * number, 100), format="PNG")
    return root


def test_plain_class_folders_are_read_as_load_dataset_imagefolder_reads_them(tmp_path):
    root = _class_folders(tmp_path / "photos", [("calm", 2), ("happy", 1), ("tense", 2)])
    report = build_dataset("imagefolder", root, "train", tmp_path / "out", tasks=("categorical",))

    # The reference: datasets' own imagefolder over the same folder (labels from the class folders, sorted).
    reference = datasets.load_dataset("imagefolder", data_dir=str(root), split="train")
    names = reference.features["label"].names
    paths = [image["path"] for image in reference.cast_column("image", datasets.Image(decode=False))["image"]]
    expected = sorted((path.split("/train/")[1][:-4], names[label]) for path, label in zip(paths, reference["label"]))
    rows = load_split(str(tmp_path / "out"), "categorical", "train")
    assert sorted(zip(rows["id"], rows["emotion"])) == expected
    assert rows.features["label"].names == names == ["calm", "happy", "tense"] and report.labels == names
    assert set(rows["prompt"]) == {categorical_instruction(names)}  # the template offers the folders' labels
    assert set(rows["label_space"]) == {"custom"}
    assert resolve_label_space(rows, None, "out") == defined_label_space("custom", names)


def test_class_folders_naming_a_built_in_space_take_its_name_and_stray_images_are_counted(tmp_path):
    root = _class_folders(tmp_path / "photos", [(label, 1) for label in EKMAN])
    save_image(root / "train" / "loose.png", format="PNG")  # not in a class folder
    report = build_dataset("imagefolder", root, "train", tmp_path / "out", tasks=("categorical",))
    assert set(load_split(str(tmp_path / "out"), "categorical", "train")["label_space"]) == {"emotionroi"}
    assert report.skipped == {"image outside a class folder (<folder>/<label>/<image>)": 1}


def test_labels_define_the_space_of_a_metadata_folder_and_each_label_read_as_another_is_counted(tmp_path, capsys):
    folder = tmp_path / "ekman" / "train"
    rows = [("a.png", "happiness"), ("b.png", "Joy"), ("c.png", "joy"), ("d.png", "scared")]
    for name, _ in rows:
        save_image(folder / name, format="PNG")
    (folder / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": name, "label": label, "label_space": "ekman"}) + "\n" for name, label in rows))
    base = ["data", "build", "--source", "imagefolder", "--root", str(tmp_path / "ekman"), "--tasks", "categorical"]

    assert main(base + ["--out", str(tmp_path / "refused")]) == 2  # today: "Unknown label space 'ekman'"
    assert "label space 'ekman' is not built in" in capsys.readouterr().err and not (tmp_path / "refused").exists()

    out = tmp_path / "out"
    assert main(base + ["--out", str(out), "--labels", ",".join(EKMAN), "--label-space", "ekman"]) == 0
    printed = capsys.readouterr().out
    assert "Label read as another: 1 x happiness -> joy" in printed and "1 x scared -> fear" in printed
    report = json.loads((out / "build_report.json").read_text())["train"]
    assert report["label_mappings"] == {"happiness -> joy": 1, "Joy -> joy": 1, "scared -> fear": 1}
    assert report["labels"] == list(EKMAN)
    assert "| happiness -> joy | 1 |" in (out / "README.md").read_text()

    dataset = load_split(str(out), "categorical", "train")
    space = resolve_label_space(dataset, None, str(out))  # what `emovit eval` does, no --label-space
    assert space == defined_label_space("ekman", EKMAN) and space.labels == EKMAN
    assert space.polarity["joy"] == "positive" and space.polarity["fear"] == "negative"
    assert set(dataset["prompt"]) == {categorical_instruction(EKMAN)}
    assert resolve_label_space(dataset, "ekman", str(out)) == space  # calibration names the space it scores


def test_labels_read_from_a_file_keep_their_order(tmp_path):
    from dataset_builder.emotions import parse_labels

    (tmp_path / "labels.txt").write_text("tense\ncalm\n\nhappy\n")
    (tmp_path / "labels.json").write_text('["tense", "calm", "happy"]')
    assert parse_labels(str(tmp_path / "labels.txt")) == parse_labels(str(tmp_path / "labels.json")) == (
        "tense", "calm", "happy")
    assert parse_labels("tense, calm,happy") == ("tense", "calm", "happy")


def test_a_built_in_name_for_other_labels_and_a_split_with_other_labels_are_refused(tmp_path):
    root = _class_folders(tmp_path / "photos", [("calm", 1), ("happy", 1)], split="test")
    with pytest.raises(EmoVITInputError, match="'emoset' is built in with the labels amusement"):
        build_dataset("imagefolder", root, "test", tmp_path / "a", labels=("calm", "happy"), label_space="emoset")
    with pytest.raises(EmoVITInputError, match="not a built-in label space"):
        build_dataset("imagefolder", root, "test", tmp_path / "a", label_space="moods")

    out = tmp_path / "out"
    emoset_tree(tmp_path / "emoset", per_emotion=1)
    write_split(tmp_path / "emoset", "test", json.loads((tmp_path / "emoset" / "train.json").read_text()))
    build_dataset("emoset", tmp_path / "emoset", "train", out)
    with pytest.raises(EmoVITInputError, match="its split 'train' has the labels \\(amusement.*this build of 'test' "
                                               "has \\(calm, happy\\)"):
        build_dataset("imagefolder", root, "test", out, tasks=("categorical",))
    assert list(datasets.load_dataset(str(out), "categorical")) == ["train"]  # the refused split was not added


def test_polarity_accuracy_is_not_reported_over_labels_of_unknown_polarity():
    from evaluation.classification_metrics import compute_metrics

    rows = [{"id": str(n), "paraphrase": 0, "prediction": label, "reference": "calm"}
            for n, label in enumerate(("calm", "tense"))]
    moods = compute_metrics(rows, defined_label_space("moods", ("calm", "tense")), "data", with_scores=False)
    assert moods["accuracy"] == 0.5 and moods["polarity_accuracy"] is None
    rows = [{"id": "0", "paraphrase": 0, "prediction": "joy", "reference": "surprise"}]
    ekman = compute_metrics(rows, defined_label_space("ekman", EKMAN), "data", with_scores=False)
    assert ekman["polarity_accuracy"] == 1.0  # joy and surprise: both positive in every built-in space
