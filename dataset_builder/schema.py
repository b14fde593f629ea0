"""The EmoVIT instruction dataset's schema: its tasks, configs, columns, the visual clues, and its citation.

One home for these names: the builder writes them, the card describes them, generation and evaluation read them.
`features()` imports `datasets` only when called, so the names cost nothing to import.
"""

from functools import cache

# EmoVIT's three kinds of emotion instruction (Xie et al., CVPR 2024, Sec. 3.2); the last two are GPT-written.
TASKS = ("categorical", "conversation", "reasoning")
GENERATED_TASKS = ("conversation", "reasoning")
# The conversational view: one row per image, `images` plus every instruction of the image as chat turns in
# `messages` (TRL's conversational format, which its stock vision-language SFT path reads as is).
MESSAGES_CONFIG = "messages"
# One dataset config per task, every row of the three, and the conversational view.
CONFIGS = (*TASKS, "all", MESSAGES_CONFIG)
# EmoSet's visual clues (Yang et al., ICCV 2023), in the order EmoVIT's clue text lists them.
CLUE_KEYS = ("brightness", "colorfulness", "scene", "object", "facial_expression", "human_action")
# The longest text a build stores in one field (a clue, a caption, an object name, a generated question or answer):
# EmoSet's clues are a few words and a reasoning answer about a thousand characters; longer values are left out and
# counted, so that one hostile annotation cannot fill a column.
MAX_TEXT_CHARS = 10_000
MAX_OBJECTS = 256  # names in one record's `object` list
CITATION = """@inproceedings{xie2024emovit,
  title={EmoVIT: Revolutionizing Emotion Insights with Visual Instruction Tuning},
  author={Xie, Hongxia and Peng, Chu-Jun and Tseng, Yu-Wen and Chen, Hung-Jen and Hsu, Chan-Feng
          and Shuai, Hong-Han and Cheng, Wen-Huang},
  booktitle={CVPR},
  year={2024}
}"""


def config_features(name: str, labels):
    """The columns of one config: `messages_features(labels)` for the conversational view, `features(labels)`
    otherwise. `labels` are the names of the `label` column (`ClassLabel`), the build's label space."""
    return messages_features(tuple(labels)) if name == MESSAGES_CONFIG else features(tuple(labels))


def _image_and_labels(labels: tuple[str, ...]) -> dict:
    """Columns every config shares: the image's content hash (`dataset_builder.images.image_digest`), its source,
    its emotion as text and as a `ClassLabel` over the build's labels (how the dataset carries its label space:
    `features["label"].names`), and the label space's name."""
    import datasets

    return {
        "image_sha256": datasets.Value("string"),
        "source": datasets.Value("string"),
        "emotion": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(labels)),
        "label_space": datasets.Value("string"),
    }


@cache
def messages_features(labels: tuple[str, ...]):
    """One image and its instructions as alternating user/assistant turns; the first user turn holds the image."""
    import datasets

    part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "images": datasets.List(datasets.Image()),
            "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(part)}),
            **_image_and_labels(labels),
        }
    )


@cache
def features(labels: tuple[str, ...]):
    """The columns of every config: the image, its labels and clues, and one instruction (TRL's prompt/completion)."""
    import datasets

    attributes = {
        "brightness": datasets.Value("float32"),
        "colorfulness": datasets.Value("float32"),
        "scene": datasets.Value("string"),
        "object": datasets.List(datasets.Value("string")),
        "facial_expression": datasets.Value("string"),
        "human_action": datasets.Value("string"),
        "valence": datasets.Value("float32"),
        "arousal": datasets.Value("float32"),
        "label_distribution": datasets.List(
            {"label": datasets.Value("string"), "probability": datasets.Value("float32")}
        ),
    }
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            **_image_and_labels(labels),
            "attributes": attributes,
            "caption": datasets.Value("string"),
            "task": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "completion": datasets.Value("string"),
        }
    )
