"""Emotion label spaces of the visual emotion datasets, a free-text normaliser onto them, and their polarity.

Sits between the source readers (which see folder names, CSV cells or model answers) and the records: every label
that reaches a record is one of its label space's `labels`. The spaces themselves (labels by polarity, WEBEmo's
hierarchy) live in `modeling_emovit.labels`, which a saved model's emotion pipeline also reads.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading
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


CUSTOM_SPACE = "custom"  # the name of a label space the data defines when it is given no name


def _agreed_polarities() -> dict[str, str]:
    """A label's polarity wherever every built-in space that has the label agrees on it ("joy": positive)."""
    seen: dict[str, set[str]] = {}
    for space in LABEL_SPACES.values():
        for label, polarity in space.polarity.items():
            seen.setdefault(label, set()).add(polarity)
    return {label: polarities.pop() for label, polarities in seen.items() if len(polarities) == 1}


_KNOWN_POLARITY = _agreed_polarities()


def builtin_space_with(labels) -> LabelSpace | None:
    """The first built-in space whose labels are exactly `labels` (in any order): emoset for Mikels' eight."""
    return next((space for space in LABEL_SPACES.values() if set(space.labels) == set(labels)), None)


def defined_label_space(name: str | None, labels) -> LabelSpace:
    """A label space the data defines: `labels` in their order, as the categorical instruction lists them.

    Unnamed, it takes the name of the built-in space with the same labels, else "custom"; a built-in name with other
    labels is refused. Polarities are those the built-in spaces agree on; a label none of them has gets none (and an
    evaluation reports no polarity accuracy over such a space)."""
    labels = tuple(labels)
    bad = [label for label in labels if not isinstance(label, str) or not label.strip() or "," in label]
    if not labels or bad or len(set(labels)) != len(labels):
        raise EmoVITInputError(
            f"Label space {name or CUSTOM_SPACE!r}: labels must be distinct, non-empty and without commas "
            f"(given {list(labels)})."
        )
    same = builtin_space_with(labels)
    name = name or (same.name if same else CUSTOM_SPACE)
    if name in LABEL_SPACES:
        if set(LABEL_SPACES[name].labels) != set(labels):
            raise EmoVITInputError(
                f"Label space {name!r} is built in with the labels {', '.join(LABEL_SPACES[name].labels)}; give "
                f"the labels {', '.join(labels)} another name with --label-space."
            )
        return LABEL_SPACES[name]
    return LabelSpace(name, labels, {label: _KNOWN_POLARITY[label] for label in labels if label in _KNOWN_POLARITY})


def parse_labels(given: str) -> tuple[str, ...]:
    """`--labels`: "a,b,c", or a file listing them (a JSON list, or one label per line)."""
    path = Path(given)
    if not path.is_file():
        return tuple(label.strip() for label in given.split(",") if label.strip())
    with reading(path):
        text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        with reading(path):
            labels = json.loads(text)
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise EmoVITInputError(f"{path}: a label file in JSON is a list of label strings.")
        return tuple(labels)
    return tuple(line.strip() for line in text.splitlines() if line.strip())


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
    if text in space.labels:
        return text
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
