"""`emovit eval` for emotion classification: rank and generate modes, held-out label spaces, resume, card, bad input."""

import json
from pathlib import Path

import pytest
from dataset_trees import config_folder, png_bytes
from train_helpers import damaged_copy, save_tiny_emovit, save_tiny_llava
from PIL import Image as PILImage

from emovit.cli import main

EMOTION6 = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]  # the six folders; neutral is never gold


def write_emotion_split(folder: Path, emotions, label_space="emotion6", split="test") -> Path:
    """What `load_dataset(folder, "categorical")` reads: Parquet + a README `configs` block, one image per row."""
    return config_folder(folder, "categorical", split, {
        "id": [f"img{i:03d}" for i in range(len(emotions))],
        "image": [{"bytes": png_bytes((37 * i % 256, 91 * i % 256, 53 * i % 256)), "path": None}
                  for i in range(len(emotions))],
        "emotion": list(emotions),
        "label_space": [label_space] * len(emotions),
    })


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny EmoVIT configured on the 8 Mikels emotions (EmoSet's), saved with its processor and code."""
    return save_tiny_emovit(tmp_path_factory.mktemp("model"), seed=0)


@pytest.fixture(scope="module")
def emotion6_data(tmp_path_factory) -> Path:
    """Held-out data: Emotion6's label space differs from the model's training labels."""
    return write_emotion_split(tmp_path_factory.mktemp("emotion6"), EMOTION6 + ["joy", "fear", "sadness", "anger"])


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def eval_args(model_dir, data, out, *extra):
    return ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(out), *extra]


def test_rank_mode_scores_every_candidate_of_a_held_out_label_space(model_dir, emotion6_data, tmp_path):
    out = tmp_path / "rank"
    assert main(eval_args(model_dir, emotion6_data, out, "--mode", "rank", "--batch-size", "4")) == 0

    rows = read_rows(out)
    results = json.loads((out / "results.json").read_text())
    assert len(rows) == 10 and {row["reference"] for row in rows} == set(EMOTION6)
    for row in rows:
        assert list(row["scores"]) == EMOTION6  # Emotion6's candidates, not the model's Mikels labels
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["prediction"] == max(row["scores"], key=row["scores"].get)
    metrics = results["metrics"]
    assert results["label_space"] == "emotion6" and results["mode"] == "rank"
    assert metrics["unmapped_rate"] == 0.0
    assert metrics["accuracy"] == pytest.approx(sum(r["prediction"] == r["reference"] for r in rows) / 10)
    assert {"macro_f1", "weighted_f1", "polarity_accuracy", "ece", "top_3_accuracy"} <= set(metrics)
    assert results["confusion_matrix"]["labels"] == EMOTION6
    assert sum(map(sum, results["confusion_matrix"]["counts"])) == 10
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rank_scores_equal_answer_log_likelihoods_of_separate_forward_passes():
    """Encoding each image once and batching the candidates changes nothing (Llama, OPT and T5 LMs)."""
    import torch

    from dataset_builder.emotions import get_label_space
    from dataset_builder.instructions import categorical_answer, categorical_instruction
    from evaluation.predictors import RankPredictor
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.testing import tiny_emovit

    space = get_label_space("emotionroi")
    prompt = categorical_instruction(space.labels)
    images = [PILImage.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 90, 200))]
    for text_model in ("llama", "opt", "t5"):
        model, processor = tiny_emovit(text_model, seed=1)
        batched = RankPredictor(backbone_adapter(model, processor), space).answer_log_likelihoods(images, prompt)
        with torch.no_grad():
            separate = torch.tensor([[
                -model(**(inputs := processor.build_training_inputs([image], [prompt], [categorical_answer(label)]))).loss
                * (inputs["labels"] != -100).sum()
                for label in space.labels] for image in images])
        torch.testing.assert_close(batched, separate, atol=1e-4, rtol=1e-4)


