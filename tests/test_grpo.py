"""The GRPO stage as a specification: the reasoning answer format read tag by tag, each verifiable reward on
hand-written completions, a cold start then GRPO through recipes/grpo.py on a tiny chat VLM (its folder loads,
evaluates in the reasoning format and resumes), every chat-template family through the same recipe, and one
sentence with exit code 2 for each bad launch."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_trees import png_bytes
from train_helpers import REPO, child_environment

from dataset_builder.emotions import get_label_space
from dataset_builder.reasoning_format import parse_reasoned_answer, reasoned_answer, reasoning_instruction
from emovit.training import grpo
from emovit.training.rewards import (REWARDS, accuracy_reward, completion_text, confidence_reward, format_reward,
                                     polarity_reward)
from modeling_emovit.labels import MIKELS_EMOTIONS

EMOSET = get_label_space("emoset")
RECIPE = REPO / "recipes" / "tiny-vlm" / "grpo.yaml"
# recipes/tiny-vlm/grpo.yaml cut to seconds: the tiniest random model, 2 images x 2 answers a step, short answers.
FAST = ["--model_name_or_path", "tiny-random-qwen2-vl", "--max_steps", "2", "--cold_start_max_steps", "2",
        "--cold_start_batch_size", "3", "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_completion_length", "64",
        "--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true"]


def gold(label):
    """The columns GRPOTrainer passes each reward for one completion whose image is `label`."""
    return {"emotion": [label], "candidates": [list(MIKELS_EMOTIONS)]}


def rewards_of(text, label):
    return {name: reward(completions=[text], **gold(label))[0] for name, reward in REWARDS.items()}


# ---------------------------------------------------------------------------------------------------------------
# The format and the rewards
# ---------------------------------------------------------------------------------------------------------------

def test_a_well_formed_answer_reads_back_tag_by_tag():
    text = reasoned_answer(" A dark lake, one figure with bowed head. ", "sadness", 0.7)
    assert text == "<think>A dark lake, one figure with bowed head.</think><answer>sadness</answer><confidence>0.7</confidence>"
    answer = parse_reasoned_answer(text, EMOSET)
    assert (answer.reasoning, answer.label, answer.confidence, answer.well_formed) == (
        "A dark lake, one figure with bowed head.", "sadness", 0.7, True)


@pytest.mark.parametrize("text, label, confidence", [
    ("<answer>sadness</answer><confidence>0.7</confidence>", "sadness", 0.7),  # no reasoning
    ("<think>grey</think><answer>sadness</answer>", "sadness", None),  # no confidence
    ("<think>grey</think><answer>sadness</answer><confidence>high</confidence>", "sadness", None),  # words
    ("<think>grey</think><answer>sadness</answer><confidence>80%</confidence>", "sadness", None),  # a percentage
    ("<think>grey</think><answer>sadness</answer><confidence>1.5</confidence>", "sadness", None),  # out of range
    ("<think>grey</think><answer>sadness</answer><confidence>nan</confidence>", "sadness", None),
    ("<think>grey</think><answer>boredom</answer><confidence>0.5</confidence>", None, 0.5),  # not a label
    ("<think></think><answer>fear</answer><confidence>0.5</confidence>", "fear", 0.5),  # empty reasoning
    ("Sure! <think>grey</think><answer>fear</answer><confidence>0.5</confidence>", "fear", 0.5),  # text around
    ("<think>a</think><answer>fear</answer><confidence>0.5</confidence><answer>awe</answer>", "fear", 0.5),  # twice
])
def test_a_malformed_answer_keeps_what_is_readable_and_is_not_well_formed(text, label, confidence):
    answer = parse_reasoned_answer(text, EMOSET)
    assert (answer.label, answer.confidence, answer.well_formed) == (label, confidence, False)


def test_the_answer_tag_is_read_through_the_label_spaces_synonyms():
    """EmoSet's label space maps "amused" to amusement (dataset_builder.emotions), as categorical answers are read."""
    assert parse_reasoned_answer("<think>x</think><answer> Amused </answer><confidence>1</confidence>",
                                 EMOSET).label == "amusement"


def test_the_prompt_lists_every_candidate_and_every_tag():
    question = reasoning_instruction(MIKELS_EMOTIONS)
    assert all(label in question for label in MIKELS_EMOTIONS)
    assert all(f"<{tag}></{tag}>" in question for tag in ("think", "answer", "confidence"))


