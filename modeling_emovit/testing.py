"""Tiny random EmoVIT models built fully offline, for tests, the demo and benchmarks.

Tokenizers are trained in memory (byte-level BPE for the LM, WordPiece for the Q-Former, as BERT), so nothing is
downloaded. Sizes: "tiny" (hidden 32, fast for tests) and "small" (hidden 128, patch 8, 16 query tokens), the
smallest size measured to learn the 8-class emotion task with the LM frozen (smaller LMs or fewer image patches
stay near chance).
"""

import os
from collections import Counter
from contextlib import contextmanager

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BlipImageProcessorPil,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    PreTrainedTokenizerFast,
)

from .configuration_emovit import EmoVITConfig
from .labels import MIKELS_EMOTIONS
from .modeling_emovit import EmoVITForConditionalGeneration
from .processing_emovit import EmoVITProcessor

SIZES = {
    # image, patch, hidden, ffn, layers, heads, query tokens, cross-attention every n Q-Former layers
    "tiny": dict(image=32, patch=8, hidden=32, ffn=64, layers=2, heads=4, queries=4, cross_every=1),
    "small": dict(image=64, patch=8, hidden=128, ffn=512, layers=2, heads=4, queries=16, cross_every=1),
}
LM_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3
QFORMER_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4, BERT order
BASE_CORPUS = [
    "Please select the emotion closest to the image from the following options:",
    "(Do not provide answers outside of the candidates options.) Please answer in the following format:  Predict emotion:",
    "What emotion does this image evoke? Why does it feel this way? Describe the image.",
    "The image shows a bright, colourful scene with people, objects, faces and actions in it.",
    "joy love surprise neutral positive negative happiness sad angry scared amused",
]


def _corpus(labels, extra):
    answers = [f"Predict emotion: {label}" for label in labels]
    return BASE_CORPUS + answers * 20 + [" ".join(labels)] * 20 + list(extra or [])


@contextmanager
def _single_threaded_tokenizers():
    """Parallel BPE/WordPiece training breaks ties differently from run to run (258 or 259 Q-Former tokens were
    seen); one thread makes every rank of a distributed run, and every resume, build the same vocabulary."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def train_lm_tokenizer(corpus, vocab_size=1000, encoder_decoder=False) -> PreTrainedTokenizerFast:
    """Byte-level BPE (exact round trip, frequent words one token); BOS-prefixed, or T5-style EOS-suffixed."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        show_progress=False,
        vocab_size=vocab_size, special_tokens=LM_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    with _single_threaded_tokenizers():
        tokenizer.train_from_iterator(corpus, trainer)
    if encoder_decoder:
        tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
        specials = dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>", padding_side="right")
    else:
        tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        specials = dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", padding_side="left")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **specials)


def train_qformer_tokenizer(corpus, vocab_size=600) -> PreTrainedTokenizerFast:
    """Lower-cased WordPiece with [CLS] ... [SEP], as the BERT tokenizer of the InstructBLIP Q-Former.

    The vocabulary is counted, not trained (the WordPiece trainer numbers tokens differently on every run): the most
    frequent words, then every character alone and as a `##` continuation, so any text still tokenizes.
    """
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in corpus for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    characters = sorted({character for word in words for character in word})
    pieces = characters + [f"##{character}" for character in characters]
    frequent = [word for word, _ in sorted(words.items(), key=lambda item: (-item[1], item[0])) if len(word) > 1]
    vocab = QFORMER_SPECIALS + pieces + frequent[: max(0, vocab_size - len(QFORMER_SPECIALS) - len(pieces))]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", padding_side="right",
    )


def _text_config(text_model: str, size: dict, vocab_size: int) -> dict:
    hidden, ffn, layers, heads = size["hidden"], size["ffn"], size["layers"], size["heads"]
    ids = dict(vocab_size=vocab_size, pad_token_id=0, eos_token_id=2)
    if text_model == "llama":
        return dict(model_type="llama", hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                    num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=512,
                    bos_token_id=1, tie_word_embeddings=False, **ids)
    if text_model == "opt":
        return dict(model_type="opt", hidden_size=hidden, ffn_dim=ffn, num_hidden_layers=layers,
                    num_attention_heads=heads, word_embed_proj_dim=hidden, max_position_embeddings=512,
                    bos_token_id=1, **ids)
    if text_model == "t5":
        return dict(model_type="t5", d_model=hidden, d_ff=ffn, d_kv=hidden // heads, num_layers=layers,
                    num_decoder_layers=layers, num_heads=heads, decoder_start_token_id=0, **ids)
    raise ValueError(f"text_model must be 'opt', 'llama' or 't5', not {text_model!r}.")


def tiny_emovit(
    text_model: str = "llama",
    size: str = "tiny",
    seed: int = 0,
    emotion_labels=MIKELS_EMOTIONS,
    corpus=None,
    instructblip: bool = False,
    size_overrides: dict | None = None,
):
    """Returns `(model, processor)`: a random EmoVIT (or, with `instructblip=True`, a plain InstructBLIP).

    `text_model`: "opt" | "llama" | "t5"; `size`: "tiny" | "small"; `corpus`: extra text for the tokenizers
    (captions, instructions) so that frequent words become single tokens; `size_overrides`: entries of `SIZES` to
    change, e.g. `{"cross_every": 2}` for LAVIS' Q-Former layout (cross-attention in every second layer).
    """
    dims = {**SIZES[size], **(size_overrides or {})}
    texts = _corpus(list(emotion_labels), corpus)
    tokenizer = train_lm_tokenizer(texts, encoder_decoder=text_model == "t5")
    qformer_tokenizer = train_qformer_tokenizer(texts)
    image_processor = BlipImageProcessorPil(size={"height": dims["image"], "width": dims["image"]})
    processor_class = InstructBlipProcessor if instructblip else EmoVITProcessor
    processor = processor_class(image_processor, tokenizer, qformer_tokenizer, num_query_tokens=dims["queries"])
    tower = dict(hidden_size=dims["hidden"], intermediate_size=dims["ffn"], num_hidden_layers=dims["layers"],
                 num_attention_heads=dims["heads"])
    config = dict(
        # transformers' default vision initializer_range (1e-10) leaves a random encoder blind: use 0.02.
        vision_config=dict(image_size=dims["image"], patch_size=dims["patch"], initializer_range=0.02, **tower),
        qformer_config=dict(vocab_size=len(qformer_tokenizer), max_position_embeddings=256,
                            cross_attention_frequency=dims["cross_every"], **tower),
        text_config=_text_config(text_model, dims, vocab_size=len(tokenizer)),
        num_query_tokens=dims["queries"],
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    if instructblip:
        model = InstructBlipForConditionalGeneration(InstructBlipConfig(**config))
        torch.nn.init.normal_(model.query_tokens, std=0.02)  # LAVIS' start, as EmoVIT's own init does
    else:
        model = EmoVITForConditionalGeneration(EmoVITConfig(emotion_labels=list(emotion_labels), **config))
    return model.eval(), processor
