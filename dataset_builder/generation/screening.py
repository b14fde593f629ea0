"""Generated pairs checked against their record before they are written: no other emotion stated as the image's,
no instruction-like text. Sits in validation (`validation.reply_parser(..., record)`), so a reply failing it is
rejected, asked again up to `max_rejections` times, and counted by reason; `content_checks=False` on the backends
(`--no-content-checks`) turns it off.

The rule is conservative: it rejects what states, not what mentions. Precisely:

Another emotion (reason "<field> states another emotion than the label"). A field states an emotion when an
*attribution frame* is followed by an *emotion span* that names a label of the record's label space:

- frames (case-insensitive, whole words):
  1. a verb aimed at the viewer: evoke, elicit, inspire, provoke, arouse, instil/instill (any inflection);
  2. make/makes/making + viewer(s), audience, onlooker(s), observer(s), someone, people, one, us, you, me, them +
     feel (optionally "the"/"a" before the noun);
  3. viewer(s), audience, onlooker(s), observer(s), you, we, one + up to two words ("may", "can easily") + feel/feels;
  4. mood, atmosphere, tone, feeling, emotion, vibe + is/feels/seems/looks/appears/remains (optionally "to be");
  5. felt/perceived/read/experienced/interpreted as;
  6. "emotion:" (as in "Predict emotion: fear").
  Verbs that a depicted person can be the subject of (express, show, convey, exude, radiate) and copulas about the
  image itself ("the scene is calm") are not frames: a frightened face in an awe image, or a calm lake under a
  vast sky, is a clue, not a contradiction.
- the span: after an optional "in the viewer" (in + optional the/a/its + viewer(s), audience(s), onlooker(s),
  observer(s), people, us, you, someone, one) and optional fillers (a, an, the, more, some, strong(er), deep(er),
  profound, overwhelming, powerful, clear, quiet, gentle, real, genuine, intense, great, certain, sense(s),
  feeling(s), mood, atmosphere, emotion(s), of, one, very, quite, deeply, rather, so, truly, mostly, mainly,
  largely, clearly), up to four words, ending at punctuation or at a word that starts a new clause or phrase (in,
  for, at, to, from, with, of, that, which, because, as, while, when, rather, than, instead, but, not, though,
  although, despite, yet, since, by, on, over, into);
- each word and each pair of adjacent words of the span is mapped by the package's normaliser
  (`dataset_builder.emotions.normalize_emotion`, so synonyms count: "scared" is fear, "calm" contentment in
  Mikels-8; words outside the label space, such as "joy" in Mikels-8, name nothing);
- negation keeps the pair: a span starting with no, not, none, any, little, less, without, or a negator among the
  four words before the frame in the same sentence (not, no, never, nor, neither, hardly, barely, without,
  "rather than", "instead of", or a word ending in n't);
- questions are checked unless they ask yes or no (start with do, does, did, is, are, was, were, can, could,
  would, will, might, may, should, has, have): "Why does this image evoke anger?" presupposes anger, "Does it
  evoke anger?" does not;
- the pair is rejected when some span names labels and none of them is the record's label ("evokes fear and awe"
  stands for an awe image, "evokes fear" does not). Records without a label are not checked.

So "no fear here", "it evokes awe rather than fear", "the girl looks scared" and "the image does not evoke fear"
are kept for an awe image; "the image evokes fear", "why does this scene make viewers feel sad?" and "Predict
emotion: anger" are rejected.

Instruction-like text (reason "instruction-like text in <field>"): text addressed to the model that reads the
data, not about the image: ignore/disregard/forget/override/bypass followed within three words by instructions,
rules, prompt(s), guidelines, directions, directives, constraints or messages; "system" + override, prompt, message,
instruction(s) or note; a line starting with "system:", "assistant:", "developer:" or "### instruction"/"### system";
chat-template tokens (`<|...|>`, `[INST]`, `<<SYS>>`); jailbreak, developer mode, DAN mode, prompt injection;
new/updated/hidden/secret instructions; "from now on" + you/always/only/respond/answer/reply/ignore.
"""

import re

from ..emotions import normalize_emotion
from ..records import EmotionRecord

