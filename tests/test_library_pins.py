"""Library behaviours the package works around, pinned to the versions they were checked against.

Each test states what the library does today; when an upgrade changes it, the test fails and names the workaround
that can go (or must change).
"""

import subprocess
import sys

import torch
from PIL import Image

from modeling_emovit.testing import tiny_emovit


def test_trl_1_16_sft_trainer_loss_needs_a_last_hidden_state_that_instructblip_outputs_lack(tmp_path):
    """Why `EmoVITSFTTrainer.compute_loss` is `transformers.Trainer.compute_loss` (emovit/training/trainer.py)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from emovit.training.collator import EmoVITCollator

    model, processor = tiny_emovit("llama")
    rows = Dataset.from_list([{"image": Image.new("RGB", (32, 32), (200, 20, 20)), "prompt": "Which emotion?",
                               "completion": "Predict emotion: awe"}] * 2)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, use_cpu=True, bf16=False,
                     report_to="none", save_strategy="no", gradient_checkpointing=False, remove_unused_columns=False,
                     disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=processor,
                         data_collator=EmoVITCollator(processor))
    batch = EmoVITCollator(processor)([rows[0], rows[1]])
    batch.pop("skipped_images")
    try:
        trainer.compute_loss(model, dict(batch))
    except AttributeError as error:
        assert "last_hidden_state" in str(error)
    else:
        raise AssertionError("TRL's SFTTrainer.compute_loss now works on InstructBLIP outputs: drop the override.")


REGISTER_ONLY = """
from transformers import AutoModelForMultimodalLM
from transformers.models.auto import modeling_auto
import transformers.cli.serving.model_manager as model_manager, inspect
from modeling_emovit import EmoVITConfig, EmoVITForConditionalGeneration
AutoModelForMultimodalLM.register(EmoVITConfig, EmoVITForConditionalGeneration, exist_ok=True)
print("emovit" in modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES,
      "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES" in inspect.getsource(model_manager))
"""


def test_transformers_5_24_serve_reads_a_model_type_table_that_registration_does_not_fill():
    """Why `emovit.serving.register_with_transformers_serve` adds "emovit" to a private transformers table."""
    result = subprocess.run([sys.executable, "-c", REGISTER_ONLY], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_get_image_features_from_pixels_equals_transformers_5_24_instructblip():
    """`EmoVITForConditionalGeneration.get_image_features` adapts the parent's; from pixels both must agree."""
    from transformers import InstructBlipForConditionalGeneration

    model, processor = tiny_emovit("llama")
    inputs = processor(images=[Image.new("RGB", (40, 30), (10, 200, 30))], text=["Which emotion?"], return_tensors="pt")
    arguments = dict(pixel_values=inputs["pixel_values"], qformer_input_ids=inputs["qformer_input_ids"],
                     qformer_attention_mask=inputs["qformer_attention_mask"])
    with torch.no_grad():
        ours = model.get_image_features(**arguments).pooler_output
        parents = InstructBlipForConditionalGeneration.get_image_features(model, **arguments).pooler_output
    assert torch.equal(ours, parents)


def test_transformers_5_24_serve_has_no_probability_route_and_exposes_its_app_only_from_start_server():
    """Why `emovit.serving` adds /v1/emotions from a `Serve.start_server` override, reading `_model_manager` and
    `_generation_state`: chat completions drop `logprobs`, and in blocking mode `Serve.__init__` runs the server
    before returning, so only `start_server` (called by `__init__` in non-blocking mode) sees the built app."""
    import inspect

    from transformers.cli import serve
    from transformers.cli.serving import chat_completion

    assert "logprobs" in chat_completion.UNUSED_CHAT_COMPLETION_FIELDS
    source = inspect.getsource(serve.Serve.__init__)
    assert "self.start_server()" in source and "self.server.run()" in source
    assert "self._model_manager = ModelManager(" in source and "self._generation_state = GenerationState(" in source


def test_datasets_5_2_writes_image_bytes_plain_one_copy_per_row():
    """Why `dataset_builder/shards.py` rewrites the builder's Arrow shards as Parquet itself: datasets' Parquet
    writer stores an `Image()` column's bytes PLAIN and uncompressed (`get_parquet_column_options`), so an image
    with several instruction rows would be stored once per row."""
    from datasets import Features, Value
    from datasets import Image as ImageFeature
    from datasets.arrow_writer import get_parquet_column_options

    features = Features({"id": Value("string"), "image": ImageFeature()})
    options = get_parquet_column_options(features, features.arrow_schema)
    assert options["column_encoding"] == {"image.bytes": "PLAIN", "image.path": "PLAIN"}
    assert "image.bytes" not in options["use_dictionary"]


def test_datasets_5_2_passes_a_card_configs_filters_to_the_parquet_builder(tmp_path):
    """Why a built folder's task configs can read the `all` files: datasets hands a `configs` entry's keys that are
    `ParquetConfig` fields (`filters`) to the builder (`create_builder_configs_from_metadata_configs`), which
    filters the rows it reads (`dataset_builder/card.py`)."""
    import datasets

    (tmp_path / "all").mkdir()
    datasets.Dataset.from_dict({"task": ["a", "b", "a"], "n": [1, 2, 3]}).to_parquet(str(tmp_path / "all" / "train.parquet"))
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: a\n  data_files:\n  - split: train\n    path: all/train.parquet\n"
        "  filters:\n  - [task, ==, a]\n---\n")
    assert datasets.load_dataset(str(tmp_path), "a", split="train")["n"] == [1, 3]
    assert [row["n"] for row in datasets.load_dataset(str(tmp_path), "a", split="train", streaming=True)] == [1, 3]


def test_datasets_5_2_arrow_based_builders_key_their_tables_with_datasets_builder_key():
    """Why `EmoVITInstructBuilder._generate_tables` yields `datasets.builder.Key(shard, table)`: the Arrow-based
    builder reads `key.original_shard_id` of every key it is given (`ArrowBasedBuilder._prepare_split_single`)."""
    import inspect

    from datasets.builder import ArrowBasedBuilder, Key

    assert "key.original_shard_id" in inspect.getsource(ArrowBasedBuilder._prepare_split_single)
    assert Key(1, 2).original_shard_id == 1
