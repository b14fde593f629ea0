"""Emotion label spaces and how EmoVIT asks for one of their labels.

Imported by the model config (its default labels), the image-emotion-classification pipeline (label-space names,
the instruction and the candidate answers) and the dataset's label spaces (`dataset_builder.emotions` adds polarity
lookups and the free-text normaliser). Saved beside a model's weights as remote code: plain Python, no imports.
Sources: Mikels et al. 2005 (EmoSet, FI), Ekman (EmotionROI; Emotion6, whose images sit in six emotion folders: its
per-image distributions add a neutral bin, kept with the records, but neutral is never an image's label, so it is
no candidate), Panda et al. ECCV 2018 (UnbiasedEmo; WEBEmo's 25 fine classes under Parrott-style primaries, see
`WEBEMO_HIERARCHY`).
"""

# Mikels' eight emotion categories (Mikels et al., 2005), as used by EmoSet and FI (EmoVIT Sec. 3), in the order
# EmoVIT lists them as candidates.
MIKELS_EMOTIONS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")

_MIKELS_POSITIVE = ("amusement", "awe", "contentment", "excitement")
_MIKELS_NEGATIVE = tuple(label for label in MIKELS_EMOTIONS if label not in _MIKELS_POSITIVE)
# EmotionROI (Peng et al. 2016) and most visual-emotion work count surprise with joy as positive.
_EKMAN_POSITIVE = ("joy", "surprise")
_EKMAN_NEGATIVE = ("anger", "disgust", "fear", "sadness")

# WEBEmo (Panda et al. 2018): 25 fine classes under primaries under 2 polarities. Names as in the paper; the
# release's folder typos ("cheerfullness", "irritabilty") are mapped back by `dataset_builder.emotions`' normaliser.
# UNVERIFIED 7-class level: the WEBEmo release's own category.txt has SIX level-2 classes (anger, fear, joy, love,
# sadness, surprise) with confusion under sadness; the 7 classes here (confusion on its own) follow later
# third-party work, and no text by EmoVIT's or WEBEmo's authors defining a 7-class level was found. Treat
# `webemo-7` results as comparable only to work that uses the same split.
WEBEMO_HIERARCHY: dict[str, tuple[str, ...]] = {
    "anger": ("disgust", "envy", "exasperation", "irritability", "rage"),
    "confusion": ("confusion",),
    "fear": ("horror", "nervousness"),
    "joy": ("cheerfulness", "contentment", "enthrallment", "optimism", "pride", "relief", "zest"),
    "love": ("affection", "gratitude", "lust"),
    "sadness": ("disappointment", "neglect", "sadness", "shame", "suffering", "sympathy"),
    "surprise": ("surprise",),
}
_WEBEMO_POSITIVE_PRIMARIES = ("joy", "love", "surprise")
WEBEMO_PRIMARY_OF = {fine: primary for primary, fines in WEBEMO_HIERARCHY.items() for fine in fines}


def webemo_polarity(primary: str) -> str:
    return "positive" if primary in _WEBEMO_POSITIVE_PRIMARIES else "negative"


def _webemo_polarities(labels: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """`labels`: label -> its WEBEmo primary."""
    return {polarity: tuple(label for label, primary in labels.items() if webemo_polarity(primary) == polarity)
            for polarity in ("positive", "negative")}


# Each label space's labels by polarity ("positive", "negative"; a space may also have "neutral" ones).
LABEL_SPACE_POLARITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "emoset": {"positive": _MIKELS_POSITIVE, "negative": _MIKELS_NEGATIVE},
    "fi": {"positive": _MIKELS_POSITIVE, "negative": _MIKELS_NEGATIVE},
    "emotionroi": {"positive": _EKMAN_POSITIVE, "negative": _EKMAN_NEGATIVE},
    "emotion6": {"positive": _EKMAN_POSITIVE, "negative": _EKMAN_NEGATIVE},
    "unbiasedemo": {"positive": ("joy", "love", "surprise"), "negative": ("anger", "fear", "sadness")},
    "webemo-2": {"positive": ("positive",), "negative": ("negative",)},
    "webemo-7": _webemo_polarities({primary: primary for primary in WEBEMO_HIERARCHY}),
    "webemo-25": _webemo_polarities(WEBEMO_PRIMARY_OF),
}


def label_space_labels(name: str) -> tuple[str, ...]:
    """A label space's labels in the order EmoVIT lists candidates (alphabetical, as the Mikels list is)."""
    return tuple(sorted(label for labels in LABEL_SPACE_POLARITIES[name].values() for label in labels))


# EmoVIT's categorical instruction as released, byte for byte: no space after the colon, two before "Predict".
EMOVIT_INSTRUCTION = (
    "Please select the emotion closest to the image from the following options:{options} (Do not provide answers "
    "outside of the candidates options.) Please answer in the following format:  Predict emotion:"
)


def join_options(labels) -> str:
    """EmoVIT's candidate list: "a, b, ... and z"."""
    labels = list(labels)
    if len(labels) < 2:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def emovit_instruction(labels) -> str:
    """EmoVIT's instruction listing `labels` as the candidates."""
    return EMOVIT_INSTRUCTION.format(options=join_options(labels))


def categorical_answer(label: str) -> str:
    """The answer EmoVIT is trained to give, and the candidate answer rank mode scores."""
    return f"Predict emotion: {label}"
