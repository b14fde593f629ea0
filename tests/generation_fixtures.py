"""Hand-built EmotionRecords and a loopback reply maker for the instruction generation tests and benchmark."""

import json

from dataset_builder.generation.prompts import load_prompt
from dataset_builder.records import EmotionRecord

LABELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")


def make_records(count: int, image_path: str = "missing.jpg") -> list[EmotionRecord]:
    """`count` EmoSet-like records with every clue and a caption (ids img-00000, img-00001, ...)."""
    return [
        EmotionRecord(
            id=f"img-{index:05d}", image_path=image_path, label=LABELS[index % len(LABELS)], label_space="mikels8",
            split="train", source="emoset",
            attributes={"brightness": (index % 10) / 10, "colorfulness": 0.65, "scene": "beach",
                        "object": ["dog", "ball"], "facial_expression": "happy", "human_action": "running"},
            caption=f"a dog chasing a ball number {index} on a beach",
        )
        for index in range(count)
    ]


def task_of(body: dict) -> str:
    system = body["messages"][0]["content"]
    return next(task for task in ("conversation", "reasoning") if system.startswith(load_prompt(task).system))


def good_pairs(body: dict) -> list[dict]:
    """Valid pairs for the request's task, naming the image's caption line so a test can trace them."""
    subject = body["messages"][-1]["content"].splitlines()[0]
    count = load_prompt(task_of(body)).pairs
    return [{"question": f"What is happening in the picture ({number})?", "answer": f"It shows {subject}."}
            for number in range(count)]


def pairs_reply(body: dict) -> str:
    """JSON pairs when structured output was asked for, else `Question:`/`Answer:` lines (the text fallback)."""
    pairs = good_pairs(body)
    if body.get("response_format"):
        return json.dumps({"pairs": pairs})
    return "\n".join(f"Question: {pair['question']}\nAnswer: {pair['answer']}" for pair in pairs)
