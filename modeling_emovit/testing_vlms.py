"""Tiny random chat-template vision-language models built fully offline: LLaVA-1.5, Idefics3 (SmolVLM), Qwen2-VL and
Qwen2.5-VL, for tests, benchmarks and `small-random-<kind>` recipes.

    model, processor = tiny_vlm("qwen2_vl")            # or save both and load with the Auto classes
    model, processor = tiny_vlm("llava", size="small")  # hidden 128, 64 px: large enough to learn the demo task

Tokenizer: the package's offline byte-level BPE (`testing.train_lm_tokenizer`) plus each family's special tokens.
Chat templates: SmolVLM's and Qwen2-VL's are read from the copies TRL ships (`trl.chat_template_utils`), which are
the models' own, so that TRL recognises them and swaps in its `{% generation %}` variants for `assistant_only_loss`;
LLaVA-1.5's "USER: <image>\\n... ASSISTANT: ..." has no TRL copy, so this one carries the markers itself and writes
BOS, as TRL's collator tokenizes rendered chats without special tokens. Qwen2-VL processors are
`Qwen2VLImageOnlyProcessor` (the stock class needs torchvision), saved beside the weights as remote code.
"""

import torch
import transformers as tf
from tokenizers import processors

from .labels import MIKELS_EMOTIONS
from .processing_qwen2_vl_image_only import Qwen2VLImageOnlyProcessor
from .testing import _corpus, train_lm_tokenizer

TINY_VLM_KINDS = ("llava", "idefics3", "qwen2_vl", "qwen2_5_vl")
# Role words and the default system prompt become whole BPE tokens.
TEMPLATE_CORPUS = ["USER: ASSISTANT: User: Assistant: system user assistant", "You are a helpful assistant."] * 10
LLAVA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %} "
    "{% elif message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT:{% generation %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %} {{ part['text'] }}{% endif %}{% endfor %}"
    "{{ eos_token }}{% endgeneration %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SIZES = {
    # image side, patch, hidden, FFN, layers, heads
    "tiny": dict(image=32, patch=8, hidden=32, ffn=64, layers=2, heads=4),
    "small": dict(image=64, patch=8, hidden=128, ffn=512, layers=2, heads=4),
}


def _text_config(dims: dict, tokenizer, **extra) -> dict:
    return dict(hidden_size=dims["hidden"], intermediate_size=dims["ffn"], num_hidden_layers=dims["layers"],
                num_attention_heads=dims["heads"], num_key_value_heads=dims["heads"], max_position_embeddings=1024,
                tie_word_embeddings=False, vocab_size=len(tokenizer), **_special_ids(tokenizer), **extra)


def _special_ids(tokenizer) -> dict:
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)


