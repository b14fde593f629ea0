"""Data that would quietly corrupt an experiment, caught by `emovit data build`: images shared by two splits or
copied under two labels (content hashes), oversized metadata and fields, file names that are not UTF-8, a full
disk; and the size of what a build writes (each image stored once per set of rows)."""

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_trees import emoset_tree, generations_file, save_image, write_split
from PIL import Image, PngImagePlugin

from dataset_builder.build import MESSAGES_LEFT_OUT, build_dataset
from dataset_builder.images import MAX_METADATA_BYTES, image_digest
from dataset_builder.loading import load_split
from dataset_builder.schema import MAX_TEXT_CHARS
from emovit.cli import main
from modeling_emovit.errors import EmoVITInputError

REPO = Path(__file__).resolve().parents[1]


def _copy(root: Path, entry: list[str], image: str, label: str) -> list[str]:
    """A byte-for-byte copy of an entry's image (and annotation) under another path and label."""
    annotation = image.replace("image/", "annotation/").replace(".jpg", ".json")
    for source, target in ((entry[1], image), (entry[2], annotation)):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_bytes((root / source).read_bytes())
    return [label, image, annotation]


def test_images_in_two_splits_or_under_two_labels_are_counted_in_both_reports_the_card_and_the_summary(tmp_path, capsys):
    root, out = tmp_path / "emoset", tmp_path / "out"
    entries = emoset_tree(root, per_emotion=2)  # 16 distinct images
    by_id = {Path(entry[1]).stem: entry for entry in entries}
    for twin, label in (("awe_00201", "awe"), ("fear_00600", "fear")):  # bytes of awe_00200 under its own path
        (root / by_id[twin][1]).write_bytes((root / by_id["awe_00200"][1]).read_bytes())
    test = [by_id["amusement_00000"], by_id["amusement_00001"],
            _copy(root, by_id["anger_00100"], "image/fear/fear_09999.jpg", "fear")]
    write_split(root, "test", test)
    build = ["data", "build", "--source", "emoset", "--root", str(root), "--out", str(out)]
    assert main(build + ["--split", "train"]) == 0 and main(build + ["--split", "test"]) == 0
    printed = capsys.readouterr().out

    reports = json.loads((out / "build_report.json").read_text())
    counts = {split: {kind: found["images"] for kind, found in report["duplicates"].items()}
              for split, report in reports.items()}
    assert counts == {
        "train": {"within this split": 3, "within this split, under another label": 3,
                  "also in split test": 3, "also in split test, under another label": 1},
        "test": {"also in split train": 3, "also in split train, under another label": 1},
    }  # the train report, written first, is brought up to date by the test build
    assert reports["test"]["duplicates"]["also in split train, under another label"]["examples"] == [
        "fear_09999 (fear) = anger_00100 (anger)"]
    assert "Byte-identical images also in split train: 3 (e.g. amusement_00000 (amusement) = amusement_00000" in printed
    assert "| also in split test | 3 |" in (out / "README.md").read_text()

    rows = load_split(str(out), "categorical", "test").cast_column("image", datasets.Image(decode=False))
    for row in rows:  # the stored hash is SHA-256 of the stored bytes, recomputable by anyone holding them
        assert row["image_sha256"] == hashlib.sha256(row["image"]["bytes"]).hexdigest() == image_digest(row["image"]["bytes"])


