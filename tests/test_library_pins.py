"""Library behaviours the package works around, pinned to the versions they were checked against.

Each test states what the library does today; when an upgrade changes it, the test fails and names the workaround
that can go (or must change).
"""

import subprocess
import sys

import pytest
import torch
from PIL import Image

from modeling_emovit.testing import tiny_emovit


def test_trl_1_16_sft_trainer_loss_needs_a_last_hidden_state_that_instructblip_outputs_lack(tmp_path):
    """Why `EmoVITSFTTrainer.compute_loss` is `transformers.Trainer.compute_loss` (emovit/training/trainer.py)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from emovit.training.collator import EmoVITCollator
    from modeling_emovit.backbone import backbone_adapter

    model, processor = tiny_emovit("llama")
    rows = Dataset.from_list([{"image": Image.new("RGB", (32, 32), (200, 20, 20)), "prompt": "Which emotion?",
                               "completion": "Predict emotion: awe"}] * 2)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, use_cpu=True, bf16=False,
                     report_to="none", save_strategy="no", gradient_checkpointing=False, remove_unused_columns=False,
                     disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=processor,
                         data_collator=EmoVITCollator(backbone_adapter(model, processor)))
    batch = EmoVITCollator(backbone_adapter(model, processor))([rows[0], rows[1]])
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


def test_transformers_5_24_caches_repeat_their_rows_in_place_image_major():
    """Why `candidate_scoring._expanded` can call `Cache.batch_repeat_interleave(count)` and read row b*C + c as
    image b's candidate c (the expanded strategy, and T5's `EncoderDecoderCache`)."""
    from transformers import DynamicCache

    model, _ = tiny_emovit("llama")
    cache = DynamicCache(config=model.config.text_config)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with torch.no_grad():
        model.language_model(input_ids=ids, cache=cache, use_cache=True)
    before = cache.layers[0].keys.clone()
    cache.batch_repeat_interleave(3)
    assert torch.equal(cache.layers[0].keys, before.repeat_interleave(3, dim=0))


def test_transformers_5_24_qwen2_vl_keeps_the_prefix_rope_deltas_on_its_inner_model():
    """Why `backbone_chat_template._MRopeModel` reads `model.model.rope_deltas` after the prefix forward: the text
    after an image sits at (sequence index + delta) on all three rotary axes, and the forward stores one delta per
    row there, as generation continues from it."""
    from modeling_emovit.backbone import backbone_adapter
    from modeling_emovit.testing_vlms import tiny_vlm

    model, processor = tiny_vlm("qwen2_vl")
    images = [Image.new("RGB", (40, 40), (200, 30, 30))] * 2
    inputs = backbone_adapter(model, processor).prompt_inputs(images, ["Which emotion?"] * 2)
    assert model.model.rope_deltas is None
    with torch.no_grad():
        model(**inputs)
    deltas = model.model.rope_deltas
    image_tokens = int((inputs["input_ids"][0] == model.config.image_token_id).sum())
    side = int(inputs["image_grid_thw"][0, 1]) // 2  # merged 2x2: the image spans `side` positions per axis
    assert deltas.shape == (2, 1) and int(deltas[0, 0]) == side - image_tokens


def test_transformers_5_24_instructblip_takes_precomputed_image_features_as_mm_encoder_outputs():
    """Why `EmoVITForConditionalGeneration.forward(image_embeds=...)` hands the Q-Former's output to the parent as
    `mm_encoder_outputs={"image": ...}` (the vision-feature cache): the parent then skips `get_image_features`."""
    import inspect

    from transformers import InstructBlipForConditionalGeneration

    source = inspect.getsource(InstructBlipForConditionalGeneration.forward)
    assert "mm_encoder_outputs" in inspect.signature(InstructBlipForConditionalGeneration.forward).parameters
    assert 'if mm_encoder_outputs.get("image") is None:' in source


def test_openai_3_57_post_returns_an_unread_response_for_the_raw_stream_header_and_maps_refusals_to_timeouts():
    """Why `dataset_builder.chat.runner` sends `X-Stainless-Raw-Response: stream` (to judge a reply's size before
    reading it) and looks for `ConnectionRefusedError` under the SDK's error (its aiohttp transport reports a refused
    connection as `httpx2.ConnectTimeout`, hence `APITimeoutError`)."""
    import asyncio
    import socket

    import httpx2
    import openai

    from dataset_builder.chat import ClientSettings, make_client
    from dataset_builder.chat.runner import RAW_RESPONSE_HEADER
    from openai_server import running_openai_server

    async def post(url):
        client = make_client(ClientSettings(model="loopback", base_url=url, timeout=5))
        try:
            response = await client.post("/chat/completions", cast_to=httpx2.Response,
                                         body={"model": "loopback", "messages": [{"role": "user", "content": "hi"}]},
                                         options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
            unread = not response.is_stream_consumed
            await response.aread()
            return unread, response.json()["choices"][0]["message"]["content"]
        finally:
            await client.close()

    with running_openai_server() as (base_url, _):
        assert asyncio.run(post(base_url)) == (True, '{"echo": "hi"}')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with pytest.raises(openai.APITimeoutError) as refused:
        asyncio.run(post(closed))
    causes = [refused.value]
    while causes[-1].__cause__ or causes[-1].__context__:
        causes.append(causes[-1].__cause__ or causes[-1].__context__)
    assert isinstance(causes[1], httpx2.ConnectTimeout) and isinstance(causes[-1], ConnectionRefusedError)
def test_transformers_5_24_refuses_a_folders_own_code_with_a_plain_value_error_naming_the_argument():
    """Why `modeling_emovit.loading.consent_to_remote_code` recognises the refusal by `REFUSED_REMOTE_CODE` in a
    plain ValueError's text: transformers has no exception class of its own for it."""
    from transformers.dynamic_module_utils import resolve_trust_remote_code

    from modeling_emovit.loading import REFUSED_REMOTE_CODE

    try:
        resolve_trust_remote_code(False, "some/model", has_local_code=False, has_remote_code=True)
    except ValueError as error:
        assert type(error) is ValueError and REFUSED_REMOTE_CODE in str(error)
    else:
        raise AssertionError("transformers no longer refuses remote code with trust_remote_code=False")
    assert resolve_trust_remote_code(False, "some/model", has_local_code=True, has_remote_code=True) is False