def test_a_right_confident_answer_earns_every_reward():
    text = reasoned_answer("bright colours, people laughing", "amusement", 1.0)
    assert rewards_of(text, "amusement") == {"accuracy": 1.0, "format": 1.0, "confidence": 1.0, "polarity": 1.0}


def test_a_wrong_answer_of_the_same_polarity_earns_only_partial_credit():
    """contentment and amusement are both positive in EmoSet (Mikels' wheel); confident and wrong: 1 - 0.9^2."""
    text = reasoned_answer("a calm meadow", "contentment", 0.9)
    assert rewards_of(text, "amusement") == pytest.approx(
        {"accuracy": 0.0, "format": 1.0, "confidence": 1 - 0.9 ** 2, "polarity": 1.0})


def test_a_wrong_answer_of_the_other_polarity_earns_format_and_a_humble_confidence():
    text = reasoned_answer("a storm", "fear", 0.2)
    assert rewards_of(text, "awe") == pytest.approx(
        {"accuracy": 0.0, "format": 1.0, "confidence": 1 - 0.2 ** 2, "polarity": 0.0})


@pytest.mark.parametrize("text", [
    "sadness",  # no tags at all
    "<think>grey</think><answer>sadness</answer><confidence>very</confidence>",  # confidence as text
    "<think>grey</think><answer>sadness</answer><confidence>2</confidence>",  # confidence out of range
])
def test_an_unreadable_confidence_earns_no_confidence_reward_and_no_format_reward(text):
    rewards = rewards_of(text, "sadness")
    assert rewards["confidence"] == 0.0 and rewards["format"] == 0.0
    assert rewards["accuracy"] == float("<answer>" in text)  # the answer tag is still read


def test_a_confidence_spread_has_the_cold_start_state_five_numbers_in_turn():
    from emovit.training.grpo_data import stated_confidence

    assert [stated_confidence(row, 0.7, 0.2) for row in range(6)] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.5]
    assert {stated_confidence(row, 0.8, 0.0) for row in range(5)} == {0.8}


def test_a_sampled_confidence_is_the_smoothed_share_of_answers_the_accuracy_reward_calls_right():
    from emovit.training.confidence_targets import smoothed_share_right

    right, synonym = reasoned_answer("smiles", "amusement", 0.5), "<answer>Amused</answer>"  # a synonym reads right
    wrong, broken = reasoned_answer("tears", "sadness", 0.5), "amusement"  # no answer tag: not right
    labels = tuple(MIKELS_EMOTIONS)
    assert smoothed_share_right([right, synonym, right, right], "amusement", labels) == 0.8  # (4 + 1) / 6
    assert smoothed_share_right([right, wrong, broken, wrong], "amusement", labels) == 0.3  # (1 + 1) / 6
    assert smoothed_share_right([wrong, broken, wrong, wrong], "amusement", labels) == 0.2  # never 0 from 4 samples
    assert smoothed_share_right([right, wrong], "amusement", labels) == 0.5


def test_the_stated_confidences_auroc_tells_a_per_image_confidence_from_one_number_for_all():
    """Hand-worked: right answers state 0.9 and 0.8, wrong ones 0.3 and 0.85, so 3 of the 4 (right, wrong) pairs are
    ordered; ECE over 10 left-closed bins: (0.1 x 1 + |0.825 - 0.5| x 2 + 0.3 x 1) / 4 = 0.2625."""
    from evaluation.classification_metrics import reasoning_figures

    def rows(confidences, right):
        return [{"confidence": c, "prediction": "awe" if ok else "fear", "reference": "awe", "well_formed": True,
                 "rank_scores": {label: 1 / 8 for label in MIKELS_EMOTIONS}} for c, ok in zip(confidences, right)]

    figures = reasoning_figures(rows([0.9, 0.8, 0.3, 0.85], [1, 1, 0, 0]), list(MIKELS_EMOTIONS))
    assert figures["verbalised_auroc"] == pytest.approx(0.75)
    assert figures["verbalised_ece_10_bins_x100"] == pytest.approx(26.25)
    assert reasoning_figures(rows([0.7] * 4, [1, 0, 1, 0]), list(MIKELS_EMOTIONS))["verbalised_auroc"] == 0.5
    assert reasoning_figures(rows([0.7, 0.2], [1, 1]), list(MIKELS_EMOTIONS))["verbalised_auroc"] is None


