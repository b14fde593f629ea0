"""A Qwen2-VL / Qwen2.5-VL processor for images only, for machines without torchvision.

transformers cannot build the stock `Qwen2VLProcessor` or `Qwen2_5_VLProcessor` (nor load one with `AutoProcessor`)
without torchvision: every video processor class needs it, and `ProcessorMixin.__init__` checks the
`video_processor` argument against a class that is then missing, even for `video_processor=None`. A processor's
parts are the names its `__init__` takes, so this subclass, which leaves `video_processor` out, saves and loads only
the image processor and the tokenizer; everything else (image-token expansion, `mm_token_type_ids`, the chat
template) is the stock class. `modeling_emovit.loading` uses it for Qwen2-VL folders when torchvision is missing.
Saving one writes this file beside it and names it in `auto_map` (it imports only transformers), so the folder loads
with `AutoProcessor(..., trust_remote_code=True)` and in the emotion pipeline where emovit is not installed.
"""

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` without a video processor: images and text only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise ValueError("Qwen2VLImageOnlyProcessor reads images only (video processors need torchvision).")
        return super().__call__(images=images, text=text, **kwargs)


# save_pretrained copies this file beside the processor files and records it in `auto_map`.
Qwen2VLImageOnlyProcessor.register_for_auto_class("AutoProcessor")