def _png_with_text(size: int, text_bytes: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("comment", "x" * text_bytes)
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_a_small_png_carrying_megabytes_of_text_is_stored_without_it_losslessly_and_counted(tmp_path):
    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    bloated = _png_with_text(32, 2 * MAX_METADATA_BYTES)  # the probe's 60 MB iTXt, scaled down
    (folder / "bloated.png").write_bytes(bloated)
    (folder / "plain.png").write_bytes(_png_with_text(32, 100))  # a little metadata is kept as it is
    (folder / "metadata.csv").write_text("file_name,label\nbloated.png,awe\nplain.png,fear\n")
    report = build_dataset("imagefolder", tmp_path / "data", "train", tmp_path / "out", tasks=("categorical",))

    stored = {row["id"]: row["image"]["bytes"] for row in load_split(
        str(tmp_path / "out"), "categorical", "train").cast_column("image", datasets.Image(decode=False))}
    assert len(bloated) > 2 * MAX_METADATA_BYTES and len(stored["bloated"]) < 10_000
    assert Image.open(io.BytesIO(stored["bloated"])).format == "PNG"  # lossless: same pixels, no text
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored["bloated"]))), np.asarray(Image.open(io.BytesIO(bloated))))
    assert "comment" not in Image.open(io.BytesIO(stored["bloated"])).info
    assert stored["plain"] == (folder / "plain.png").read_bytes()
    assert report.notes == {"image file with over 1 MiB of metadata (re-encoded without it)": 1, MESSAGES_LEFT_OUT: 1}
    assert sum(path.stat().st_size for path in (tmp_path / "out").rglob("*.parquet")) < 100_000


def test_an_oversized_clue_or_annotation_is_left_empty_the_image_kept_and_both_counted(tmp_path):
    root = tmp_path / "emoset"
    entries = emoset_tree(root, per_emotion=1)
    clues = json.loads((root / entries[0][2]).read_text())
    (root / entries[0][2]).write_text(json.dumps({**clues, "scene": "s" * (MAX_TEXT_CHARS + 1)}))
    (root / entries[1][2]).write_text(json.dumps({**clues, "scene": "s" * (1 << 20)}))  # a file over 1 MiB
    report = build_dataset("emoset", root, "train", tmp_path / "out", tasks=("categorical",))

    rows = {row["id"]: row["attributes"] for row in load_split(str(tmp_path / "out"), "categorical", "train")}
    assert len(rows) == 8  # every image kept
    assert rows["amusement_00000"]["scene"] is None and rows["amusement_00000"]["object"] == ["dog", "ball"]
    assert rows["anger_00100"]["scene"] is None and rows["anger_00100"]["object"] == []  # the file was not read
    assert report.notes == {
        "scene over 10,000 characters (image kept, scene left empty)": 1,
        "annotation file over 1 MiB (not read; image kept, clues left empty)": 1, MESSAGES_LEFT_OUT: 1,
    }


def test_an_oversized_generated_pair_is_left_out_and_counted(tmp_path):
    root = tmp_path / "emoset"
    entries = emoset_tree(root, per_emotion=1)
    gens = generations_file(tmp_path / "gens.jsonl", [Path(entry[1]).stem for entry in entries], tasks=("reasoning",))
    lines = [json.loads(line) for line in gens.read_text().splitlines()]
    lines[0]["pairs"][0]["answer"] = "a" * (MAX_TEXT_CHARS + 1)
    gens.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = build_dataset("emoset", root, "train", tmp_path / "out", generations=gens, tasks=("reasoning",))
    assert report.rows["reasoning"] == 2 * 8 - 1
    assert report.skipped == {"generated question or answer over 10,000 characters (pair left out)": 1}


def test_a_file_name_that_is_not_utf8_is_skipped_and_counted(tmp_path, capsys):
    folder = tmp_path / "fi" / "emotion_dataset" / "awe"
    save_image(folder / "plain.jpg")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"), "wb") as handle:  # Latin-1, as old archives name
        handle.write((folder / "plain.jpg").read_bytes())
    out = tmp_path / "out"
    assert main(["data", "build", "--source", "fi", "--root", str(tmp_path / "fi"), "--split", "all", "--out", str(out)]) == 0
    assert "1  file name or label not valid UTF-8" in capsys.readouterr().out
    report = json.loads((out / "build_report.json").read_text())["train"]  # `all`, written as datasets' `train`
    assert report["records"] == 1 and report["examples"]["file name or label not valid UTF-8"] == [
        f"{folder}/caf\\xe9.jpg"]