def _llava(tokenizer, dims):
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    side = dims["image"]
    image_processor = tf.CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    processor = tf.LlavaProcessor(image_processor, tokenizer, chat_template=LLAVA_TEMPLATE, patch_size=dims["patch"],
                                  vision_feature_select_strategy="default", num_additional_image_tokens=1)
    vision = dict(model_type="clip_vision_model", hidden_size=dims["hidden"], intermediate_size=dims["ffn"],
                  num_hidden_layers=dims["layers"], num_attention_heads=dims["heads"], image_size=side,
                  patch_size=dims["patch"], projection_dim=dims["hidden"])
    config = tf.LlavaConfig(
        vision_config=vision, text_config=dict(model_type="llama", **_text_config(dims, tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    return tf.LlavaForConditionalGeneration, config, processor


def _idefics3(tokenizer, dims):
    from trl.chat_template_utils import smolvlm_chat_template

    # SmolVLM's turn markers: <|im_start|> as BOS, <end_of_utterance> ending each turn (what generation stops on);
    # Idefics3Processor would add its image tokens itself, they are added first to fix their ids.
    extra = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    extra += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer.add_special_tokens({"bos_token": "<|im_start|>", "additional_special_tokens": extra})
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", tokenizer.bos_token_id)]
    )
    tokenizer.eos_token = "<end_of_utterance>"
    side = dims["image"]
    image_processor = tf.Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": side},
                                                   max_image_size={"longest_edge": side})
    # image tokens per image: (side / patch)^2 patches, merged scale_factor^2 at a time
    processor = tf.Idefics3Processor(image_processor, tokenizer, chat_template=smolvlm_chat_template,
                                     image_seq_len=(side // dims["patch"]) ** 2 // 4)
    vision = dict(hidden_size=dims["hidden"], intermediate_size=dims["ffn"], num_hidden_layers=dims["layers"],
                  num_attention_heads=dims["heads"], image_size=side, patch_size=dims["patch"])
    config = tf.Idefics3Config(
        vision_config=vision, text_config=dict(model_type="llama", **_text_config(dims, tokenizer, rms_norm_eps=1e-5)),
        scale_factor=2, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    return tf.Idefics3ForConditionalGeneration, config, processor


def _qwen2_vl(tokenizer, dims, version: str):
    from trl.chat_template_utils import qwen2_5_vl_chat_template  # Qwen2-VL and Qwen2.5-VL share it

    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
        "<|video_pad|>"]})
    # Qwen2 writes no BOS; the instruct models end a turn (and generation) with <|im_end|> and pad with <|endoftext|>
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = None, "<|im_end|>", "<|endoftext|>"
    side, merge = dims["image"], 2
    # min = max pixels: a square image becomes (side / patch / merge)^2 image tokens
    image_processor = tf.Qwen2VLImageProcessorPil(size={"shortest_edge": side * side, "longest_edge": side * side},
                                                  patch_size=dims["patch"], temporal_patch_size=2, merge_size=merge)
    processor = Qwen2VLImageOnlyProcessor(image_processor, tokenizer, chat_template=qwen2_5_vl_chat_template)
    # head_dim = hidden / heads rotary dimensions, half of them frequencies, split over (time, height, width)
    half = dims["hidden"] // dims["heads"] // 2
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [half - 2 * (half // 4), half // 4, half // 4]}
    text = _text_config(dims, tokenizer, rope_parameters=rope)
    if version == "qwen2_vl":
        vision = dict(depth=dims["layers"], embed_dim=dims["hidden"], hidden_size=dims["hidden"], num_heads=dims["heads"],
                      mlp_ratio=dims["ffn"] // dims["hidden"], patch_size=dims["patch"], spatial_merge_size=merge,
                      temporal_patch_size=2)
        config_class, model_class = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
    else:  # window attention over 2x2 merged tokens, the last block full attention, SwiGLU, RMSNorm
        vision = dict(depth=dims["layers"], hidden_size=dims["hidden"], intermediate_size=dims["ffn"],
                      num_heads=dims["heads"], out_hidden_size=dims["hidden"], patch_size=dims["patch"],
                      spatial_merge_size=merge, temporal_patch_size=2, window_size=2 * merge * dims["patch"],
                      fullatt_block_indexes=[dims["layers"] - 1])
        config_class, model_class = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
    token = tokenizer.convert_tokens_to_ids
    config = config_class(
        vision_config=vision, text_config=text, tie_word_embeddings=False, image_token_id=token("<|image_pad|>"),
        video_token_id=token("<|video_pad|>"), vision_start_token_id=token("<|vision_start|>"),
        vision_end_token_id=token("<|vision_end|>"),
    )
    return model_class, config, processor


def tiny_vlm(kind: str, size: str = "tiny", seed: int = 0, emotion_labels=MIKELS_EMOTIONS, corpus=None):
    """Returns `(model, processor)`: a random `kind` (one of TINY_VLM_KINDS) of `size` "tiny" or "small", in eval
    mode, whose processor renders EmoVIT's instruction through the family's chat template.

    `corpus`: extra text for the tokenizer (captions, instructions) so that frequent words become single tokens.
    """
    if kind not in TINY_VLM_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TINY_VLM_KINDS)}, not {kind!r}.")
    dims = SIZES[size]
    tokenizer = train_lm_tokenizer(_corpus(list(emotion_labels), TEMPLATE_CORPUS + list(corpus or [])))
    if kind == "llava":
        model_class, config, processor = _llava(tokenizer, dims)
    elif kind == "idefics3":
        model_class, config, processor = _idefics3(tokenizer, dims)
    else:
        model_class, config, processor = _qwen2_vl(tokenizer, dims, kind)
    if len(tokenizer) != config.get_text_config().vocab_size:
        raise RuntimeError(f"{kind}: the processor added tokens after the config was built.")
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.update(**_special_ids(tokenizer))
    return model.eval(), processor