def test_rewards_read_conversational_completions_and_score_each_in_a_batch():
    """GRPOTrainer passes conversational prompts' completions as [{"role": "assistant", "content": ...}]."""
    right = [{"role": "assistant", "content": reasoned_answer("smiles", "amusement", 0.6)}]
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": reasoned_answer("x", "anger", 0.6)}]}]
    assert completion_text(blocks) == reasoned_answer("x", "anger", 0.6)
    columns = {"emotion": ["amusement", "amusement"], "candidates": [list(MIKELS_EMOTIONS)] * 2}
    assert accuracy_reward(completions=[right, blocks], **columns) == [1.0, 0.0]
    assert format_reward(completions=[right, blocks], **columns) == [1.0, 1.0]
    assert confidence_reward(completions=[right, blocks], **columns) == pytest.approx([1 - 0.4 ** 2, 1 - 0.6 ** 2])
    assert polarity_reward(completions=[right, blocks], **columns) == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------------------------
# The recipe, end to end
# ---------------------------------------------------------------------------------------------------------------

def write_built_dataset(folder, emotions, label_space="emoset"):
    """Two configs as `emovit data build` lays them out (Parquet per config + a README `configs` block listing
    both): `categorical` (GRPO's prompts) and `reasoning` (the cold start's GPT-written reasoning answers), each image
    with its `image_sha256`, `emotion` and `label_space`, as the build writes them."""
    from datasets import Dataset, Image

    rows = len(emotions)
    shared = {
        "id": [f"img{i}" for i in range(rows)],
        "image": [{"bytes": png_bytes((40 * i % 256, 90, 200)), "path": None} for i in range(rows)],
        "image_sha256": [f"{i:064x}" for i in range(rows)],
        "emotion": list(emotions), "label_space": [label_space] * rows,
        "prompt": ["Which emotion does this image evoke?"] * rows,
    }
    answers = {
        "categorical": [f"Predict emotion: {emotion}" for emotion in emotions],
        "reasoning": [f"The colours feel like {emotion}. Nothing else in view." for emotion in emotions],
    }
    block = ""
    for config, completions in answers.items():
        (folder / config).mkdir(parents=True, exist_ok=True)
        dataset = Dataset.from_dict({**shared, "completion": completions}).cast_column("image", Image())
        dataset.to_parquet(str(folder / config / "train-00000-of-00001.parquet"))
        block += f"- config_name: {config}\n  data_files:\n  - split: train\n    path: {config}/train-*.parquet\n"
    (folder / "README.md").write_text(f"---\nconfigs:\n{block}---\n")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_built_dataset(tmp_path_factory.mktemp("grpo-data"), list(MIKELS_EMOTIONS))