def test_rank_encodes_each_image_once_whatever_the_number_of_candidates():
    from dataset_builder.emotions import get_label_space
    from dataset_builder.instructions import categorical_instruction
    from evaluation.predictors import RankPredictor
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.testing import tiny_emovit

    space = get_label_space("emotion6")
    model, processor = tiny_emovit("llama", seed=2)
    encoded = []
    image_processor = processor.image_processor
    processor.image_processor = lambda images, **kwargs: encoded.extend(images) or image_processor(images, **kwargs)
    images = [PILImage.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 90, 200))]

    scores = RankPredictor(backbone_adapter(model, processor), space).answer_log_likelihoods(
        images, categorical_instruction(space.labels))
    assert scores.shape == (2, len(space.labels)) and encoded == images  # not once more per candidate


def test_a_plain_instructblip_folder_is_loaded_once_as_emovit(tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    from evaluation.harness import load_adapter
    from modeling_emovit import EmoVITForConditionalGeneration, EmoVITProcessor
    from modeling_emovit.testing import tiny_emovit

    model, processor = tiny_emovit("llama", instructblip=True)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = []
    original = PreTrainedModel.from_pretrained.__func__
    monkeypatch.setattr(PreTrainedModel, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: loaded.append(cls) or original(cls, *args, **kwargs)))

    adapter = load_adapter(str(tmp_path))
    assert loaded == [EmoVITForConditionalGeneration]  # read once, by EmoVIT's classes
    assert isinstance(adapter.model, EmoVITForConditionalGeneration) and isinstance(adapter.processor, EmoVITProcessor)
    assert adapter.family == "instructblip"


def test_generate_mode_parses_answers_and_counts_unmapped_ones(model_dir, emotion6_data, tmp_path):
    from datasets import load_dataset

    from dataset_builder.emotions import normalize_emotion
    from dataset_builder.instructions import categorical_instruction
    from evaluation.harness import load_adapter

    out = tmp_path / "generate"
    assert main(eval_args(model_dir, emotion6_data, out, "--mode", "generate", "--max-new-tokens", "6")) == 0

    rows = read_rows(out)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert all(row["scores"] is None for row in rows)
    assert [row["prediction"] for row in rows] == [normalize_emotion(row["answer"], "emotion6") for row in rows]
    # the recorded answers are the model's greedy answers to the instruction listing Emotion6's labels
    split = load_dataset(str(emotion6_data), "categorical", split="test").select(range(2))
    answers = {row["id"]: row["answer"] for row in rows}
    asked = [categorical_instruction(EMOTION6)] * 2
    assert load_adapter(str(model_dir)).generate(list(split["image"]), asked, 6) == [answers[i] for i in split["id"]]
    assert metrics["unmapped_rate"] == pytest.approx(sum(row["prediction"] is None for row in rows) / 10)
    assert "ece" not in metrics  # greedy answers carry no per-label probabilities


def test_paraphrased_instructions_report_instruction_sensitivity(model_dir, emotion6_data, tmp_path):
    out = tmp_path / "paraphrases"
    assert main(eval_args(model_dir, emotion6_data, out, "--paraphrases", "3")) == 0

    rows = read_rows(out)
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert sorted({row["paraphrase"] for row in rows}) == [0, 1, 2] and len(rows) == 30
    per_paraphrase = list(metrics["accuracy_per_paraphrase"].values())
    mean = sum(per_paraphrase) / 3
    spread = (sum((a - mean) ** 2 for a in per_paraphrase) / 3) ** 0.5
    assert metrics["instruction_sensitivity"] == pytest.approx(spread / mean if mean else 0.0)


