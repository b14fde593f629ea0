"""`emovit eval --task reasoning|humor`: the model's free-text answers judged by an LLM.

- reasoning (EmoVIT's affective reasoning): the judge scores the reference answer and the model's answer from 1 to
  10 in LLaVA-Bench's review layout (Liu et al., NeurIPS 2023); the result is the relative score
  100 * mean(model) / mean(reference), as LLaVA-Bench reports it. The scoring rule is this project's own wording
  unless `--judge-rules` points at the user's copy of LLaVA-Bench's `llava/eval/table/rule.json` (only that gives
  LLaVA-Bench-comparable scores); results.json and the model card record which rule was used.
- humor (EmoVIT Sec. 5, humour understanding): the model writes a funny caption; the judge picks the funnier of the
  model's and the reference caption. Each pair is asked in both orders to remove position bias: a win in both orders
  counts 1, a split 0.5 (a tie), a loss in both 0. The preference rate is the mean, as the paper's human study.

Requests go through the shared chat client (`dataset_builder.chat`: concurrency, rate limits, retries, SQLite
cache); pairs the judge never answered usably are skipped, counted and reported.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from dataset_builder.chat import ChatRequest, RejectedOutput, ResponseCache, api_key_from_env, run_chat_requests
from dataset_builder.instructions import categorical_answer
from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError

HUMOR_INSTRUCTION = "Write a short, funny caption for this image."
# The review request's layout (LLaVA-Bench's: context, question, both answers, then the rule under [System]).
REVIEW_LAYOUT = """[Context]
{context}

[Question]
{question}

[{role} 1]
{reference}

[End of {role} 1]

[{role} 2]
{answer}

[End of {role} 2]

