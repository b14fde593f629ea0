"""Offline `rules` backend: deterministic question/answer pairs grounded in an image's clues and caption alone.

No model, no key, no server: the demo and the tests build instruction data with it. Every record it writes says
`"backend": "rules"` and `"model": "rules-offline"`, so it is never mistaken for GPT-written data. The shapes follow
the EmoVIT tasks: conversation = two definite questions + one complex question; reasoning = one "why" question.
"""

import hashlib

from ..records import EmotionRecord

MODEL = "rules-offline"
VERSION = "rules/2024-1"


def _pick(options: list[str], record_id: str, salt: str) -> str:
    """A stable choice among phrasings (a SHA-256 of the id, not Python's salted `hash`)."""
    digest = hashlib.sha256(f"{record_id}/{salt}".encode()).digest()
    return options[digest[0] % len(options)]


def _level(value: float, words: tuple[str, ...]) -> str:
    return words[min(int(value * len(words)), len(words) - 1)]


def _brightness(value: float) -> str:
    return _level(value, ("very dark", "dark", "moderately lit", "bright", "very bright"))


def _colorfulness(value: float) -> str:
    return _level(value, ("muted, nearly colourless", "subdued", "moderately colourful", "colourful", "vividly colourful"))


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _definite_pairs(record: EmotionRecord, caption: str | None) -> list[tuple[str, str]]:
    """Questions with definite answers, one per known clue, most specific first."""
    clues = record.attributes
    pairs = []
    if clues.get("object"):
        pairs.append(("What objects can be seen in the image?", f"The image shows {_listing(list(clues['object']))}."))
    if clues.get("scene"):
        pairs.append(("Where does this scene take place?", f"The scene takes place in a {clues['scene']} setting."))
    if clues.get("facial_expression"):
        pairs.append(("What expression does the person in the image show?", f"The person looks {clues['facial_expression']}."))
    if clues.get("human_action"):
        pairs.append(("What is the person in the image doing?", f"The person is {clues['human_action']}."))
    if clues.get("brightness") is not None:
        pairs.append(("How is the image lit?", f"The image is {_brightness(clues['brightness'])}."))
    if clues.get("colorfulness") is not None:
        pairs.append(("How colourful is the image?", f"Its colours are {_colorfulness(clues['colorfulness'])}."))
    if caption:
        pairs.append(("What does the image show?", f"It shows {caption.strip().rstrip('.')}."))
    return pairs


def _evidence(record: EmotionRecord, caption: str | None) -> list[str]:
    """Sentences linking each known clue to the feeling of the image."""
    clues = record.attributes
    sentences = [f"The image shows {caption.strip().rstrip('.')}."] if caption else []
    if clues.get("brightness") is not None and clues.get("colorfulness") is not None:
        sentences.append(
            f"The light is {_brightness(clues['brightness'])} and the colours are {_colorfulness(clues['colorfulness'])}, "
            "which sets the overall tone."
        )
    if clues.get("scene"):
        sentences.append(f"The {clues['scene']} setting frames how the moment is read.")
    if clues.get("object"):
        sentences.append(f"The eye is drawn to {_listing(list(clues['object']))}.")
    if clues.get("facial_expression"):
        sentences.append(f"A {clues['facial_expression']} face invites the viewer to share that feeling.")
    if clues.get("human_action"):
        sentences.append(f"Someone is {clues['human_action']}, which gives the picture its story.")
    return sentences


def _feeling(record: EmotionRecord) -> str:
    return record.label or "its mood"


def conversation_pairs(record: EmotionRecord, caption: str | None = None) -> list[dict]:
    """Two definite questions (padded with general ones when few clues are known) and one complex question."""
    definite = _definite_pairs(record, caption) + [
        ("Is this a photograph of a real scene?", "Yes, it is a photograph of a real scene."),
        ("What is the main subject of the image?", "The main subject fills the centre of the frame."),
    ]
    complex_question = _pick(
        ["How do the visual elements of this image shape its emotional tone?",
         "What makes this image feel the way it does?"], record.id, "conversation",
    )
    evidence = " ".join(_evidence(record, caption))
    answer = f"{evidence} Together these details evoke {_feeling(record)}.".strip()
    pairs = definite[:2] + [(complex_question, answer)]
    return [{"question": question, "answer": answer} for question, answer in pairs]


def reasoning_pairs(record: EmotionRecord, caption: str | None = None) -> list[dict]:
    """One "why" question answered by chaining the clues to the emotion."""
    question = _pick(
        [f"Why might this image evoke {_feeling(record)} in a viewer?",
         f"What in this image could make someone feel {_feeling(record)}?"], record.id, "reasoning",
    )
    steps = _evidence(record, caption)
    answer = " ".join(steps + [f"Each of these cues points the same way, so the image is most likely felt as {_feeling(record)}."])
    return [{"question": question, "answer": answer}]


RULES = {"conversation": conversation_pairs, "reasoning": reasoning_pairs}