def grpo_argv(data, out, *extra):
    return ["--config", str(RECIPE), *FAST, "--dataset_name", str(data), "--output_dir", str(out), *map(str, extra)]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """recipes/grpo.py itself (a subprocess, as a user runs it): 2 cold-start steps, then 2 GRPO steps."""
    out = tmp_path_factory.mktemp("grpo-run")
    result = subprocess.run([sys.executable, str(REPO / "recipes" / "grpo.py"), *grpo_argv(data, out, "--save_strategy",
                             "steps", "--save_steps", "2")], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env=child_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_recipe_cold_starts_then_runs_grpo_with_every_reward_logged(trained):
    history = json.loads((trained / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in history if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    for name in REWARDS:  # TRL logs each reward function's mean under rewards/<function name>/mean
        key = f"rewards/{REWARDS[name].__name__}/mean"
        assert all(0.0 <= entry[key] <= 1.0 for entry in steps), (key, steps)
    cold_start = json.loads((trained / "cold-start" / "trainer_state.json").read_text())
    assert cold_start["global_step"] == 2 and (trained / "cold-start" / "train_results.json").is_file()
    # rows per cold-start step are the cold start's own; GRPO's batch counts completions (2 images x 2 answers)
    assert cold_start["train_batch_size"] == 3
    assert json.loads((trained / "trainer_state.json").read_text())["train_batch_size"] == 4
    assert json.loads((trained / "train_results.json").read_text())["cold_start_steps"] == 2


def test_the_trained_folder_loads_evaluates_in_the_reasoning_format_and_names_both_stages(trained, data, tmp_path):
    from huggingface_hub import ModelCard

    from emovit.cli import main as emovit

    config = json.loads((trained / "config.json").read_text())
    assert config["emotion_label_space"] == "emoset" and config["emotion_labels"] == list(MIKELS_EMOTIONS)
    card = ModelCard.load(trained / "README.md")
    assert "stage 1: cold start" in card.text and "stage 2: GRPO" in card.text and "accuracy x 1" in card.text
    assert "grpo" in card.data.tags
    out = tmp_path / "eval"
    assert emovit(["eval", "--model", str(trained), "--data", str(data), "--config", "categorical", "--split", "train",
                   "--out", str(out), "--mode", "generate", "--answer-format", "reasoning", "--max-new-tokens", "24",
                   "--batch-size", "4"]) == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(MIKELS_EMOTIONS) and all("confidence" in row and "well_formed" in row for row in rows)
    assert 0.0 <= metrics["format_compliance"] <= 1.0
    assert metrics["format_compliance"] == sum(row["well_formed"] for row in rows) / len(rows)
    assert metrics["confidence_missing_rate"] == sum(row["confidence"] is None for row in rows) / len(rows)
    assert math.isfinite(metrics["rank_ece_10_bins_x100"])  # the rank scores of the same images, beside them


def test_an_interrupted_run_resumes_from_its_checkpoint_without_a_second_cold_start(trained, data, tmp_path):
    import shutil

    out = shutil.copytree(trained, tmp_path / "resumed")
    metrics = grpo.train(*grpo.parse_recipe(grpo_argv(data, out, "--max_steps", "3", "--resume_from_checkpoint",
                                                      "true")))
    steps = [entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "reward" in entry]
    first_run = [entry for entry in json.loads((trained / "trainer_state.json").read_text())["log_history"]
                 if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3]
    assert steps[:2] == first_run  # steps 1 and 2 (their measured step_time too) come from checkpoint-2, not a rerun
    assert metrics["cold_start_steps"] == 0


def test_a_cold_start_with_sampled_confidences_states_each_images_share_of_right_answers(data, tmp_path, monkeypatch):
    """2 fixed-confidence steps, then the model's own answers sampled (2 per image, for the 3 rows one step of 3
    takes) and 1 step on rows stating them. The sampling is the real one on the tiny model; what it returns is then
    replaced by answers written here, so that the stated numbers differ by image and the test can tell which image
    each row's number came from."""
    from emovit.training import confidence_targets
    from emovit.training.confidence_targets import smoothed_share_right

    sampled, passes = {}, []
    real_sample, real_pass = confidence_targets.sample_answers, grpo._cold_start_sft

    def sample(adapter, images, labels, samples, temperature, max_new_tokens):
        answers = real_sample(adapter, images, labels, samples, temperature, max_new_tokens)
        assert [len(per_image) for per_image in answers] == [samples] * len(images) == [2, 2, 2]
        sampled["answers"] = [[reasoned_answer("x", labels[k], 0.5)] * 2 if k % 2 else ["?", "?"]
                              for k in range(len(images))]
        return sampled["answers"]

    def cold_start_pass(model, processor, rows, steps, output_dir, *args):
        passes.append((rows, steps, Path(output_dir)))
        return real_pass(model, processor, rows, steps, output_dir, *args)

    monkeypatch.setattr(confidence_targets, "sample_answers", sample)
    monkeypatch.setattr(grpo, "_cold_start_sft", cold_start_pass)
    metrics = grpo.train(*grpo.parse_recipe(grpo_argv(data, tmp_path, "--max_steps", "1", "--cold_start_max_steps", "3",
                                                      "--cold_start_confidence_samples", "2",
                                                      "--cold_start_confidence_steps", "1")))
    assert [(steps, folder) for _, steps, folder in passes] == [(2, tmp_path / "cold-start" / "fixed-confidence"),
                                                                (1, tmp_path / "cold-start")]
    stated = [parse_reasoned_answer(row["completion"][0]["content"], EMOSET) for row in passes[1][0]]
    expected = [smoothed_share_right(answers, answer.label, tuple(MIKELS_EMOTIONS))
                for answers, answer in zip(sampled["answers"], stated)]
    assert [answer.confidence for answer in stated] == expected and set(expected) <= {0.2, 0.5, 0.8}
    assert json.loads((tmp_path / "cold-start" / "fixed-confidence" / "trainer_state.json").read_text())[
        "global_step"] == 2
    assert json.loads((tmp_path / "cold-start" / "trainer_state.json").read_text())["global_step"] == 1
    recorded = json.loads((tmp_path / "cold-start" / "train_results.json").read_text())["sampled_confidences"]
    assert recorded == {f"{value:g}": expected.count(value) for value in sorted(set(expected))}  # images per number
    assert metrics["cold_start_steps"] == 3 and (tmp_path / "cold-start" / "config.json").is_file()
    assert "each image's share of right answers among 2 sampled" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("name", ["tiny-random-llava", "tiny-random-idefics3", "tiny-random-qwen2.5-vl"])
def test_every_chat_template_family_trains_through_the_same_recipe(name, data, tmp_path):
    metrics = grpo.train(*grpo.parse_recipe(grpo_argv(data, tmp_path, "--model_name_or_path", name, "--max_steps", "1",
                                                      "--cold_start_max_steps", "1")))
    assert metrics["cold_start_steps"] == 1 and math.isfinite(metrics["train_loss"])
    assert (tmp_path / "config.json").is_file() and (tmp_path / "cold-start" / "config.json").is_file()


@pytest.mark.parametrize("cold_start_steps, reference", [("2", "cold-start"), ("0", "base")])
def test_with_a_kl_term_the_reference_model_is_the_policy_grpo_starts_from(cold_start_steps, reference, data,
                                                                            tmp_path, monkeypatch):
    from trl.trainer import grpo_trainer

    loaded = []  # TRL builds the reference from the policy config's name (trl.trainer.utils.create_model_from_path)

    def recording(model_id, *args, **kwargs):
        loaded.append(model_id)
        return create(model_id, *args, **kwargs)

    create = grpo_trainer.create_model_from_path
    monkeypatch.setattr(grpo_trainer, "create_model_from_path", recording)
    grpo.train(*grpo.parse_recipe(grpo_argv(data, tmp_path, "--beta", "0.04", "--max_steps", "1",
                                            "--cold_start_max_steps", cold_start_steps)))
    assert loaded == [str(tmp_path / reference)]  # not the recipe's model as it was before the cold start
    [step] = [entry for entry in json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
              if "reward" in entry]
    assert math.isfinite(step["kl"])


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one sentence, exit code 2, before a model trains
# ---------------------------------------------------------------------------------------------------------------

def refusal(argv, capsys) -> str:
    """The last stderr line (after datasets' progress bars), checked to be `grpo: <one sentence>.`; the output folder
    is not created."""
    capsys.readouterr()
    assert grpo.main(list(map(str, argv))) == 2
    error = capsys.readouterr().err
    last = error.strip().splitlines()[-1]
    assert "Traceback" not in error and last.startswith("grpo: ") and last.endswith("."), error[-2000:]
    assert not Path(argv[argv.index("--output_dir") + 1]).exists()
    return last


def test_a_dataset_without_labels_is_refused_by_name(tmp_path, capsys):
    unlabelled = write_built_dataset(tmp_path / "data", [""] * 4)
    error = refusal(grpo_argv(unlabelled, tmp_path / "out"), capsys)
    assert str(unlabelled) in error and "labels" in error


def test_a_model_trained_on_another_label_space_is_refused(data, tmp_path, capsys):
    from modeling_emovit.testing_vlms import tiny_vlm

    model, processor = tiny_vlm("qwen2_vl")
    model.config.emotion_label_space, model.config.emotion_labels = "colours", ["red", "blue"]
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    error = refusal(grpo_argv(data, tmp_path / "out", "--model_name_or_path", tmp_path / "model"), capsys)
    assert "red, blue" in error and "amusement" in error


@pytest.mark.parametrize("flags, field", [
    (["--reward_weights", "a", "b"], "reward_weights"),  # not numbers (TRL's parser)
    (["--reward_weights", "1", "2"], "reward_weights"),  # two weights for four rewards
    (["--reward_funcs", "accuracy", "length"], "reward_funcs"),  # no such reward
    (["--max_completion_length", "8"], "max_completion_length"),  # cannot hold the format
    (["--cold_start_confidence", "1.5"], "cold_start_confidence"),
    (["--cold_start_confidence", "0.9", "--cold_start_confidence_spread", "0.2"], "cold_start_confidence_spread"),
    (["--cold_start_confidence_samples", "4"], "cold_start_confidence_steps"),  # no steps to state them in
    (["--cold_start_confidence_samples", "4", "--cold_start_confidence_steps", "2"], "cold_start_confidence_steps"),
])
def test_bad_recipe_values_are_refused_by_field(flags, field, data, tmp_path, capsys):
    assert field in refusal(grpo_argv(data, tmp_path / "out", *flags), capsys)


def test_emovit_is_refused_with_the_reason(data, tmp_path, capsys):
    error = refusal(grpo_argv(data, tmp_path / "out", "--model_name_or_path", "tiny-random"), capsys)
    assert "Q-Former" in error and "recipes/README.md" in error


# ---------------------------------------------------------------------------------------------------------------
# The judged reasoning task reads the reasoning chain
# ---------------------------------------------------------------------------------------------------------------

class FixedAnswers:
    """An adapter whose generations are given (only `generate` is called by the judged task)."""

    def __init__(self, answers):
        self.answers = answers

    def generate(self, images, questions, max_new_tokens):
        return self.answers[: len(questions)]


def test_in_the_reasoning_format_the_judge_reads_the_think_text_and_the_whole_answer_is_kept():
    from datasets import Dataset

    from evaluation.judge import JudgedAnswersTask

    generated = [reasoned_answer("Two children laugh at a clown.", "amusement", 0.9), "It is funny.",
                 "<think> </think><answer>awe</answer>"]
    examples = Dataset.from_dict({"id": ["a", "b", "c"], "prompt": ["Why?"] * 3, "completion": ["ref"] * 3})
    rows = JudgedAnswersTask(FixedAnswers(generated), "reasoning", 32, answer_format="reasoning").rows(
        examples, [None] * 3, [0, 1, 2], paraphrase=0)
    assert [row["answer"] for row in rows] == ["Two children laugh at a clown.", "It is funny.", generated[2]]
    assert [row["generated"] for row in rows] == generated
    assert [row["reasoning_found"] for row in rows] == [True, False, False]


def test_a_grpo_folder_is_judged_on_its_reasoning_through_emovit_eval(trained, tmp_path):
    """The trained folder through `emovit eval --task reasoning --answer-format reasoning` and a loopback judge:
    whatever the tiny model writes, the judge is shown its <think> text when it has one, its whole answer if not."""
    from dataset_trees import config_folder
    from openai_server import running_openai_server

    from dataset_builder.reasoning_format import tag_content
    from emovit.cli import main as emovit

    data = config_folder(tmp_path / "data", "reasoning", "test", {
        "id": ["r0", "r1"], "image": [{"bytes": png_bytes((200, 30, 30)), "path": None}] * 2,
        "caption": ["a red wall"] * 2, "prompt": [reasoning_instruction(MIKELS_EMOTIONS)] * 2,
        "completion": ["REFERENCE reasoning"] * 2})
    with running_openai_server(respond=lambda body: "7 5\nThe first is closer to the image.") as (base_url, stats):
        assert emovit(["eval", "--task", "reasoning", "--answer-format", "reasoning", "--model", str(trained),
                       "--data", str(data), "--out", str(tmp_path / "out"), "--max-new-tokens", "32",
                       "--judge-model", "judge-1", "--judge-base-url", base_url]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    for row, body in zip(rows, stats.bodies):
        reasoning = (tag_content(row["generated"], "think") or "").strip()
        assert row["answer"] == (reasoning or row["generated"]) and row["reasoning_found"] == bool(reasoning)
        assert f"[Assistant 2]\n{row['answer']}" in body["messages"][-1]["content"]
    metrics = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    assert metrics["relative_score"] == pytest.approx(100 * 5 / 7) and metrics["judged"] == 2


@pytest.mark.parametrize("settings, says", [
    ({"task": "humor"}, "not humor"),
    ({"mode": "rank"}, "--mode generate"),
    ({"mode": "generate", "paraphrases": 3}, "--paraphrases 1"),
])
def test_the_reasoning_answer_format_is_refused_where_it_cannot_be_read(settings, says):
    from evaluation.settings import EvalSettings
    from modeling_emovit.errors import EmoVITInputError

    with pytest.raises(EmoVITInputError, match=re.escape(says)):
        EvalSettings(model="m", data="d", out="o", answer_format="reasoning", **settings).check()
