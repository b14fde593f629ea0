"""The data and recipes as TRL's stock vision-language path reads them: the `messages` config through TRL's own
collator and `trl sft`, with no project code, and which recipes `trl sft` accepts (as recipes/README.md says)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_trees import emoset_tree, generations_file
from train_helpers import save_tiny_llava

from dataset_builder.build import build_dataset

REPO = Path(__file__).resolve().parents[1]
LLAVA_RECIPE = REPO / "recipes" / "llava-1.5-7b" / "sft.yaml"
LLAVA_TEMPLATE = REPO / "recipes" / "llava-1.5-7b" / "chat_template.jinja"
# What the 7B LLaVA recipe needs changed to run on a tiny model on CPU in seconds.
CPU_OVERRIDES = ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--max_steps", "2",
                 "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--save_strategy", "no",
                 "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`emovit data build` output with categorical, conversation and reasoning rows for 8 images."""
    root = tmp_path_factory.mktemp("emoset")
    entries = emoset_tree(root, per_emotion=1)
    generations = generations_file(root / "gens.jsonl", [entry[1].split("/")[-1][:-4] for entry in entries], pairs=1)
    out = tmp_path_factory.mktemp("built")
    build_dataset("emoset", root, "train", out, generations=generations)
    return out


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


def test_trls_own_collator_trains_on_every_answer_and_nothing_else(built, llava):
    from datasets import load_dataset
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    rows = load_dataset(str(built), "messages", split="train")
    processor = AutoProcessor.from_pretrained(llava)
    processor.chat_template = LLAVA_TEMPLATE.read_text()  # what `chat_template_path` in the recipe sets
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)
    batch = collator([rows[0], rows[1]])
    assert batch["pixel_values"].shape[0] == 2
    eos = processor.tokenizer.eos_token
    for row, input_ids, labels in zip(rows.select(range(2)), batch["input_ids"], batch["labels"]):
        answers = [turn["content"][0]["text"] for turn in row["messages"] if turn["role"] == "assistant"]
        assert len(answers) == 3  # categorical, one conversation pair, one reasoning pair
        trained = processor.tokenizer.decode(input_ids[labels != -100])
        assert trained == "".join(f" {answer}{eos}" for answer in answers)


@pytest.mark.slow
def test_trl_sft_runs_the_llava_recipe_on_the_messages_config(built, llava, tmp_path):
    """TRL's own command on the repository's LLaVA recipe (a tiny LLaVA in place of the 7B): LoRA, the recipe's chat
    template, and its tensorboard tracker."""
    command = [str(Path(sys.executable).parent / "trl"), "sft", "--config", str(LLAVA_RECIPE),
               "--model_name_or_path", str(llava), "--dataset_name", str(built), "--output_dir", str(tmp_path / "out"),
               *CPU_OVERRIDES]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert list((tmp_path / "out" / "runs").rglob("events.out.tfevents.*"))


def test_recipes_sft_runs_the_same_llava_recipe_and_writes_the_projects_card(built, llava, tmp_path):
    from huggingface_hub import ModelCard

    from emovit.training import sft

    argv = ["--config", str(LLAVA_RECIPE), "--model_name_or_path", str(llava), "--dataset_name", str(built),
            "--output_dir", str(tmp_path), "--report_to", "none", *CPU_OVERRIDES]
    cwd = os.getcwd()
    os.chdir(REPO)  # the recipe's chat_template_path is relative to the repository, as its command is run
    try:
        metrics = sft.train(*sft.parse_recipe(argv))
    finally:
        os.chdir(cwd)
    assert metrics["train_samples"] == 8  # one conversation per image
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "peft" and "A Llava vision-language model" in card.text
    assert "trust_remote_code" not in card.text and "emovit serve" not in card.text


def _unknown_keys_for_trl_sft(recipe: Path) -> list[str]:
    """Keys of a recipe that `trl sft` does not know (its parser: TRL's script, SFT, model and mixture arguments)."""
    import yaml
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig))
    unknown = parser.set_defaults_with_config(**yaml.safe_load(recipe.read_text()))  # what it reads from --config
    return [item[2:] for item in unknown if item.startswith("--")]


def test_recipes_readme_names_exactly_the_recipes_trl_sft_accepts():
    readme = (REPO / "recipes" / "README.md").read_text()
    said = set(re.findall(r"trl sft --config recipes/([\w.-]+)/sft\.yaml", readme))
    accepted = {recipe.parent.name for recipe in (REPO / "recipes").glob("*/sft.yaml")
                if not _unknown_keys_for_trl_sft(recipe)}
    assert said == accepted == {"llava-1.5-7b", "smolvlm-256m", "qwen2.5-vl-7b"}
    assert _unknown_keys_for_trl_sft(REPO / "recipes" / "emovit-tiny" / "sft.yaml") == [
        "max_prompt_length", "max_completion_length"]