def test_an_interrupted_run_resumes_without_recomputing_finished_predictions(model_dir, emotion6_data, tmp_path, monkeypatch):
    from evaluation import predictors

    out = tmp_path / "resume"
    assert main(eval_args(model_dir, emotion6_data, out)) == 0
    complete = read_rows(out)
    first_results = json.loads((out / "results.json").read_text())
    lines = (out / "predictions.jsonl").read_text().splitlines()
    (out / "predictions.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:25])  # killed mid-line

    predicted = []
    original = predictors.RankPredictor.predict
    monkeypatch.setattr(predictors.RankPredictor, "predict",
                        lambda self, images, prompt: predicted.extend(images) or original(self, images, prompt))
    assert main(eval_args(model_dir, emotion6_data, out)) == 0

    results = json.loads((out / "results.json").read_text())
    assert len(predicted) == 6  # rows 5..10, including the cut one
    assert results["progress"]["resumed"] == 4 and results["progress"]["partial_lines_dropped"] == 1
    resumed = {row["id"]: row for row in read_rows(out)}
    assert len(resumed) == 10
    for row in complete:
        assert resumed[row["id"]]["prediction"] == row["prediction"]
        assert resumed[row["id"]]["scores"] == pytest.approx(row["scores"], abs=1e-5)
    assert results["metrics"]["accuracy"] == first_results["metrics"]["accuracy"]


def test_resuming_into_an_output_of_another_run_is_refused(model_dir, emotion6_data, tmp_path, capsys):
    out = tmp_path / "mixed"
    assert main(eval_args(model_dir, emotion6_data, out, "--mode", "rank")) == 0
    assert main(eval_args(model_dir, emotion6_data, out, "--mode", "generate")) == 2
    assert "holds predictions of another run (different mode)" in capsys.readouterr().err


def test_eval_writes_a_model_index_into_the_model_card(model_dir, emotion6_data, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "card"
    args = eval_args(model_dir, emotion6_data, out, "--base-model", "Salesforce/instructblip-vicuna-7b",
                     "--training-data", "emovit/emoset-instruct")
    assert main(args) == 0
    assert main(eval_args(model_dir, emotion6_data, tmp_path / "card-generate", "--mode", "generate",
                          "--max-new-tokens", "4")) == 0

    card = ModelCard.load(model_dir / "README.md")
    accuracy = json.loads((out / "results.json").read_text())["metrics"]["accuracy"]
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-text-to-text"
    assert card.data.base_model == "Salesforce/instructblip-vicuna-7b"
    assert card.data.datasets == ["emovit/emoset-instruct"]
    by_key = {(r.metric_config, r.metric_name): r for r in card.data.eval_results}
    assert by_key[("rank", "Accuracy")].metric_value == pytest.approx(accuracy, abs=1e-4)
    assert by_key[("rank", "Accuracy")].dataset_args == {"label_space": "emotion6"}
    assert ("generate", "Accuracy") in by_key and ("rank", "Expected calibration error") in by_key
    assert f"| {emotion6_data.name} (emotion6) | test | rank | Accuracy |" in card.text


def test_eval_shows_progress_in_both_modes(model_dir, emotion6_data, tmp_path, capsys):
    for mode in ("rank", "generate"):
        assert main(eval_args(model_dir, emotion6_data, tmp_path / mode, "--mode", mode, "--max-new-tokens", "2")) == 0
        progress = capsys.readouterr().err
        assert f"eval ({mode})" in progress and "10/10" in progress


def test_confusion_matrix_shows_counts_and_row_shares_with_colour_bars_and_readable_digits(tmp_path):
    from matplotlib.colors import to_rgb

    from evaluation.plots import plot_confusion_matrix

    matrix = [[9, 1, 0], [2, 6, 2], [0, 0, 0]]  # the last class never occurs: its row of shares stays 0
    figure = plot_confusion_matrix(matrix, ["awe", "fear", "joy"], tmp_path / "cm.png", "m on d, split test: s labels, rank mode")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    assert figure._suptitle.get_text() == "m on d, split test: s labels, rank mode"
    counts, shares = figure.axes[0], figure.axes[1]
    assert len(figure.axes) == 4  # two panels, each with its colour bar
    assert [text.get_text() for text in counts.texts[:3]] == ["9", "1", "0"]
    assert [text.get_text() for text in shares.texts[3:6]] == ["20%", "60%", "20%"]
    for axes in (counts, shares):
        image = axes.images[0]
        for text in axes.texts:
            column, row = (round(value) for value in text.get_position())
            red, green, blue, _ = image.cmap(image.norm(image.get_array()[row, column]))
            background_is_dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.5
            assert to_rgb(text.get_color()) == ((1.0, 1.0, 1.0) if background_is_dark else (0.0, 0.0, 0.0))
    assert to_rgb(counts.texts[0].get_color()) == (1.0, 1.0, 1.0)  # 9 of 10: a dark cell, white digits


@pytest.mark.parametrize("base_card", [None, "Salesforce/instructblip-vicuna-7b"])
def test_a_card_written_with_local_base_and_data_folders_holds_no_local_path(base_card, tmp_path):
    from huggingface_hub import ModelCard, ModelCardData

    from evaluation.model_card import update_model_card

    base, data, model = tmp_path / "demo-output" / "base", tmp_path / "demo-output" / "data", tmp_path / "model"
    for folder in (base, data, model):
        folder.mkdir(parents=True)
    if base_card:
        ModelCard.from_template(ModelCardData(base_model=base_card)).save(base / "README.md")

    update_model_card(model, base_model=str(base), datasets=str(data))
    text = (model / "README.md").read_text()
    card = ModelCard.load(model / "README.md")
    assert str(tmp_path) not in text and "demo-output" not in text
    assert card.data.base_model == base_card  # the base folder's own base model, if its card names one
    assert card.data.datasets is None  # a local folder is not a Hub dataset id


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("labels outside the label space", "emotions ['joy', 'surprise'] are not labels of the 'emoset' label space"),
        ("empty split", "split 'test' of config 'categorical' is empty"),
        ("model without processor", "the model folder has no processor"),
        ("too many paraphrases", "--paraphrases must be between 1 and 5"),
        ("model without a chat template", "has no chat template and is not EmoVIT's, so there is no way to put EmoVIT's"),
    ],
)
def test_bad_input_gets_one_clear_sentence(problem, expected, model_dir, emotion6_data, tmp_path, capsys):
    model, data, extra = model_dir, emotion6_data, []
    if problem == "labels outside the label space":
        extra = ["--label-space", "emoset"]
    elif problem == "empty split":
        data = write_emotion_split(tmp_path / "empty", [])
    elif problem == "model without processor":
        model = tmp_path / "bare"
        model.mkdir()
        (model / "config.json").write_text((model_dir / "config.json").read_text())
    elif problem == "model without a chat template":
        model = save_tiny_llava(tmp_path / "llava")  # e.g. trained by recipes/llava-1.5-7b, saved without its template
        (model / "chat_template.jinja").unlink()
    else:
        extra = ["--paraphrases", "6"]

    assert main(eval_args(model, data, tmp_path / "out", *extra)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
    assert error.startswith("emovit eval: ") and expected in error


def test_accelerate_launch_shards_the_data_over_two_processes_and_gathers_every_prediction(model_dir, emotion6_data, tmp_path):
    import os
    import subprocess
    import sys

    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert main(eval_args(model_dir, emotion6_data, single, "--batch-size", "2")) == 0
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "emovit",
              *eval_args(model_dir, emotion6_data, sharded, "--batch-size", "2")]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]

    results = json.loads((sharded / "results.json").read_text())
    assert results["num_processes"] == 2
    one = {row["id"]: row["prediction"] for row in read_rows(single)}
    assert {row["id"]: row["prediction"] for row in read_rows(sharded)} == one  # 10 rows, none twice
    assert len(read_rows(sharded)) == 10