def test_transformers_5_24_load_image_fetches_urls_follows_redirects_and_opens_paths():
    """Why `emovit serve` decodes every image itself (`emovit.serving_inputs`) and hands transformers no string a
    client sent: `load_image`, which processors and the serve handlers call on strings, reaches the network and the
    disk with no deadline."""
    import inspect

    from transformers import image_utils

    source = inspect.getsource(image_utils.load_image)
    assert "follow_redirects=True" in source and "os.path.isfile(image)" in source


def test_transformers_5_24_serve_passes_an_image_url_object_through_to_the_processor():
    """Why `emovit.serving_inputs.decode_message_images` can put a decoded PIL image where a chat request's image URL
    was: the message conversion of the serve handlers copies `image_url.url` as it is into an `image` part's `url`,
    and the processor's chat template takes that image as it is. `Serve.__init__` keeps the chat handler as
    `_chat_handler`, which the route `emovit serve` puts in place of transformers' calls."""
    import inspect

    from transformers.cli import serve
    from transformers.cli.serving.utils import BaseHandler, Modality

    image = Image.new("RGB", (40, 30), (10, 200, 30))
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                           {"type": "text", "text": "Which emotion?"}]}
    converted = BaseHandler.get_processor_inputs_from_messages([message], Modality.VLM)
    assert converted[0]["content"][0]["type"] == "image" and converted[0]["content"][0]["url"] is image
    _, processor = tiny_emovit("llama")
    inputs = processor.apply_chat_template(converted, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    direct = processor(images=[image], text=["Which emotion?"], return_tensors="pt")
    assert torch.equal(inputs["pixel_values"], direct["pixel_values"])
    assert "self._chat_handler = ChatCompletionHandler(" in inspect.getsource(serve.Serve.__init__)


def test_uvicorn_raises_a_handled_ctrl_c_again_once_it_has_shut_down():
    """Why `emovit.serving.serve` runs uvicorn in the main thread (its signal handlers work only there: one Ctrl-C
    shuts down gracefully) and catches the KeyboardInterrupt that follows the shutdown (checked with uvicorn 0.55)."""
    import inspect

    import uvicorn

    source = inspect.getsource(uvicorn.Server.capture_signals)
    assert "threading.main_thread()" in source and "signal.raise_signal(captured_signal)" in source


def test_transformers_5_24_serve_handlers_resolve_the_pinned_model_as_a_triple():
    """Why `emovit.serving.EmotionHandler` calls `BaseHandler._resolve_model(body)`: it applies the server's pinned
    model (`force_model`), refuses another one by name, loads it once, and returns `(model_id, model, processor)`,
    as the chat-completion handler uses it."""
    import inspect

    from transformers.cli.serving.utils import BaseHandler

    source = inspect.getsource(BaseHandler._resolve_model)
    assert list(inspect.signature(BaseHandler._resolve_model).parameters) == ["self", "body"]
    assert "force_model" in source and "return model_id, model, processor" in source


def test_transformers_5_24_trainer_counts_optimizer_steps_per_epoch_in_set_initial_training_values(tmp_path):
    """Why `EmoVITSFTTrainer.create_scheduler` reads `set_initial_training_values(args, dataloader)[1]`: the number
    of optimizer steps per epoch as the training loop counts them (batches / accumulation, rounded up), which LAVIS's
    per-epoch schedule needs."""
    from torch.utils.data import DataLoader
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=3, use_cpu=True, report_to="none")
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args)
    values = trainer.set_initial_training_values(args, DataLoader(list(range(10)), batch_size=1))
    assert values[1] == 4  # 10 batches, 3 per optimizer step, the last partial step counted
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


def test_trl_1_16_grpo_forwards_a_fixed_set_of_image_inputs_without_the_qformers_instruction():
    """Why `emovit.training.grpo` refuses EmoVIT (and recipes/README.md's 'GRPO' says what a subclass would need):
    GRPOTrainer's log-probability pass builds the policy's inputs key by key, and `qformer_input_ids` is not a key."""
    import inspect

    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    assert 'model_inputs["pixel_values"]' in source and 'model_inputs["image_grid_thw"]' in source
    assert "qformer" not in source