_VIEWERS = r"(?:viewers?|audiences?|onlookers?|observers?)"
_FRAMES = re.compile(
    r"\b(?:"
    r"(?:evok|elicit|inspir|provok|arous)(?:e|es|ed|ing|s)?|instill?(?:s|ed|ing)?"
    rf"|mak(?:e|es|ing)\s+(?:the\s+|a\s+)?(?:{_VIEWERS}|someone|people|one|us|you|me|them)\s+feel"
    rf"|(?:{_VIEWERS}|you|we|one)\s+(?:\w+\s+){{0,2}}?feels?"
    r"|(?:mood|atmosphere|tone|feeling|emotion|vibe)\s+(?:is|feels|seems|looks|appears|remains)(?:\s+to\s+be)?"
    r"|(?:felt|perceived|read|experienced|interpreted)\s+as"
    r")(?=\W|$)|\bemotion\s*:",
    re.I,
)
_FILLERS = frozenset(
    "a an the more some strong stronger deep deeper profound overwhelming powerful clear quiet gentle real genuine "
    "intense great certain sense senses feeling feelings mood atmosphere emotion emotions of one very quite deeply "
    "rather so truly mostly mainly largely clearly".split()
)
_IN_THE_VIEWER = re.compile(rf"^\s*in\s+(?:the\s+|a\s+|its\s+)?(?:{_VIEWERS}|people|us|you|someone|one)\b", re.I)
_SPAN_ENDS = frozenset(
    "in for at to from with of that which because as while when rather than instead but not though although despite "
    "yet since by on over into".split()
)
_SPAN_NEGATORS = frozenset("no not none any little less without".split())
_NEGATED_BEFORE = re.compile(
    r"\b(?:not|no|never|nor|neither|hardly|barely|without|rather\s+than|instead\s+of)\b|n['’]t\b", re.I
)
_YES_NO_QUESTION = re.compile(
    r"^\W*(?:do|does|did|is|are|was|were|can|could|would|will|might|may|should|has|have)\b", re.I
)
_SPAN_WORDS = 4

INSTRUCTION_LIKE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:\w+\s+){0,3}?(?:instructions?|rules|prompts?|guidelines"
    r"|directions|directives|constraints|messages?)\b"
    r"|\bsystem\s+(?:override|prompt|message|instructions?|note)\b"
    r"|^\s*(?:system|assistant|developer)\s*:|^\s*#+\s*(?:instruction|system)\b"
    r"|<\|[^|>]{1,40}\|>|\[/?INST\]|<</?SYS>>"
    r"|\bjailbreak|\b(?:developer|dan)\s+mode\b|\bprompt\s+injection\b"
    r"|\b(?:new|updated|hidden|secret)\s+instructions?\b"
    r"|\bfrom\s+now\s+on,?\s+(?:you|always|only|respond|answer|reply|ignore)\b",
    re.I | re.M,
)


def _span_labels(after: str, label_space: str) -> set[str]:
    """Labels named by the emotion span at the start of `after` (the text following a frame); none when negated."""
    viewer = _IN_THE_VIEWER.match(after)
    words = re.findall(r"[a-z'-]+|[^\sa-z'-]", after[viewer.end():] if viewer else after, re.I)
    while words and words[0].lower() in _FILLERS:
        words.pop(0)
    span = []
    for word in words[:_SPAN_WORDS]:
        word = word.lower()
        if not word[0].isalpha() or word in _SPAN_ENDS:
            break
        span.append(word)
    if not span or span[0] in _SPAN_NEGATORS:
        return set()
    phrases = span + [f"{first} {second}" for first, second in zip(span, span[1:])]
    return {label for label in (normalize_emotion(phrase, label_space) for phrase in phrases) if label}


def _negated(before: str) -> bool:
    sentence = re.split(r"[.!?;]", before)[-1]
    return bool(_NEGATED_BEFORE.search(" ".join(sentence.split()[-4:])))


def stated_emotions(text: str, label_space: str) -> list[set[str]]:
    """The labels each non-negated attribution frame of `text` states (one set per frame that names any)."""
    stated = []
    for frame in _FRAMES.finditer(text):
        if _negated(text[: frame.start()]):
            continue
        labels = _span_labels(text[frame.end():], label_space)
        if labels:
            stated.append(labels)
    return stated


def screening_rejection(pair: dict, record: EmotionRecord) -> str | None:
    """Why `pair` must not be written for `record` (see the module docstring), or None."""
    for field in ("question", "answer"):
        text = pair[field]
        if INSTRUCTION_LIKE.search(text):
            return f"instruction-like text in {field}"
        if record.label is None or (field == "question" and _YES_NO_QUESTION.match(text)):
            continue
        if any(record.label not in labels for labels in stated_emotions(text, record.label_space)):
            return f"{field} states another emotion than the label"
    return None
