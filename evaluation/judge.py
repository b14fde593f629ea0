"""`emovit eval --task reasoning|humor`: the model's free-text answers judged by an LLM.

- reasoning (EmoVIT's affective reasoning): the judge scores the reference answer and the model's answer from 1 to
  10 with LLaVA-Bench's review prompt (Liu et al., NeurIPS 2023, `llava/eval/table/rule.json`); the result is the
  relative score 100 * mean(model) / mean(reference), as LLaVA-Bench reports it.
- humor (EmoVIT Sec. 5, humour understanding): the model writes a funny caption; the judge picks the funnier of the
  model's and the reference caption. Each pair is asked in both orders to remove position bias: a win in both orders
  counts 1, a split 0.5 (a tie), a loss in both 0. The preference rate is the mean, as the paper's human study.

Requests go through the shared chat client (`dataset_builder.chat`: concurrency, rate limits, retries, SQLite
cache); pairs the judge never answered usably are skipped, counted and reported.
"""

import json
import re
from pathlib import Path

from dataset_builder.chat import ChatRequest, RejectedOutput, ResponseCache, api_key_from_env, run_chat_requests
from dataset_builder.instructions import categorical_answer
from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError

HUMOR_INSTRUCTION = "Write a short, funny caption for this image."
REVIEW_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
# LLaVA-Bench's review rule, for two assistants answering one question about an image described in text.
REVIEW_PROMPT = """[Context]
{context}

[Question]
{question}

[Assistant 1]
{reference}

[End of Assistant 1]

[Assistant 2]
{answer}

[End of Assistant 2]

[System]
We would like to request your feedback on the performance of two AI assistants in response to the user question displayed above. The user asks the question on observing an image. For your reference, the visual content in the image is represented with a few sentences describing the image.
Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.
Please first output a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space.
In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented does not affect your judgment."""
HUMOR_PROMPT = """An image shows: {context}

Two captions were written for it to be funny.

Caption A: {first}

Caption B: {second}

Which caption is funnier and fits the image better? Answer with a single letter on the first line, A or B, then one sentence of explanation."""


def parse_scores(content: str) -> tuple[float, float]:
    """LLaVA-Bench's reply format: the first line holds the two scores ("8 6", "8, 6" or "8.5 6")."""
    numbers = re.findall(r"\d+(?:\.\d+)?", content.strip().splitlines()[0] if content.strip() else "")
    if len(numbers) != 2:
        raise RejectedOutput(f"the first line does not hold two scores: {content[:80]!r}")
    return float(numbers[0]), float(numbers[1])


def parse_choice(content: str) -> str:
    match = re.match(r"\W*(?:caption\s+)?([AB])\b", content.strip(), re.IGNORECASE)
    if not match:
        raise RejectedOutput(f"the reply does not start with A or B: {content[:80]!r}")
    return match.group(1).upper()


def judge_reasoning(items: list[dict], settings, cache_path: Path) -> dict:
    """items: {id, question, reference, answer, context}; returns the LLaVA-Bench relative score and counts."""
    requests = [
        ChatRequest(key=item["id"], messages=[
            {"role": "system", "content": REVIEW_SYSTEM},
            {"role": "user", "content": REVIEW_PROMPT.format(**item)},
        ], parse=parse_scores, context=item)
        for item in items
    ]
    results = _run(requests, settings, cache_path)
    scored = [(r.request.context, r.value) for r in results if r.ok]
    for item, (reference_score, model_score) in scored:
        item["judge"] = {"reference_score": reference_score, "model_score": model_score}
    reference_mean = sum(v[0] for _, v in scored) / len(scored) if scored else 0.0
    model_mean = sum(v[1] for _, v in scored) / len(scored) if scored else 0.0
    return {
        "relative_score": 100 * model_mean / reference_mean if reference_mean else 0.0,
        "model_score_mean": model_mean,
        "reference_score_mean": reference_mean,
        "judged": len(scored),
        "judge_failures": len(results) - len(scored),
    }


