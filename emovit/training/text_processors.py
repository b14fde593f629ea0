"""How the EmoVIT release changed its text before training, offered as training options (`text_processor`).

Flow: dataset row (prompt, completion) -> text processor -> collator. Two steps happened in the release:
- LAVIS `blip_caption` (release FT.yaml: train text processor `blip_caption`, `prompt: " "`), which its
  `coco_vqa` dataset applies to the instruction only (`coco_vqa_datasets.py`: `text_processor(conversations[0])`, the
  answer taken raw). LAVIS `BlipCaptionProcessor.pre_caption`: lower-case; each of `.!"()*#:;~` becomes a space
  (`-`, `/`, `,`, `?` and `'` stay); runs of two or more whitespace characters become one space; trailing newlines
  and outer spaces are stripped; only the first 50 space-separated words are kept; then the prompt `" "` is prefixed.
  EmoVIT's categorical instruction thus reached the model lower-cased, without its colons, parentheses and full
  stops, ending in "... format predict emotion", while the answer stayed "Predict emotion: <label>".
- the release's `blip2_vicuna_instruct.forward` deletes the substring "Complex" from every answer (case-sensitive),
  which removes stray "Complex question:" labels its reply parser let through, and any legitimate "Complex".
Names: "none" (the text as written), "lavis" (the instruction through `blip_caption`), "release" (both steps).
"""

import re

TEXT_PROCESSORS = ("none", "lavis", "release")
_LAVIS_PUNCTUATION = re.compile(r'([.!"()*#:;~])')
_WHITESPACE_RUN = re.compile(r"\s{2,}")


def pre_caption(text: str, max_words: int = 50) -> str:
    """LAVIS `BlipCaptionProcessor.pre_caption`, step by step."""
    text = _LAVIS_PUNCTUATION.sub(" ", text.lower())
    text = _WHITESPACE_RUN.sub(" ", text)
    text = text.rstrip("\n").strip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


def blip_caption(text: str, prompt: str = " ", max_words: int = 50) -> str:
    """LAVIS `BlipCaptionProcessor.__call__` with the release's `prompt: " "`."""
    return prompt + pre_caption(text, max_words)


def process_text(name: str, prompt: str, completion: str) -> tuple[str, str]:
    """(instruction, answer) as the named processor leaves them."""
    if name == "none":
        return prompt, completion
    if name == "lavis":
        return blip_caption(prompt), completion
    if name == "release":
        return blip_caption(prompt), completion.replace("Complex", "")
    raise ValueError(f"text_processor must be one of {', '.join(TEXT_PROCESSORS)}, not {name!r}.")
