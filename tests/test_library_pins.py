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