def judge_humor(items: list[dict], settings, cache_path: Path) -> dict:
    """items: {id, reference, answer, context}; each pair judged as (model, reference) and (reference, model)."""
    def request(item, model_first: bool):
        first, second = (item["answer"], item["reference"]) if model_first else (item["reference"], item["answer"])
        prompt = HUMOR_PROMPT.format(context=item["context"], first=first, second=second)
        return ChatRequest(key=f"{item['id']}:{'model-first' if model_first else 'reference-first'}",
                           messages=[{"role": "user", "content": prompt}], parse=parse_choice, context=(item, model_first))

    results = _run([request(item, order) for item in items for order in (True, False)], settings, cache_path)
    votes = {}  # id -> [model preferred when shown first, ... when shown second]
    for result in results:
        if result.ok:
            item, model_first = result.request.context
            votes.setdefault(item["id"], {})[model_first] = result.value == ("A" if model_first else "B")
    outcomes = []
    for item in items:
        both = votes.get(item["id"], {})
        if len(both) == 2:
            item["judge"] = {"model_preferred_first": both[True], "model_preferred_second": both[False]}
            outcomes.append((both[True] + both[False]) / 2)
    return {
        "preference_rate": sum(outcomes) / len(outcomes) if outcomes else 0.0,
        "wins": outcomes.count(1.0),
        "ties": outcomes.count(0.5),
        "losses": outcomes.count(0.0),
        "judged": len(outcomes),
        "judge_failures": len(items) - len(outcomes),
    }


def _check_humor_references(completions: list[str], data: str, config: str) -> None:
    """The humour task's references are funny captions; emotion labels ("Predict emotion: X") are refused."""
    if any(completion.startswith(categorical_answer("")) for completion in completions):
        raise EmoVITInputError(
            f"{data}: config {config!r} answers with emotion labels ({categorical_answer('...')!r}), not reference funny "
            "captions; pass --config naming a config whose `completion` column holds the captions."
        )


def _run(requests, settings, cache_path: Path):
    with ResponseCache(cache_path) as cache:
        return run_chat_requests(requests, settings, cache=cache)


def run_judged_task(task: str, model: str, data: str, out: str, config: str | None, split: str, judge,
                    batch_size: int = 8, max_new_tokens: int = 256) -> dict:
    """Generates the model's answers, has them judged, writes predictions.jsonl and results.json to `out`.

    `judge`: a `dataset_builder.chat.ClientSettings` for the judge model.
    """
    from modeling_emovit.generation import generate_text

    from .harness import load_model

    if task not in ("reasoning", "humor"):
        raise EmoVITInputError(f"--task must be classification, reasoning or humor, not {task!r}.")
    if task == "humor" and config is None:
        raise EmoVITInputError(f"--task humor needs --config naming a config of {data} whose `completion` column holds "
                               "reference funny captions (`emovit data build` makes none).")
    api_key_from_env(judge)  # a missing key fails now, not after every answer is generated
    config = config or "reasoning"
    dataset = load_split(data, config, split, required=("id", "image", "completion"))
    if task == "humor":
        _check_humor_references(dataset["completion"], data, config)
    network, processor = load_model(model)
    items = []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.select(range(start, min(start + batch_size, len(dataset))))
        questions = list(batch["prompt"]) if task == "reasoning" else [HUMOR_INSTRUCTION] * len(batch)
        answers = generate_text(network, processor, list(batch["image"]), questions, max_new_tokens)
        contexts = batch["caption"] if "caption" in batch.column_names else [""] * len(batch)
        items += [
            {"id": i, "question": q, "reference": r, "answer": a, "context": c or "(no description)"}
            for i, q, r, a, c in zip(batch["id"], questions, batch["completion"], answers, contexts)
        ]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    judged = (judge_reasoning if task == "reasoning" else judge_humor)(items, judge, folder / "judge-cache.sqlite")
    with (folder / "predictions.jsonl").open("w", encoding="utf-8") as file:
        file.writelines(json.dumps(item) + "\n" for item in items)
    results = {"task": task, "model": model, "data": data, "config": config, "split": split,
               "judge_model": judge.model, "num_examples": len(items), "metrics": judged}
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    return results
