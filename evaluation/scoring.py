"""Metrics of a classification run, computed with the `evaluate` modules in `evaluation/metrics` (loaded by path).

Headline figures come from EmoVIT's own instruction (paraphrase 0); instruction sensitivity from all paraphrases.
"""

from pathlib import Path

from dataset_builder.emotions import polarity_of

METRICS_DIR = Path(__file__).parent / "metrics"


def compute_metrics(rows: list[dict], space, data: str, with_scores: bool) -> dict:
    """Headline metrics on EmoVIT's own instruction (paraphrase 0); sensitivity across all paraphrases."""
    import evaluate

    labels = list(space.labels)
    headline = [row for row in rows if row["paraphrase"] == 0]
    predictions = [row["prediction"] or "" for row in headline]
    references = [row["reference"] for row in headline]
    classification = evaluate.load(str(METRICS_DIR / "emotion_classification"))
    metrics = classification.compute(predictions=predictions, references=references, labels=labels)
    metrics["polarity_accuracy"] = sum(  # None for a space the data defined with labels of unknown polarity
        bool(row["prediction"]) and polarity_of(row["prediction"], space) == polarity_of(row["reference"], space)
        for row in headline
    ) / len(headline) if set(labels) <= set(space.polarity) else None
    if with_scores:
        calibration = evaluate.load(str(METRICS_DIR / "emotion_calibration"))
        metrics |= calibration.compute(
            predictions=[[row["scores"][label] for label in labels] for row in headline], references=references,
            labels=labels,
        )
    if len({row["paraphrase"] for row in rows}) > 1:
        sensitivity = evaluate.load(str(METRICS_DIR / "instruction_sensitivity"))
        spread = sensitivity.compute(
            predictions=[row["prediction"] or "" for row in rows], references=[row["reference"] for row in rows],
            paraphrases=[row["paraphrase"] for row in rows], datasets=[data] * len(rows), labels=labels,
        )
        metrics["instruction_sensitivity"] = spread["sensitivity"]
        metrics["accuracy_per_paraphrase"] = spread["per_dataset"][data]["accuracy_per_paraphrase"]
    return metrics