def test_an_undecodable_image_is_skipped_and_counted_and_the_rest_is_scored(model_dir, tmp_path, capsys):
    emotions = (EMOTION6 * 2)[:10]
    data = config_folder(tmp_path / "with-an-undecodable-image", "categorical", "test", {
        "id": [f"img{i:03d}" for i in range(10)],
        "image": [{"bytes": b"not an image" if i == 3 else png_bytes((20 * i, 90, 40)), "path": None}
                  for i in range(10)],
        "emotion": emotions,
        "label_space": ["emotion6"] * 10,
    })

    out = tmp_path / "out"
    assert main(eval_args(model_dir, data, out, "--mode", "generate", "--max-new-tokens", "4")) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["skipped_images"] == {"count": 1, "ids": ["img003"]} and results["num_examples"] == 10
    assert sorted(row["id"] for row in read_rows(out)) == [f"img{i:03d}" for i in range(10) if i != 3]
    printed = capsys.readouterr().out
    assert "1 undecodable images skipped" in printed
    unmapped = results["metrics"]["unmapped_rate"]
    assert f"accuracy {results['metrics']['accuracy']:.4f} (unmapped answers {unmapped:.1%})" in printed


def test_predictions_of_another_label_space_without_their_run_json_are_refused_before_anything_is_written(
        model_dir, emotion6_data, tmp_path, capsys):
    """predictions.jsonl copied from an EmoSet run into a fresh --out: eval used to trip over the foreign rows and
    leave a run.json beside them, so every later run failed too."""
    out = tmp_path / "out"
    out.mkdir()
    foreign = {"id": "img000", "paraphrase": 0, "reference": "awe", "prediction": "awe", "answer": "Predict emotion: awe",
               "scores": {"amusement": 0.1, "awe": 0.9}, "log_likelihoods": {"amusement": -3.0, "awe": -1.0}}
    (out / "predictions.jsonl").write_text(json.dumps(foreign) + "\n")
    assert main(eval_args(model_dir, emotion6_data, out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"emovit eval: {out / 'predictions.jsonl'}: predictions without the run.json that says which run made them "
        "(copied from elsewhere?), so they cannot be resumed; pass a new --out or delete the file.")
    assert sorted(path.name for path in out.iterdir()) == ["predictions.jsonl"]


def test_a_garbled_run_json_is_refused_and_its_predictions_kept(model_dir, emotion6_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(eval_args(model_dir, emotion6_data, out)) == 0
    (out / "run.json").write_text('{"model": "half a fi')
    before = (out / "predictions.jsonl").read_bytes()
    assert main(eval_args(model_dir, emotion6_data, out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"emovit eval: {out / 'run.json'}: garbled, so the predictions beside it cannot be matched to this run; "
        "delete the file (or the folder) or pass a new --out.")
    assert (out / "predictions.jsonl").read_bytes() == before


def test_a_garbled_prediction_line_is_dropped_counted_and_predicted_again(model_dir, emotion6_data, tmp_path):
    out = tmp_path / "out"
    assert main(eval_args(model_dir, emotion6_data, out)) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    lines[2] = "{\"id\": \"img002\", garbled by a disk error"
    (out / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    assert main(eval_args(model_dir, emotion6_data, out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["progress"]["partial_lines_dropped"] == 1 and results["progress"]["computed"] == 1
    from dataset_builder.jsonl import read_resumable

    kept = read_resumable(out / "predictions.jsonl")  # the garbled line stays, counted on every resume
    assert kept.garbled_lines == 1 and sorted(row["id"] for row in kept.rows) == [f"img{i:03d}" for i in range(10)]


@pytest.mark.parametrize("damage", ["truncated weights", "config field of the wrong type",
                                    "config without text_config", "empty Q-Former tokenizer"])
def test_a_model_that_fails_to_load_writes_nothing_to_out(damage, model_dir, emotion6_data, tmp_path, capsys):
    broken = damaged_copy(model_dir, tmp_path / "broken", damage)
    assert main(eval_args(broken, emotion6_data, tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.strip().splitlines()[-1].startswith(f"emovit eval: {broken}")
    if damage == "empty Q-Former tokenizer":  # not the language model's tokenizer, silently
        assert error.strip().endswith(f"{broken / 'qformer_tokenizer' / 'tokenizer.json'}: empty, so the Q-Former's "
                                      "tokenizer cannot load; copy that folder again from where the model came from.")
    assert not (tmp_path / "out").exists()