def test_a_disk_that_fills_up_during_a_build_is_one_sentence_and_exit_2(tmp_path):
    """Simulated by a file-size limit (RLIMIT_FSIZE, `ulimit -f`) in the child: its writes past the limit fail with
    EFBIG, as a full disk's fail with ENOSPC (Python ignores SIGXFSZ, so the write fails instead of killing it); the
    real disk is never filled. The limit lets the manifests through and stops the first Arrow shard."""
    root = tmp_path / "emoset"
    emoset_tree(root, per_emotion=4)
    rng = np.random.default_rng(0)
    for path in (root / "image").rglob("*.jpg"):  # noise: 32 images of about 12 KB
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    limit = 64 * 1024

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "emovit", "data", "build", "--source", "emoset", "--root", str(root),
                           "--out", str(tmp_path / "out")], cwd=REPO, env=env, preexec_fn=limited,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after datasets' progress bars
    assert line.startswith(f"emovit data: {tmp_path / 'out'}: the build ran out of space (File too large)")
    assert not (tmp_path / "out").exists()  # the folder it created is removed with its work files


def _image_column_bytes(folder: Path) -> int:
    """Bytes the Parquet files of `folder` spend on image bytes (their `*.bytes` column chunks)."""
    total = 0
    for shard in folder.glob("*.parquet"):
        footer = pq.read_metadata(shard)
        for group in range(footer.num_row_groups):
            for column in range(footer.num_columns):
                chunk = footer.row_group(group).column(column)
                total += chunk.total_compressed_size if chunk.path_in_schema.endswith("bytes") else 0
    return total


def test_an_images_rows_share_its_bytes_and_messages_is_written_only_when_asked_or_multi_turn(tmp_path):
    root = tmp_path / "emoset"
    entries = emoset_tree(root, per_emotion=2)
    rng = np.random.default_rng(1)
    for _, image, _ in entries:  # incompressible 8 KB JPEGs, so that image bytes dominate
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(root / image, quality=95)
    source_bytes = sum((root / image).stat().st_size for _, image, _ in entries)
    gens = generations_file(tmp_path / "gens.jsonl", [Path(entry[1]).stem for entry in entries])

    every = build_dataset("emoset", root, "train", tmp_path / "every", generations=gens)
    assert every.rows["all"] == 16 * 5 and every.rows["messages"] == 16  # 1 + 2 + 2 rows per image
    assert source_bytes < _image_column_bytes(tmp_path / "every" / "all") < 1.05 * source_bytes  # not 5x
    assert _image_column_bytes(tmp_path / "every" / "messages") < 1.05 * source_bytes

    categorical = build_dataset("emoset", root, "train", tmp_path / "categorical", tasks=("categorical",))
    assert "messages" not in categorical.rows and sorted(p.name for p in (tmp_path / "categorical").iterdir()) == [
        "README.md", "build_report.json", "categorical"]
    with pytest.raises(EmoVITInputError, match="no config 'messages' \\(build with --messages to write it\\)"):
        load_split(str(tmp_path / "categorical"), "messages", "train")
    asked = build_dataset("emoset", root, "train", tmp_path / "asked", tasks=("categorical",), messages=True)
    assert asked.rows["messages"] == 16 and load_split(str(tmp_path / "asked"), "messages", "train",
                                                       required=("images", "messages")).num_rows == 16
    declined = build_dataset("emoset", root, "train", tmp_path / "declined", generations=gens, messages=False)
    assert "messages" not in declined.rows and not (tmp_path / "declined" / "messages").exists()


@pytest.mark.parametrize("kept", [0.5, 0.99])
def test_the_builds_scaled_jpeg_check_refuses_a_file_cut_short_as_a_full_decode_does(tmp_path, kept):
    """`data build` checks a JPEG by decoding it at 1/8 scale (`open_image(check_only=True)`): libjpeg still reads
    every entropy-coded byte, so a file cut anywhere fails as it does at full size."""
    from modeling_emovit.image_utils import InvalidImageError, open_image

    pixels = np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    whole = buffer.getvalue()
    assert open_image(whole, check_only=True).size == (16, 12)  # decoded, at 1/8 scale
    for check_only in (False, True):
        with pytest.raises(InvalidImageError, match="truncated"):
            open_image(whole[: int(len(whole) * kept)], check_only=check_only)
