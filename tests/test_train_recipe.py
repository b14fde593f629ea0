"""recipes/sft.py as a specification: EmoVIT's freezing policy, the answer-only labels, learning, LoRA, resume,
the vision-feature cache, a tiny LLaVA through TRL's own collator, the label space the data declares written into
the trained config, and clear messages for bad input."""

import json
import logging

import pytest
import torch
from huggingface_hub import ModelCard
from dataset_trees import config_folder, png_bytes
from train_helpers import COLOURS, TINY_RECIPE, run_sft, save_tiny_emovit, save_tiny_llava, write_dataset

from emovit.training import sft
from modeling_emovit import IGNORE_INDEX, EmoVITInputError

FAST = ["--model_name_or_path", "tiny-random", "--disable_tqdm", "true", "--save_strategy", "no", "--logging_steps", "1", "--per_device_train_batch_size", "4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), rows=16)


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    """The learnable set with `emotion` / `label_space` columns naming a space that is not built in ("colours")."""
    return write_dataset(tmp_path_factory.mktemp("colour-data"), rows=16, label_space="colours")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return save_tiny_emovit(tmp_path_factory.mktemp("base"))


def train(*args):
    argv = ["--config", str(TINY_RECIPE), *FAST, *map(str, args)]
    return sft.train(*sft.parse_recipe(argv))


def state_dict(folder):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def logged_losses(folder):
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def test_only_ln_vision_qformer_query_tokens_and_projection_change(data, base, tmp_path):
    train("--model_name_or_path", base, "--dataset_name", data, "--output_dir", tmp_path, "--max_steps", 2)
    before, after = state_dict(base), state_dict(tmp_path)
    trained = ("qformer.", "query_tokens", "language_projection.", "vision_model.post_layernorm.")
    for name, tensor in before.items():
        if name.startswith(trained):
            continue
        assert torch.equal(tensor, after[name]), f"frozen weight {name} changed"
    changed = {name.rsplit(".", 1)[0] if name.startswith("vision_model.") else name.split(".")[0]
               for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"qformer", "query_tokens", "language_projection", "vision_model.post_layernorm"}


def test_labels_are_exactly_the_answer_tokens_and_the_qformer_sees_only_the_instruction(data):
    from datasets import load_dataset

    from emovit.training.collator import EmoVITCollator
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.testing import tiny_emovit

    model, processor = tiny_emovit()
    rows = list(load_dataset(str(data), "categorical", split="train").select(range(3)))
    batch = EmoVITCollator(backbone_adapter(model, processor))(rows)
    for row, input_ids, labels, qformer_ids in zip(rows, batch["input_ids"], batch["labels"], batch["qformer_input_ids"]):
        answer = labels[labels != IGNORE_INDEX]
        assert processor.tokenizer.decode(answer) == row["completion"] + processor.tokenizer.eos_token
        assert torch.equal(input_ids[labels != IGNORE_INDEX], answer)  # labels sit on the answer positions
        instruction_only = processor.qformer_tokenizer(row["prompt"])["input_ids"]
        assert qformer_ids[qformer_ids != processor.qformer_tokenizer.pad_token_id].tolist() == instruction_only


def test_loss_falls_on_a_small_learnable_set(data, tmp_path):
    # "small" (hidden 128): the smallest size that learns with the ViT and LM frozen (measured on the 8-class task)
    train("--model_name_or_path", "small-random", "--dataset_name", data, "--output_dir", tmp_path, "--max_steps", 12)
    losses = logged_losses(tmp_path)
    assert sum(losses[-3:]) / 3 < 0.95 * sum(losses[:3]) / 3


def test_run_writes_train_results_and_a_folder_the_auto_classes_load(data, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from emovit.training.collator import EmoVITCollator
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.testing import tiny_emovit

    train("--dataset_name", data, "--output_dir", tmp_path, "--max_steps", 1, "--per_device_train_batch_size", 16)
    results = json.loads((tmp_path / "train_results.json").read_text())
    assert results["train_samples"] == 16  # one step of one batch: every row
    assert results["train_samples_per_second"] == pytest.approx(16 / results["train_runtime"], rel=0.02)
    rows = list(__import__("datasets").load_dataset(str(data), "categorical", split="train"))
    text_tokens = int(EmoVITCollator(backbone_adapter(*tiny_emovit()))(rows)["attention_mask"].sum())
    assert results["num_input_tokens_seen"] == text_tokens  # the LM's non-padding tokens, not pixel values
    model = AutoModelForImageTextToText.from_pretrained(tmp_path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(model).__name__ == "EmoVITForConditionalGeneration"
    assert processor.num_query_tokens == model.config.num_query_tokens


def test_resume_from_checkpoint_continues_at_the_next_step(data, base, tmp_path):
    common = ["--model_name_or_path", base, "--dataset_name", data, "--output_dir", tmp_path, "--save_strategy", "steps", "--save_steps", 2]
    train(*common, "--max_steps", 2)
    train(*common, "--max_steps", 4, "--resume_from_checkpoint", tmp_path / "checkpoint-2")
    history = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3, 4]


@pytest.mark.parametrize("damage", ["only config.json", "weights cut short"])
def test_resume_true_falls_back_to_the_newest_complete_checkpoint(damage, data, base, tmp_path, caplog):
    """A run killed while saving checkpoint-4 (as Trainer._save_checkpoint writes: weights, then trainer_state.json):
    `resume_from_checkpoint: true` resumes checkpoint-2 and says why; naming checkpoint-4 is one sentence naming the
    damaged file."""
    common = ["--model_name_or_path", base, "--dataset_name", data, "--output_dir", tmp_path, "--save_strategy", "steps",
              "--save_steps", 2]
    train(*common, "--max_steps", 4)
    newest = tmp_path / "checkpoint-4"
    if damage == "only config.json":
        for path in newest.iterdir():
            if path.name != "config.json":
                path.unlink() if path.is_file() else __import__("shutil").rmtree(path)
        expected = f"{newest / 'trainer_state.json'} is missing"
    else:
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        expected = f"{weights} is cut short or damaged"
    with pytest.raises(EmoVITInputError, match="resume_from_checkpoint .*checkpoint-4: " + expected):
        train(*common, "--max_steps", 6, "--resume_from_checkpoint", newest)
    caplog.set_level("WARNING")
    train(*common, "--max_steps", 6, "--resume_from_checkpoint", "true")
    assert f"Not resuming from checkpoint-4: {expected}" in caplog.text
    history = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3, 4, 5, 6]  # steps 3-4 trained again


def test_lora_output_loads_by_itself_and_merged_with_the_trained_logits(colour_data, base, tmp_path, monkeypatch):
    """train -> adapter folder and merged folder -> each loads through the Auto classes (no package code) -> the
    logits of the model still in memory after training."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from emovit.training.trainer import EmoVITSFTTrainer
    from modeling_emovit.loading import load_model_and_processor

    _, processor = model_and_processor = load_model_and_processor(str(base))
    batch = _one_batch(model_and_processor, colour_data)
    in_memory = {}
    train_only = EmoVITSFTTrainer.train

    def train_and_keep_logits(self, *args, **kwargs):
        result = train_only(self, *args, **kwargs)
        with torch.no_grad():
            in_memory["logits"] = self.model.eval()(**batch).logits
        return result

    monkeypatch.setattr(EmoVITSFTTrainer, "train", train_and_keep_logits)
    train("--model_name_or_path", base, "--dataset_name", colour_data, "--output_dir", tmp_path, "--max_steps", 3,
          "--use_peft", "true", "--lora_r", 4, "--learning_rate", "1e-2", "--merge_adapter", "true")

    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base.resolve())
    assert not (tmp_path / "model.safetensors").exists()
    plain = load_model_and_processor(str(base))[0].eval()
    for folder in (tmp_path, tmp_path / "merged"):  # the adapter (transformers' PEFT integration), the merged model
        model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
        assert AutoProcessor.from_pretrained(folder, trust_remote_code=True).num_query_tokens == processor.num_query_tokens
        with torch.no_grad():
            logits = model(**batch).logits
        assert torch.allclose(logits, in_memory["logits"], atol=1e-5), folder
    with torch.no_grad():
        assert not torch.allclose(plain(**batch).logits, in_memory["logits"], atol=1e-3)  # the adapter learned
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model is None  # a local base is never a Hub id
    assert "LoRA adapter" in card.text and "qformer (LoRA)" in card.text
    assert ModelCard.load(tmp_path / "merged" / "README.md").data.library_name == "transformers"
    # the adapter folder has no config.json of its own; the merged model's names the data's label space
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["emotion_label_space"] == "colours"


def test_lora_on_a_tiny_random_base_saves_that_base_for_the_adapter(data, tmp_path):
    train("--dataset_name", data, "--output_dir", tmp_path, "--max_steps", 1, "--use_peft", "true", "--lora_r", 2)
    adapter = json.loads((tmp_path / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((tmp_path / "base").resolve())
    assert (tmp_path / "base" / "config.json").is_file() and (tmp_path / "base" / "processor_config.json").is_file()


def _one_batch(model_and_processor, data):
    from datasets import load_dataset

    from emovit.training.collator import EmoVITCollator
    from modeling_emovit.backbone import backbone_adapter

    rows = list(load_dataset(str(data), "categorical", split="train").select(range(2)))
    batch = EmoVITCollator(backbone_adapter(*model_and_processor))(rows)
    batch.pop("labels")
    return batch


def test_vision_feature_cache_gives_the_same_loss(data, base, tmp_path):
    from emovit.cli import main as emovit_main

    cache = tmp_path / "cache"
    assert emovit_main(["train", "cache-features", "--model", str(base), "--dataset", str(data),
                        "--config", "categorical", "--out", str(cache)]) == 0
    common = ["--model_name_or_path", base, "--dataset_name", data, "--max_steps", 3]
    plain = train(*common, "--output_dir", tmp_path / "plain")
    cached = train(*common, "--output_dir", tmp_path / "cached", "--vision_feature_cache", cache)
    assert cached["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)


def test_vision_feature_cache_neither_hashes_the_model_nor_copies_into_the_datasets_cache(data, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from datasets import load_dataset

    from emovit.training.feature_cache import CACHE_INFO, FEATURES_FILE, cache_vision_features
    from modeling_emovit.testing import tiny_emovit

    model, processor = tiny_emovit()
    dataset = load_dataset(str(data), "categorical", split="train")
    datasets_cache = Path(os.environ["HF_DATASETS_CACHE"])
    arrow_files = set(datasets_cache.rglob("*.arrow"))
    pickled = []  # datasets fingerprints a `map` function by pickling what it closes over: a 7B model is tens of GB

    def refuse(module, protocol):
        pickled.append(type(module).__name__)
        raise TypeError("not picklable in this test")

    monkeypatch.setattr(torch.nn.Module, "__reduce_ex__", refuse)
    out = cache_vision_features(model, processor, dataset, tmp_path / "cache")
    monkeypatch.undo()
    assert pickled == []
    assert set(datasets_cache.rglob("*.arrow")) == arrow_files
    assert sorted(path.name for path in out.iterdir()) == sorted([CACHE_INFO, FEATURES_FILE])


def test_tiny_llava_trains_through_the_same_script_with_trls_collator(colour_data, tmp_path, caplog):
    from transformers import pipeline

    llava = save_tiny_llava(tmp_path / "llava")
    with caplog.at_level(logging.WARNING, logger="emovit.training.label_space"):
        metrics = train("--model_name_or_path", llava, "--dataset_name", colour_data, "--output_dir", tmp_path / "out",
                        "--max_steps", 2, "--max_length", "null")
    losses = logged_losses(tmp_path / "out")
    assert len(losses) == 2 and metrics["train_loss"] == pytest.approx(sum(losses) / 2, rel=1e-3)
    before, after = state_dict(llava), state_dict(tmp_path / "out")
    assert any(not torch.equal(before[name], after[name]) for name in before)  # the steps moved the weights
    # A chat-template model's config carries the data's label space too: "colours" is not built in, so its labels
    # are the data's distinct emotions, sorted, and the log says so.
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["emotion_label_space"] == "colours" and config["emotion_labels"] == sorted(COLOURS)
    assert config["id2label"] == {str(i): label for i, label in enumerate(sorted(COLOURS))}
    assert "'colours' is not built in" in caplog.text
    classify = pipeline("image-emotion-classification", model=str(tmp_path / "out"), trust_remote_code=True)
    assert sorted(e["label"] for e in classify(png_image((200, 0, 0)), top_k=10)) == sorted(COLOURS)


@pytest.mark.parametrize("workers", [0, 1])  # 1: the collator runs in a dataloader worker process
def test_undecodable_images_are_skipped_and_counted(workers, tmp_path):
    # unique folder names: datasets' cache keys local folders by name and file listing, not by full path
    data = write_dataset(tmp_path / f"unreadable-{workers}", rows=16, unreadable_rows=(3, 9))
    metrics = train("--dataset_name", data, "--output_dir", tmp_path / "out", "--max_steps", 4,  # one epoch
                    "--dataloader_num_workers", workers)
    assert metrics["skipped_images"] == 2
    assert json.loads((tmp_path / "out" / "train_results.json").read_text())["skipped_images"] == 2


def test_dataset_without_the_required_columns_is_refused(tmp_path):
    data = write_dataset(tmp_path / "no-completion", rows=4, columns=["id", "image", "prompt"])
    with pytest.raises(EmoVITInputError, match="lacks the column.*completion"):
        train("--dataset_name", data, "--output_dir", tmp_path / "out")


def test_empty_dataset_is_refused(tmp_path):
    data = write_dataset(tmp_path / "empty", rows=0)
    with pytest.raises(EmoVITInputError, match="is empty"):
        train("--dataset_name", data, "--output_dir", tmp_path / "out")


def test_missing_dataset_folder_exits_2_with_one_sentence_naming_it(tmp_path):
    missing = tmp_path / "no-such-dataset"
    result = run_sft("--dataset_name", missing, "--output_dir", tmp_path / "out", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"sft: {missing}: no such dataset folder") and message.count(". ") == 0


def test_unknown_recipe_key_is_named_with_its_file(tmp_path):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(TINY_RECIPE.read_text() + "learning_rat: 0.1\n")
    with pytest.raises(EmoVITInputError, match=r"sft\.yaml: unknown recipe key\(s\) learning_rat"):
        sft.parse_recipe(["--config", str(recipe)])


def test_launch_with_fewer_processes_than_asked_is_refused(monkeypatch):
    from trl import SFTConfig

    from emovit.training.launch import check_launch

    args = SFTConfig(output_dir="unused", use_cpu=True, report_to="none")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # what `accelerate launch --cpu --num_processes 2` leaves
    with pytest.raises(EmoVITInputError, match="started one.*cpu_ddp.yaml"):
        check_launch(args)
    monkeypatch.delenv("MASTER_ADDR")
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launcher started 2 ranks but accelerate was set up for 1
    with pytest.raises(EmoVITInputError, match="started 2 process.*accelerate sees 1"):
        check_launch(args)


def test_deepspeed_on_cpu_without_use_cpu_is_refused(monkeypatch):
    from types import SimpleNamespace

    from emovit.training.launch import check_launch

    args = SimpleNamespace(deepspeed="recipes/ds.json", use_cpu=False)
    with pytest.raises(EmoVITInputError, match="needs a launcher"):
        check_launch(args)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(EmoVITInputError, match="use_cpu: true.*DeepSpeed sees 2"):
        check_launch(args)


def test_the_trained_models_card_names_its_base_data_parts_and_settings_and_takes_results(data, tmp_path):
    """The card TRL would write says "fine-tuned version of [None]" for a model built in memory; this one is the
    project's: valid Hub metadata only, what was trained and frozen, the recipe's settings, then eval results."""
    from huggingface_hub import ModelCardData

    from evaluation.model_card import update_model_card

    base = save_tiny_emovit(tmp_path / "base")
    ModelCard.from_template(ModelCardData(base_model="Salesforce/instructblip-vicuna-7b", license="other")).save(base / "README.md")
    out = tmp_path / "out"
    train("--model_name_or_path", base, "--dataset_name", data, "--output_dir", out, "--max_steps", 2)
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "Salesforce/instructblip-vicuna-7b"  # the local base's own base model
    assert card.data.datasets is None  # a local dataset folder is not a Hub id
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-text-to-text"
    assert card.data.license == "other" and "license" not in [str(value) for value in card.data.to_dict().values()]
    text = card.text
    assert str(tmp_path) not in (out / "README.md").read_text() and "None" not in text
    assert ("Trained: `language_projection`, `qformer`, `query_tokens`, `vision_model.post_layernorm`. "
            "Frozen: `language_model`, `vision_model except post_layernorm`.") in text
    assert "| learning_rate | 0.001 |" in text and "| max_steps | 2 |" in text and "16 rows" in text
    assert "trust_remote_code=True" in text and "emovit serve" in text and "@inproceedings{xie2024emovit" in text
    results = {"data": "emovit/emoset", "label_space": "emoset", "config": "categorical", "split": "test",
               "mode": "rank", "metrics": {"accuracy": 0.5, "ece": 0.25}}
    update_model_card(out, [results])
    card = ModelCard.load(out / "README.md")
    assert [r.metric_name for r in card.data.eval_results] == ["Accuracy", "Expected calibration error"]
    assert "| emovit/emoset (emoset) | test | rank | Accuracy | 0.5 |" in card.text
    assert "| learning_rate | 0.001 |" in card.text  # the training section survives the update


def test_a_tracker_that_is_not_installed_is_named_before_data_or_model_load(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed (find_spec answers None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(EmoVITInputError, match=r"report_to names tensorboard, which is not installed.*emovit\[track\]"):
        train("--dataset_name", tmp_path / "no-such-data", "--model_name_or_path", "no-such/model",
              "--output_dir", tmp_path / "out", "--report_to", "tensorboard")


def test_the_7b_recipes_tracker_writes_its_events_once_installed(data, tmp_path):
    """`report_to: tensorboard` as in recipes/emovit-vicuna-7b (tensorboard is in the dev and track extras)."""
    train("--dataset_name", data, "--output_dir", tmp_path, "--max_steps", 1, "--report_to", "tensorboard")
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*"))


def test_emovit_refuses_the_messages_conversations_before_its_weights_load(tmp_path):
    data = config_folder(tmp_path / "chat", "messages", "train", {
        "images": [[{"bytes": png_bytes((200, 0, 0)), "path": None}]],
        "messages": [[{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Feel?"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "Predict emotion: anger"}]}]],
    })
    with pytest.raises(EmoVITInputError, match="trains on prompt/completion rows"):
        train("--dataset_name", data, "--dataset_config", "messages", "--output_dir", tmp_path / "out")


@pytest.mark.parametrize("resume, expected", [
    ("true", "resume_from_checkpoint true: {out} holds no checkpoint-N folder to resume from"),
    ("{out}/checkpoint-7", "resume_from_checkpoint {out}/checkpoint-7: no such checkpoint folder."),
])
def test_resuming_from_a_checkpoint_that_is_not_there_is_one_sentence(resume, expected, data, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--config", str(TINY_RECIPE), *FAST, "--dataset_name", str(data), "--output_dir", str(out),
            "--resume_from_checkpoint", resume.format(out=out)]
    assert sft.main(argv) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.strip().splitlines()[-1].startswith("sft: " + expected.format(out=out))
    assert not out.exists()


def test_a_recipe_value_of_the_wrong_type_is_one_sentence_not_the_usage(tmp_path, capsys):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(TINY_RECIPE.read_text().replace("max_steps: 60", "max_steps: four"))
    assert sft.main(["--config", str(recipe)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"sft: {recipe}: --max_steps/--max-steps: invalid int value: 'four'; see `emovit train sft --help`."]
    assert sft.main(["--config", str(TINY_RECIPE), "--max_steps", "many"]) == 2
    assert capsys.readouterr().err.startswith("sft: the command line: --max_steps/--max-steps: invalid int value")


def png_image(colour):
    from PIL import Image

    return Image.new("RGB", (32, 32), colour)


EKMAN = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]  # Emotion6's labels (modeling_emovit.labels)


def test_training_writes_the_label_space_of_its_data_into_the_config(tmp_path, caplog):
    """Emotion6 rows trained from a Mikels-8 EmoVIT that carries a calibration: the trained config lists Emotion6's
    labels (id2label too), the calibration of the base is gone, and the pipeline offers those labels by default."""
    from transformers import pipeline

    from modeling_emovit.labels import emovit_instruction
    from modeling_emovit.testing import tiny_emovit

    base = tmp_path / "base"
    model, processor = tiny_emovit()
    model.config.emotion_calibration = {"temperature": 0.08, "bias": None, "labels": list(model.config.emotion_labels),
                                        "fitted_on": "emoset (validation, 100 images)"}
    model.save_pretrained(base)
    processor.save_pretrained(base)
    rows = 6
    data = config_folder(tmp_path / "emotion6", "categorical", "train", {
        "id": [f"{i:03d}" for i in range(rows)],
        "image": [{"bytes": png_bytes((40 * i, 0, 0)), "path": None} for i in range(rows)],
        "prompt": [emovit_instruction(EKMAN)] * rows,
        "completion": [f"Predict emotion: {label}" for label in EKMAN],
        "emotion": EKMAN,
        "label_space": ["emotion6"] * rows,
    })
    out = tmp_path / "out"

    with caplog.at_level(logging.WARNING, logger="emovit.training.label_space"):
        train("--model_name_or_path", base, "--dataset_name", data, "--output_dir", out, "--max_steps", 1)

    config = json.loads((out / "config.json").read_text())
    assert config["emotion_label_space"] == "emotion6" and config["emotion_labels"] == EKMAN
    assert config["id2label"] == {str(i): label for i, label in enumerate(EKMAN)}
    assert config["label2id"] == {label: i for i, label in enumerate(EKMAN)}
    assert config.get("emotion_calibration") is None and "calibration (fitted on emoset" in caplog.text
    classify = pipeline("image-emotion-classification", model=str(out), trust_remote_code=True)
    assert sorted(e["label"] for e in classify(png_image((200, 0, 0)), top_k=10)) == EKMAN


def _rows(emotions, spaces=None, label_names=None):
    from datasets import ClassLabel, Dataset

    columns = {"emotion": list(emotions)}
    if spaces is not None:
        columns["label_space"] = list(spaces)
    dataset = Dataset.from_dict(columns)
    if label_names is not None:  # how a build carries its own label list: a `label` ClassLabel over it
        dataset = dataset.add_column("label", [label_names.index(e) for e in emotions]).cast_column(
            "label", ClassLabel(names=label_names))
    return dataset


@pytest.mark.parametrize("emotions, spaces, label_names, name, labels, logged", [
    # a built-in space: all its labels, even those no row uses
    (["joy", "fear"], ["emotion6"] * 2, None, "emotion6", EKMAN, None),
    # a space of the data's own with its label list: that list, in its order
    (["tense", "calm"], ["mood"] * 2, ["tense", "calm", "bored"], "mood", ["tense", "calm", "bored"], None),
    # ... without one: the distinct emotions, sorted as EmoVIT lists candidates
    (["tense", "calm", "tense"], ["mood"] * 3, None, "mood", ["calm", "tense"], "'mood' is not built in"),
    # a mixture: the union, sorted, named by both
    (["awe", "joy"], ["emoset", "emotion6"], None, "emoset+emotion6",
     sorted({"amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness", *EKMAN}),
     "mixes the label spaces emoset, emotion6"),
    # no label_space column: the distinct emotions, no name
    (["sadness", "awe"], None, None, None, ["awe", "sadness"], "no `label_space` column"),
])
def test_the_label_space_the_rows_declare(emotions, spaces, label_names, name, labels, logged, caplog):
    from emovit.training.label_space import training_label_space

    with caplog.at_level(logging.WARNING, logger="emovit.training.label_space"):
        space = training_label_space(_rows(emotions, spaces, label_names), "DATA")

    assert (space.name, list(space.labels)) == (name, labels)
    assert (logged in caplog.text) if logged else caplog.text == ""


def test_rows_without_emotions_keep_the_models_labels_and_emotions_outside_their_space_are_refused(caplog):
    from datasets import Dataset

    from emovit.training.label_space import record_label_space, training_label_space
    from modeling_emovit import EmoVITConfig

    with caplog.at_level(logging.WARNING, logger="emovit.training.label_space"):
        space = training_label_space(Dataset.from_dict({"prompt": ["p"], "completion": ["c"]}), "DATA")
    assert space is None and "DATA: no readable `emotion` column" in caplog.text
    config = EmoVITConfig()
    record_label_space(config, space)
    assert config.emotion_labels == list(config.id2label.values()) == ["amusement", "anger", "awe", "contentment",
                                                                       "disgust", "excitement", "fear", "sadness"]
    with pytest.raises(EmoVITInputError, match=r"DATA: emotions \['awe'\] are not labels of the 'emotion6' label space"):
        training_label_space(_rows(["joy", "awe"], ["emotion6"] * 2), "DATA")


def test_the_model_records_its_training_images_and_eval_counts_the_test_images_it_saw(data, tmp_path):
    """Training writes the fingerprints of its images (the first 8 bytes of each image's SHA-256, by hashlib here);
    a test split holding two of those images byte for byte (re-posted copies) is reported as such."""
    import hashlib

    import numpy as np

    from emovit.cli import main as emovit

    train("--dataset_name", data, "--output_dir", tmp_path / "model", "--max_steps", 1)
    stored = np.load(tmp_path / "model" / "training_images.npy", allow_pickle=False)
    expected = sorted({int(hashlib.sha256(png_bytes(colour, size=32)).hexdigest()[:16], 16) for colour in COLOURS.values()})
    assert stored.dtype == np.uint64 and stored.tolist() == expected  # 16 rows, 4 distinct images
    assert "4 distinct images, their fingerprints in `training_images.npy`" in (tmp_path / "model" / "README.md").read_text()

    seen = {"t0": png_bytes(COLOURS["awe"], size=32), "t3": png_bytes(COLOURS["anger"], size=32)}
    images = [seen.get(f"t{i}") or png_bytes((17 * i, 40, 90), size=32) for i in range(6)]
    test = config_folder(tmp_path / "overlap-test", "categorical", "test", {
        "id": [f"t{i}" for i in range(6)], "image": [{"bytes": image, "path": None} for image in images],
        "emotion": ["awe", "anger", "amusement", "anger", "sadness", "awe"], "label_space": ["emoset"] * 6})
    assert emovit(["eval", "--model", str(tmp_path / "model"), "--data", str(test), "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["seen_in_training"] == {"count": 2, "of": 6, "ids": ["t0", "t3"]}
    card = (tmp_path / "model" / "README.md").read_text()
    assert "## Test images seen in training" in card and "overlap-test (test): 2 of 6 images" in card