[System]
{rule}"""
DEFAULT_RULES_KEY = "llava_bench_complex"  # LLaVA-Bench's rule for complex reasoning questions
DEFAULT_ANSWER_TOKENS = 256  # the judged tasks' answer budget (EmoVIT's max_length)
JUDGE_CACHE_FILE = "judge-cache.sqlite"  # OUT/judge-cache.sqlite: every verdict, by request content


@dataclass(frozen=True)
class ReviewRules:
    """What the reasoning judge is told: its system message, the name of the answerers, the scoring rule, and
    where these came from (`source`, recorded in results.json and the model card)."""

    system: str
    role: str
    rule: str
    source: str


# This project's own wording of a two-answer review (not LLaVA-Bench's text: scores judged with it are not
# comparable to LLaVA-Bench numbers; pass --judge-rules with LLaVA-Bench's rule.json for those).
DEFAULT_RULES = ReviewRules(
    system="You grade answers to questions about images, carefully and without favouring either answer.",
    role="Assistant",
    rule=(
        "Two AI assistants answered the question above about an image. You cannot see the image: the context "
        "describes it. Judge how helpful, relevant, accurate and detailed each answer is, and give each one an "
        "overall score from 1 (worst) to 10 (best).\n"
        "Write the two scores on the first line and nothing else there: Assistant 1's score, a space, then "
        "Assistant 2's score.\n"
        "From the second line on, explain your scores briefly. The order in which the answers were shown must not "
        "change your judgement."
    ),
    source="emovit default wording (not LLaVA-Bench-comparable)",
)


def load_review_rules(path: str | Path, key: str = DEFAULT_RULES_KEY) -> ReviewRules:
    """Rules from the user's file: LLaVA-Bench's `rule.json` (category -> {"role", "prompt"}; `key` picks the
    category; an optional "system" entry replaces this project's system message) or a plain-text rule."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as error:
        raise EmoVITInputError(f"--judge-rules {path}: cannot read the rules file ({error}).") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    if path.suffix != ".json":
        return ReviewRules(DEFAULT_RULES.system, "Assistant", text.strip(), f"{path.name} (sha256 {digest})")
    try:
        entry = json.loads(text)[key]
        return ReviewRules(entry.get("system", DEFAULT_RULES.system), entry["role"], entry["prompt"],
                           f"{path.name}:{key} (sha256 {digest})")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise EmoVITInputError(
            f"--judge-rules {path}: expected LLaVA-Bench's rule.json layout, an object whose {key!r} entry has "
            f"'role' and 'prompt' (or pass a plain .txt rule)."
        ) from None
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


def judge_reasoning(items: list[dict], settings, cache_path: Path, rules: ReviewRules = DEFAULT_RULES) -> dict:
    """items: {id, question, reference, answer, context}; returns the LLaVA-Bench relative score and counts."""
    requests = [
        ChatRequest(key=item["id"], messages=[
            {"role": "system", "content": rules.system},
            {"role": "user", "content": REVIEW_LAYOUT.format(**item, role=rules.role, rule=rules.rule)},
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


@dataclass
class JudgedAnswersTask:
    """The judged tasks' answers as the prediction loop asks them (`prediction_loop.PredictionTask`): the model's
    free text to the row's question (reasoning) or to `HUMOR_INSTRUCTION` (humor), kept with the reference answer
    and the image's caption, which is the judge's context."""

    adapter: object
    task: str
    max_new_tokens: int
    paraphrases: int = 1
    answer_format: str = "categorical"  # "reasoning": the judge scores the <think> text, the whole answer kept beside it

    @property
    def description(self) -> str:
        return f"answers ({self.task})"

    def rows(self, examples, images: list, kept: list[int], paraphrase: int) -> list[dict]:
        ids, prompts, references = examples["id"], examples["prompt"], examples["completion"]
        captions = examples["caption"] if "caption" in examples.column_names else [""] * len(ids)
        questions = [prompts[k] if self.task == "reasoning" else HUMOR_INSTRUCTION for k in kept]
        answers = self.adapter.generate(images, questions, self.max_new_tokens)
        return [
            {"id": ids[k], "paraphrase": paraphrase, "question": question, "reference": references[k],
             "context": captions[k] or "(no description)", **self._answer(answer)}
            for k, question, answer in zip(kept, questions, answers)
        ]

    def _answer(self, answer: str) -> dict:
        """`answer`, what the judge reads: in the reasoning format the reasoning chain (a GRPO model's <think>), the
        whole answer when it has none; the generated text itself kept as `generated`."""
        if self.answer_format != "reasoning":
            return {"answer": answer}
        from dataset_builder.reasoning_format import tag_content

        reasoning = (tag_content(answer, "think") or "").strip()
        return {"answer": reasoning or answer, "generated": answer, "reasoning_found": bool(reasoning)}


def check_judged_task(settings, judge) -> None:
    """Refuses, before anything loads, a judged task without reference answers it can use or without a judge key."""
    if settings.task == "humor" and settings.config is None:
        raise EmoVITInputError(f"--task humor needs --config naming a config of {settings.data} whose `completion` "
                               "column holds reference funny captions (`emovit data build` makes none).")
    api_key_from_env(judge)  # a missing key fails now, not after every answer is generated


def run_judged_task(settings, judge, rules: ReviewRules = DEFAULT_RULES) -> dict | None:
    """Generates the model's answers through the shared prediction loop (resumable, sharded), has them judged on the
    main process, and writes predictions.jsonl (with each verdict) and results.json to `settings.out`; returns the
    results there (None on the other processes).

    `settings`: an `EvalSettings` whose task is reasoning or humor; `judge`: a `dataset_builder.chat.ClientSettings`
    for the judge model (every verdict is cached in OUT/judge-cache.sqlite, so a resumed run asks nothing twice);
    `rules`: the reasoning judge's rules.
    """
    from .harness import load_adapter
    from .prediction_loop import check_out, eval_process_state, predict_split

    settings.check()
    check_judged_task(settings, judge)
    state = eval_process_state()
    dataset = load_split(settings.data, settings.config, settings.split, required=("id", "image", "completion"))
    if settings.task == "humor":
        _check_humor_references(dataset["completion"], settings.data, settings.config)
    if state.is_main_process:
        check_out(settings)
    adapter = load_adapter(settings.model, settings.trust_remote_code)
    adapter.model.to(state.device)
    task = JudgedAnswersTask(adapter, settings.task, settings.max_new_tokens or DEFAULT_ANSWER_TOKENS,
                             answer_format=settings.answer_format)
    split = predict_split(settings, dataset, task)
    if not state.is_main_process:
        return None
    return _judge_and_report(settings, judge, rules, split)


def _judge_and_report(settings, judge, rules: ReviewRules, split) -> dict:
    """Judges the answers (cached), then rewrites predictions.jsonl with each verdict and writes results.json."""
    from .prediction_loop import PREDICTIONS_FILE

    out = Path(settings.out)
    items = sorted(split.rows, key=lambda row: row["id"])
    cache = out / JUDGE_CACHE_FILE
    if settings.task == "reasoning":
        judged = judge_reasoning(items, judge, cache, rules)
    else:
        judged = judge_humor(items, judge, cache)
    written = out / f"{PREDICTIONS_FILE}.tmp"  # replaced whole: a kill leaves the previous file intact
    written.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    written.replace(out / PREDICTIONS_FILE)
    results = {"task": settings.task, "model": settings.model, "data": settings.data, "config": settings.config,
               "split": settings.split, "judge_model": judge.model, "num_examples": len(items), "metrics": judged,
               "skipped_images": split.skipped, "progress": split.progress}
    if settings.task == "reasoning":
        results["judge_rules"] = rules.source
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results
