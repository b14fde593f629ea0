"""Emotion label spaces of the visual emotion datasets, a free-text normaliser onto them, and their polarity.

Sits between the source readers (which see folder names, CSV cells or model answers) and the records: every label
that reaches a record is one of its label space's `labels`. The spaces themselves (labels by polarity, WEBEmo's
hierarchy) live in `modeling_emovit.labels`, which a saved model's emotion pipeline also reads.
"""

import re
from dataclasses import dataclass

from modeling_emovit.errors import EmoVITInputError
from modeling_emovit.labels import (  # noqa: F401  (WEBEmo names re-exported for the WEBEmo reader)
    LABEL_SPACE_POLARITIES,
    WEBEMO_HIERARCHY,
    WEBEMO_PRIMARY_OF,
    label_space_labels,
    webemo_polarity,
)


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's closed set of emotion labels (in the order EmoVIT lists candidates) and each label's polarity."""

    name: str
    labels: tuple[str, ...]
    polarity: dict[str, str]


LABEL_SPACES: dict[str, LabelSpace] = {
    name: LabelSpace(name, label_space_labels(name),
                     {label: polarity for polarity, labels in groups.items() for label in labels})
    for name, groups in LABEL_SPACE_POLARITIES.items()
}


def get_label_space(name: "str | LabelSpace") -> LabelSpace:
    if isinstance(name, LabelSpace):
        return name
    if name not in LABEL_SPACES:
        raise EmoVITInputError(f"Unknown label space {name!r}: use one of {', '.join(LABEL_SPACES)}.")
    return LABEL_SPACES[name]


def polarity_of(label: str, space: "str | LabelSpace") -> str:
    """"positive", "negative" or "neutral" for a label of `space` (raises EmoVITInputError for other labels)."""
    space = get_label_space(space)
    if label not in space.polarity:
        raise EmoVITInputError(f"{label!r} is not a label of {space.name}: use one of {', '.join(space.labels)}.")
    return space.polarity[label]


# Word forms that name a label: adjectives, participles, synonyms and the WEBEmo release's misspellings. Each maps
# to candidate labels in order of preference; the first that the target space has wins ("amazed" is awe in
# Mikels-8, surprise in Ekman-6).
_FORMS: dict[str, tuple[str, ...]] = {
    # Mikels-8
    "amused": ("amusement",), "amusing": ("amusement",), "funny": ("amusement",), "humor": ("amusement",),
    "humour": ("amusement",), "playful": ("amusement",),
    "angry": ("anger",), "mad": ("anger",), "furious": ("rage", "anger"), "annoyed": ("irritability", "anger"),
    "awed": ("awe",), "awestruck": ("awe",), "awe struck": ("awe",), "awe inspiring": ("awe",),
    "amazed": ("awe", "surprise"), "amazement": ("awe", "surprise"), "wonder": ("awe", "surprise"),
    "content": ("contentment",), "contented": ("contentment",), "satisfied": ("contentment",),
    "satisfaction": ("contentment",), "peaceful": ("contentment",), "serene": ("contentment",),
    "serenity": ("contentment",), "calm": ("contentment",),
    "disgusted": ("disgust",), "disgusting": ("disgust",), "revolted": ("disgust",), "gross": ("disgust",),
    "excited": ("excitement",), "exciting": ("excitement",), "thrilled": ("excitement",),
    "thrill": ("excitement",), "exhilarated": ("excitement",),
    "scared": ("fear",), "afraid": ("fear",), "frightened": ("fear",), "fearful": ("fear",), "scary": ("fear",),
    "frightening": ("fear",), "terrified": ("horror", "fear"), "terror": ("horror", "fear"),
    "sad": ("sadness",), "unhappy": ("sadness",), "sorrow": ("sadness",), "sorrowful": ("sadness",),
    "depressed": ("sadness",), "grief": ("sadness",), "melancholy": ("sadness",), "melancholic": ("sadness",),
    # Ekman-6, UnbiasedEmo, Emotion6
    "happy": ("joy",), "happiness": ("joy",), "joyful": ("joy",), "joyous": ("joy",), "glad": ("joy",),
    "delighted": ("joy",), "delight": ("joy",),
    "loving": ("love",), "loved": ("love",), "romantic": ("love",), "romance": ("love",),
    "surprised": ("surprise",), "surprising": ("surprise",), "astonished": ("surprise",),
    "astonishment": ("surprise",), "shocked": ("surprise",),
    "none": ("neutral",), "no emotion": ("neutral",), "neutrality": ("neutral",),
    # WEBEmo-2
    "pos": ("positive",), "neg": ("negative",),
    # WEBEmo-25, with the release's folder-name typos
    "affectionate": ("affection",), "cheerful": ("cheerfulness",), "cheerfullness": ("cheerfulness",),
    "confused": ("confusion",), "confusing": ("confusion",), "disappointed": ("disappointment",),
    "enthralled": ("enthrallment",), "envious": ("envy",), "jealous": ("envy",), "jealousy": ("envy",),
    "exasperated": ("exasperation",), "grateful": ("gratitude",), "thankful": ("gratitude",),
    "horrified": ("horror",), "horrifying": ("horror",), "irritated": ("irritability",),
    "irritable": ("irritability",), "irritation": ("irritability",), "irritabilty": ("irritability",),
    "lustful": ("lust",), "desire": ("lust",), "neglected": ("neglect",), "lonely": ("neglect", "sadness"),
    "nervous": ("nervousness",), "anxious": ("nervousness", "fear"), "anxiety": ("nervousness", "fear"),
    "optimistic": ("optimism",), "hopeful": ("optimism",), "proud": ("pride",), "raging": ("rage",),
    "relieved": ("relief",), "ashamed": ("shame",), "sympathetic": ("sympathy",), "zestful": ("zest",),
}
_FILLER = re.compile(
    r"^(?:i am |i'm |i feel |feeling |feel |it is |it's |the emotion is |emotion |in |of |a |an |the |very "
    r"|sense of |feelings? of )+"
)
_ANSWER_PREFIX = re.compile(r"^.*?predict(?:ed)?\s+emotions?\s*:\s*", re.IGNORECASE | re.DOTALL)


def _clean(text: str) -> str:
    text = _ANSWER_PREFIX.sub("", text.strip()).lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" '")


def _label_of_word(word: str, space: LabelSpace) -> str | None:
    """One word or phrase (already cleaned) -> a label of `space`, trying plural and synonym forms."""
    for form in (word, word[:-1] if word.endswith("s") else None, word[:-2] if word.endswith("es") else None):
        if not form:
            continue
        if form in space.labels:
            return form
        for candidate in _FORMS.get(form, ()):
            if candidate in space.labels:
                return candidate
    return None


def normalize_emotion(text: str | None, space: "str | LabelSpace") -> str | None:
    """Maps free text ("Amused", "scared", "in awe", "Predict emotion: Amusement.") to one label of `space`.

    Returns None when the text names no label of the space, or names several different ones.
    """
    space = get_label_space(space)
    if not text:
        return None
    cleaned = _clean(str(text))
    phrase = _FILLER.sub("", cleaned)
    for candidate in (cleaned, phrase):
        label = _label_of_word(candidate, space)
        if label:
            return label
    words = phrase.split()
    phrases = [" ".join(words[i : i + n]) for n in (2, 1) for i in range(len(words))]
    found = {label for label in (_label_of_word(phrase, space) for phrase in phrases) if label}
    return found.pop() if len(found) == 1 else None
