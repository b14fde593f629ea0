"""Chat-template VLMs (LLaVA-1.5, Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL) as a specification: built offline, trained
through recipes/sft.py with the real recipes, scored in rank mode exactly as a direct forward scores the assistant
turn, generated in batches as one by one, evaluated by `emovit eval` in both modes, and refused by name when their
processor has no chat template."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dataset_trees import config_folder, png_bytes
from PIL import Image as PILImage
from remote_code import WITHOUT_EMOVIT
from train_helpers import REPO

from emovit.cli import main as emovit
from emovit.training import sft
from modeling_emovit.backbone import backbone_adapter
from modeling_emovit.backbone_chat_template import prefix_groups
from modeling_emovit.labels import MIKELS_EMOTIONS, categorical_answer, emovit_instruction
from modeling_emovit.testing_vlms import TINY_VLM_KINDS, tiny_vlm

INSTRUCTION = "Please select the emotion closest to the image from the following options:" + ", ".join(MIKELS_EMOTIONS)
ANSWERS = [f"Predict emotion: {label}" for label in MIKELS_EMOTIONS]
# A square image and a wide one: Qwen2-VL gives them different numbers of image tokens.
IMAGES = [PILImage.new("RGB", (40, 40), (200, 30, 30)), PILImage.new("RGB", (64, 32), (20, 90, 220)),
          PILImage.new("RGB", (40, 40), (240, 220, 10))]
# recipes/*.yaml made to run on CPU in seconds: the recipe's own keys, sizes and launch settings overridden.
ON_CPU = ["--use_cpu", "true", "--bf16", "false", "--dtype", "float32", "--report_to", "none",
          "--gradient_checkpointing", "false", "--gradient_accumulation_steps", "1", "--dataloader_num_workers", "0",
          "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1"]
RECIPE_OF = {"llava": "llava-1.5-7b", "idefics3": "smolvlm-256m", "qwen2_vl": "qwen2.5-vl-7b", "qwen2_5_vl": "qwen2.5-vl-7b"}


def save_tiny_vlm(kind, folder, **kwargs):
    model, processor = tiny_vlm(kind, **kwargs)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def train_recipe(kind, model, data, out, *extra):
    recipe = REPO / "recipes" / RECIPE_OF[kind] / "sft.yaml"
    argv = ["--config", str(recipe), *ON_CPU, "--model_name_or_path", str(model), "--dataset_name", str(data),
            "--output_dir", str(out), *map(str, extra)]
    if kind == "llava":  # the recipe names its template relative to the repository
        argv += ["--chat_template_path", str(recipe.parent / "chat_template.jinja")]
    return sft.train(*sft.parse_recipe(argv))


def write_split(folder, split, emotions, columns):
    """What `emovit data build` writes for a prompt/completion config: Parquet + a README `configs` block."""
    return config_folder(folder, "categorical", split, {
        "id": [f"img{i}" for i in range(len(emotions))],
        "image": [{"bytes": png_bytes((60 * i % 256, 90, 200)), "path": None} for i in range(len(emotions))],
        "emotion": list(emotions),
        **columns,
    })


def write_conversations(folder, emotions, instruction, answer):
    """The `messages` config as `emovit data build` writes it (its schema and turn layout), one answer for all."""
    from dataset_builder.builder import chat_messages
    from dataset_builder.schema import MESSAGES_CONFIG, messages_features

    rows = len(emotions)
    return config_folder(folder, MESSAGES_CONFIG, "train", {
        "id": [f"img{i}" for i in range(rows)],
        "images": [[{"bytes": png_bytes((60 * i % 256, 90, 200)), "path": None}] for i in range(rows)],
        "messages": [chat_messages([("categorical", instruction, answer)])] * rows,
        "image_sha256": [None] * rows, "source": ["emoset"] * rows, "emotion": list(emotions),
        "label": list(emotions), "label_space": ["emoset"] * rows,
    }, features=messages_features(MIKELS_EMOTIONS))


def direct_log_likelihood(model, processor, image, answer, instruction=INSTRUCTION) -> float:
    """Sum of log p over the tokens the assistant turn adds to the prompt, from one forward over the whole
    conversation; both rendered and tokenized by transformers' `apply_chat_template` with the image."""
    user = {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": instruction}]}
    assistant = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    render = dict(tokenize=True, return_dict=True, return_tensors="pt")
    prompt = processor.apply_chat_template([user], add_generation_prompt=True, **render)["input_ids"][0]
    full = processor.apply_chat_template([user, assistant], **render)
    ids = full["input_ids"][0]
    assert torch.equal(ids[: len(prompt)], prompt)
    with torch.no_grad():
        logits = model(**full).logits[0].float()
    return logits[len(prompt) - 1: -1].log_softmax(-1).gather(-1, ids[len(prompt):, None]).sum().item()


@pytest.mark.parametrize("kind", TINY_VLM_KINDS)
def test_rank_scores_equal_the_assistant_turns_log_likelihood_in_a_direct_forward(kind):
    from dataset_builder.emotions import get_label_space
    from evaluation.predictors import RankPredictor

    model, processor = tiny_vlm(kind)
    adapter = backbone_adapter(model, processor)
    assert adapter.family == "chat-template"
    expected = torch.tensor([[direct_log_likelihood(model, processor, image, a) for a in ANSWERS] for image in IMAGES])
    for strategy in ("packed", "expanded"):
        scores = adapter.answer_log_likelihoods(IMAGES, INSTRUCTION, ANSWERS, strategy=strategy)
        assert torch.allclose(scores, expected, atol=1e-4), (strategy, (scores - expected).abs().max())
        # What `emovit eval --mode rank` records per image: the same numbers, by label
        predictions = RankPredictor(adapter, get_label_space("emoset"), strategy=strategy).predict(IMAGES, INSTRUCTION)
        recorded = torch.tensor([[p.log_likelihoods[label] for label in MIKELS_EMOTIONS] for p in predictions])
        assert torch.allclose(recorded, expected, atol=1e-4), (strategy, (recorded - expected).abs().max())
    groups = prefix_groups(processor, IMAGES, INSTRUCTION)
    assert sorted(row for rows, _ in groups for row in rows) == [0, 1, 2]
    assert len(groups) == (2 if kind.startswith("qwen") else 1)  # Qwen: the wide image has fewer tokens


@pytest.mark.parametrize("kind", TINY_VLM_KINDS)
def test_candidates_are_the_assistant_turn_up_to_the_end_of_turn_token(kind):
    model, processor = tiny_vlm(kind)
    end_of_turn = {"llava": "</s>", "idefics3": "<end_of_utterance>"}.get(kind, "<|im_end|>")  # each family's
    for answer, ids in zip(ANSWERS, backbone_adapter(model, processor).encode_candidates(INSTRUCTION, ANSWERS)):
        text = processor.tokenizer.decode(ids)
        assert text.strip().startswith(answer) and end_of_turn in text[len(answer):]


def test_a_generation_prompt_that_is_not_a_token_prefix_is_refused_by_name():
    from modeling_emovit.errors import EmoVITInputError

    model, processor = tiny_vlm("llava")
    # "ASSISTANT: " tokenizes its trailing space alone; in the conversation the space joins the answer's first word
    processor.chat_template = processor.chat_template.replace("ASSISTANT:{% endif %}", "ASSISTANT: {% endif %}")
    with pytest.raises(EmoVITInputError, match="does not tokenize as a prefix of the conversation"):
        backbone_adapter(model, processor).encode_candidates(INSTRUCTION, ANSWERS)


@pytest.mark.parametrize("kind", TINY_VLM_KINDS)
def test_batched_generation_equals_one_image_at_a_time(kind):
    adapter = backbone_adapter(*tiny_vlm(kind))
    prompts = [INSTRUCTION, "What emotion does this image evoke?", "Describe the image."]
    batched = adapter.generate(IMAGES, prompts, max_new_tokens=6)
    assert batched == [adapter.generate([image], [prompt], max_new_tokens=6)[0]
                       for image, prompt in zip(IMAGES, prompts)]
    assert not any(INSTRUCTION in answer for answer in batched)  # the prompt is cut off


TRAINED_KINDS = ["llava", "idefics3", "qwen2_vl"]


@pytest.fixture(scope="module")
def trained_to_answer_awe(tmp_path_factory):
    """kind -> (folder, train metrics): each backbone trained once per module (every weight, through its recipe, on
    conversations asking EmoVIT's emoset instruction) to answer "awe" whatever the image."""
    from dataset_builder.instructions import categorical_instruction

    trained = {}

    def train(kind):
        if kind not in trained:
            root = tmp_path_factory.mktemp(kind)
            base = save_tiny_vlm(kind, root / "base")
            asked = categorical_instruction(MIKELS_EMOTIONS)  # what `emovit eval` asks over the emoset label space
            data = write_conversations(root / "data", ["awe"] * 8, asked, "Predict emotion: awe")
            metrics = train_recipe(kind, base, data, root / "trained", "--use_peft", "false", "--max_steps", 20,
                                   "--per_device_train_batch_size", 4, "--learning_rate", 1e-2, "--warmup_steps", 0,
                                   "--lr_scheduler_type", "constant")
            trained[kind] = root / "trained", metrics
        return trained[kind]

    return train


def eval_rows(*argv) -> tuple[list[dict], dict]:
    out = Path(argv[argv.index("--out") + 1])
    assert emovit(["eval", *map(str, argv), "--batch-size", "3"]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_what_a_backbone_learns_through_its_recipe_is_what_both_eval_modes_and_the_pipeline_read(
        kind, trained_to_answer_awe, tmp_path):
    """Trained to answer "awe" whatever the image, it must rank and generate "awe" (the assistant turn training
    labels is the one rank mode scores and generate mode decodes); calibrated on a validation split, the pipeline
    loaded from its folder gives each test image the probabilities rank mode gave it."""
    from transformers import pipeline

    folder, metrics = trained_to_answer_awe(kind)
    assert metrics["trainable_parameters"] == sum(p.numel() for p in tiny_vlm(kind)[0].parameters())
    test = write_split(tmp_path / "test", "test", ["awe", "anger", "fear", "sadness"], {"label_space": ["emoset"] * 4})
    for mode in ("rank", "generate"):
        rows, results = eval_rows("--model", folder, "--data", test, "--out", tmp_path / mode, "--mode", mode)
        assert [row["prediction"] for row in rows] == ["awe"] * 4, rows
        assert results["metrics"]["accuracy"] == 0.25
        if mode == "rank":
            assert all(list(row["scores"]) == list(MIKELS_EMOTIONS) for row in rows)
        else:
            assert all(row["answer"].endswith("awe") for row in rows)  # the prompt and the end of turn cut off

    # the smallest split calibration accepts (evaluation.calibration.MIN_CALIBRATION_IMAGES)
    val = write_split(tmp_path / "val", "validation", ["awe", "anger", "fear", "sadness"] * 4,
                      {"label_space": ["emoset"] * 16})
    rows, results = eval_rows("--model", folder, "--data", test, "--out", tmp_path / "calibrated", "--mode", "rank",
                              "--calibrate-on", val)
    stored = json.loads((folder / "config.json").read_text())["emotion_calibration"]
    assert stored["temperature"] == results["calibration"]["temperature"] != 1.0
    assert stored["fitted_on"] == "val (validation, 16 images)" and stored["labels"] == list(MIKELS_EMOTIONS)
    assert results["calibration"]["after"]["nll"] < results["calibration"]["before"]["nll"]

    classify = pipeline("image-emotion-classification", model=str(folder), trust_remote_code=True)
    from datasets import load_dataset

    images = list(load_dataset(str(test), "categorical", split="test")["image"])
    for row, result in zip(sorted(rows, key=lambda row: row["id"]), classify(images, batch_size=3, top_k=8)):
        assert result[0]["label"] == "awe"
        assert {e["label"]: e["score"] for e in result} == pytest.approx(row["scores"], abs=1e-5)


REMOTE_PIPELINE = WITHOUT_EMOVIT + """
import json
from PIL import Image
from transformers import pipeline
image = Image.new("RGB", (64, 32), (20, 90, 220))
for folder in sys.argv[1:]:
    classify = pipeline("image-emotion-classification", model=folder, trust_remote_code=True)
    print(json.dumps([type(classify).__module__, type(classify.processor).__module__,
                      classify(image, candidate_labels="emotion6", top_k=4)]))
"""


def test_trained_folders_run_the_pipeline_where_emovit_cannot_be_imported(trained_to_answer_awe, tmp_path):
    """recipes/sft.py saves the pipeline beside a chat-template model (transformers' own classes, no remote code of
    their own): the folders work in a process that cannot import emovit, as they do here."""
    from transformers import pipeline

    folders = [trained_to_answer_awe(kind)[0] for kind in TRAINED_KINDS]
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        assert config["custom_pipelines"]["image-emotion-classification"]["impl"] == (
            "pipeline_emovit.ImageEmotionClassificationPipeline")
        assert {"pipeline_emovit.py", "backbone.py", "backbone_chat_template.py", "candidate_scoring.py",
                "calibration_emovit.py", "labels.py", "errors.py"} <= {path.name for path in folder.iterdir()}
    done = subprocess.run([sys.executable, "-c", REMOTE_PIPELINE, *map(str, folders)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={"PATH": "", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    answers = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(folders):]]
    for kind, folder, (pipeline_module, processor_module, remote) in zip(TRAINED_KINDS, folders, answers):
        assert pipeline_module.startswith("transformers_modules.")
        # Qwen2-VL's processor (the stock one needs torchvision) is remote code too; the others are transformers'
        assert processor_module.startswith("transformers_modules." if kind == "qwen2_vl" else "transformers.models.")
        here = pipeline("image-emotion-classification", model=str(folder), trust_remote_code=True)(
            PILImage.new("RGB", (64, 32), (20, 90, 220)), candidate_labels="emotion6", top_k=4)
        assert [e["label"] for e in remote] == [e["label"] for e in here]
        assert [e["score"] for e in remote] == pytest.approx([e["score"] for e in here], abs=1e-6)


@pytest.mark.parametrize("kind", TINY_VLM_KINDS)
def test_the_pipeline_gives_each_image_the_softmax_of_its_assistant_turns_log_likelihoods(kind):
    from modeling_emovit.pipeline_emovit import ImageEmotionClassificationPipeline

    model, processor = tiny_vlm(kind)
    classify = ImageEmotionClassificationPipeline(model=model, processor=processor)
    labels = ["joy", "fear", "sadness"]
    asked = emovit_instruction(labels)  # the pipeline's instruction for these candidates
    one_by_one = [classify(image, candidate_labels=labels) for image in IMAGES]
    batched = classify(IMAGES, candidate_labels=labels, batch_size=3)  # Qwen: two prompt lengths in one batch
    for image, alone, together in zip(IMAGES, one_by_one, batched):
        expected = torch.tensor([direct_log_likelihood(model, processor, image, categorical_answer(label), asked)
                                 for label in labels]).softmax(-1)
        assert {e["label"]: e["score"] for e in alone} == pytest.approx(dict(zip(labels, expected.tolist())), abs=1e-5)
        assert [e["label"] for e in together] == [e["label"] for e in alone]
        assert [e["score"] for e in together] == pytest.approx([e["score"] for e in alone], abs=1e-6)


def test_qwen_lora_recipe_adapts_the_language_model_and_trains_the_vision_merger(tmp_path):
    data = write_conversations(tmp_path / "data", ["awe", "fear"], INSTRUCTION, "Predict emotion: awe")
    metrics = train_recipe("qwen2_5_vl", "tiny-random-qwen2.5-vl", data, tmp_path / "out", "--max_steps", 1,
                           "--per_device_train_batch_size", 2)
    from safetensors import safe_open

    with safe_open(tmp_path / "out" / "adapter_model.safetensors", "pt") as adapter:
        names = list(adapter.keys())
    assert names and all("language_model" in n and ".lora_" in n or ".merger." in n for n in names)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in names if ".lora_" in name} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert metrics["trainable_parameters"] == sum(adapter_numel(tmp_path / "out"))


@pytest.mark.parametrize("kind, hub_id", [("idefics3", "HuggingFaceTB/SmolVLM-256M-Instruct"),
                                          ("qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct")])
def test_a_chat_recipe_as_written_names_its_hub_model_as_the_cards_base_model(kind, hub_id, tmp_path):
    """The recipe's own model_name_or_path, resolved offline from the Hub cache (a tiny stand-in stored under the
    Hub id in huggingface_hub's cache layout: refs/main -> snapshots/<commit>/), as after a download."""
    import shutil

    import yaml
    from huggingface_hub import ModelCard, constants

    recipe = REPO / "recipes" / RECIPE_OF[kind] / "sft.yaml"
    assert yaml.safe_load(recipe.read_text())["model_name_or_path"] == hub_id
    cached = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    save_tiny_vlm(kind, cached / "snapshots" / commit)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    try:
        data = write_conversations(tmp_path / "data", ["awe", "fear"], INSTRUCTION, "Predict emotion: awe")
        train_recipe(kind, hub_id, data, tmp_path / "out", "--max_steps", 1, "--per_device_train_batch_size", 2)
    finally:
        shutil.rmtree(cached)
    assert ModelCard.load(tmp_path / "out" / "README.md").data.base_model == hub_id
    if (tmp_path / "out" / "adapter_config.json").is_file():  # the Qwen recipe's LoRA adapter loads from the Hub
        assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["base_model_name_or_path"] == hub_id


def adapter_numel(folder):
    from safetensors import safe_open

    with safe_open(folder / "adapter_model.safetensors", "pt") as adapter:
        return [adapter.get_tensor(name).numel() for name in adapter.keys()]


@pytest.mark.parametrize("kind", TINY_VLM_KINDS)
def test_saved_tiny_vlms_reload_through_the_auto_classes_offline(kind, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = tiny_vlm(kind)
    save_tiny_vlm(kind, tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    reprocessor = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)  # Qwen: the image-only class
    assert reprocessor.chat_template == processor.chat_template
    messages = [{"role": "user", "content": [{"type": "image", "image": IMAGES[0]}, {"type": "text", "text": "Hi"}]}]
    render = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    inputs, reinputs = processor.apply_chat_template(messages, **render), reprocessor.apply_chat_template(messages, **render)
    assert torch.equal(inputs["input_ids"], reinputs["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reloaded(**reinputs).logits, atol=1e-6)


def test_a_qwen2_vl_hub_folder_loads_with_the_image_only_processor_without_torchvision(tmp_path):
    """The Hub layout of Qwen/Qwen2.5-VL-*-Instruct: config.json, preprocessor_config.json naming the stock
    `Qwen2_5_VLProcessor`, tokenizer files and chat_template.json; no remote code."""
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    from modeling_emovit.loading import load_model_and_processor
    from modeling_emovit.processing_qwen2_vl_image_only import Qwen2VLImageOnlyProcessor

    model, processor = tiny_vlm("qwen2_5_vl")
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    processor.image_processor.save_pretrained(tmp_path)
    preprocessor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    preprocessor.update(processor_class="Qwen2_5_VLProcessor", image_processor_type="Qwen2VLImageProcessor")
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": processor.chat_template}))
    assert not is_torchvision_available()  # this machine's (and CI's) environment: the case this path exists for
    with pytest.raises(ImportError, match="Qwen2VLVideoProcessor requires the Torchvision library"):
        AutoProcessor.from_pretrained(tmp_path)  # the stock processor needs its video processor

    _, loaded = load_model_and_processor(str(tmp_path))
    assert isinstance(loaded, Qwen2VLImageOnlyProcessor) and loaded.chat_template == processor.chat_template
    assert torch.equal(prefix_groups(loaded, IMAGES[:1], INSTRUCTION)[0][1]["input_ids"],
                       prefix_groups(processor, IMAGES[:1], INSTRUCTION)[0][1]["input_ids"])


@pytest.mark.parametrize("name, model_type", [("tiny-random-llava", "llava"), ("small-random-idefics3", "idefics3"),
                                              ("tiny-random-qwen2-vl", "qwen2_vl"), ("tiny-random-qwen2.5-vl", "qwen2_5_vl")])
def test_tiny_vlm_names_load_as_recipes_name_them(name, model_type):
    from modeling_emovit.loading import load_model_and_processor, model_type_of

    model, processor = load_model_and_processor(name)
    assert model_type_of(name) == model.config.model_type == model_type
    assert model.config.get_text_config().hidden_size == (128 if name.startswith("small") else 32)
    assert processor.chat_template is not None


def test_the_judged_reasoning_task_asks_a_chat_template_model_through_its_template(tmp_path):
    from openai_server import running_openai_server
    from test_eval_judge import judged_eval
    from test_eval_judge import write_split as write_judged_split

    model = save_tiny_vlm("qwen2_vl", tmp_path / "qwen")
    data = write_judged_split(tmp_path / "data", "reasoning", rows=2)
    with running_openai_server(respond=lambda body: "8 6\nAssistant 1 is more specific.") as (base_url, stats):
        assert judged_eval(model, data, tmp_path / "out", "reasoning", base_url) == 0
        assert stats.requests == 2
    assert json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]["relative_score"] == pytest.approx(75)
    for body in stats.bodies:  # the model's answer, without the prompt, is what the judge reviews
        review = body["messages"][-1]["content"]
        answer = review.split("[Assistant 2]\n", 1)[1].split("\n\n[End of Assistant 2]")[0]
        assert answer and "feel amused" not in answer and "<|im_start|>" not in answer
