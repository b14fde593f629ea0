"""Metrics of a classification run, computed with the `evaluate` modules in `evaluation/metrics` (loaded by path).

Headline figures come from EmoVIT's own instruction (paraphrase 0); instruction sensitivity from all paraphrases.
Rank mode adds EmoCaliber's calibration columns (`PEER_CALIBRATION_KEYS`), the figures peers publish: ECE over 10
equal-width bins and the Brier score of the top-1 confidence, both x100. The reasoning answer format adds the same two
figures for the confidence the model states, beside those of the same images' rank probabilities, and the share of
well-formed answers. The lmms-eval tasks
(`evaluation.lmms_eval_tasks`) aggregate through the same functions, so both harnesses give the same numbers.
"""

from pathlib import Path

from dataset_builder.emotions import polarity_of

METRICS_DIR = Path(__file__).parent / "metrics"
# EmoCaliber's `calculate_ece` (inference/evaluate_multi_task_conf_from_merged.py, github wdqqdw/EmoCaliber): 10
# equal-width bins, [lo, hi); its table multiplies ECE and Brier by 100.
PEER_ECE_BINS = 10
PEER_CALIBRATION_KEYS = ("ece_10_bins_x100", "top_label_brier_x100")


def compute_metrics(rows: list[dict], space, data: str, with_scores: bool) -> dict:
    """Headline metrics on EmoVIT's own instruction (paraphrase 0); sensitivity across all paraphrases."""
    import evaluate

    labels = list(space.labels)
    headline = [row for row in rows if row["paraphrase"] == 0]
    references = [row["reference"] for row in headline]
    metrics = classification_figures([row["prediction"] for row in headline], references, labels)
    metrics["polarity_accuracy"] = sum(  # None for a space the data defined with labels of unknown polarity
        bool(row["prediction"]) and polarity_of(row["prediction"], space) == polarity_of(row["reference"], space)
        for row in headline
    ) / len(headline) if set(labels) <= set(space.polarity) else None
    if with_scores:
        probabilities = [[row["scores"][label] for label in labels] for row in headline]
        calibration = evaluate.load(str(METRICS_DIR / "emotion_calibration"))
        metrics |= calibration.compute(predictions=probabilities, references=references, labels=labels)
        metrics |= peer_calibration(probabilities, references, labels)
    if "confidence" in headline[0]:
        metrics |= reasoning_figures(headline, labels)
    if len({row["paraphrase"] for row in rows}) > 1:
        sensitivity = evaluate.load(str(METRICS_DIR / "instruction_sensitivity"))
        spread = sensitivity.compute(
            predictions=[row["prediction"] or "" for row in rows], references=[row["reference"] for row in rows],
            paraphrases=[row["paraphrase"] for row in rows], datasets=[data] * len(rows), labels=labels,
        )
        metrics["instruction_sensitivity"] = spread["sensitivity"]
        metrics["accuracy_per_paraphrase"] = spread["per_dataset"][data]["accuracy_per_paraphrase"]
    return metrics


def classification_figures(predictions: list, references: list[str], labels: list[str]) -> dict:
    """Accuracy, macro/weighted F1, per-class figures and the confusion matrix (`emotion_classification`); a None
    prediction (an answer naming no label) counts as wrong."""
    import evaluate

    classification = evaluate.load(str(METRICS_DIR / "emotion_classification"))
    return classification.compute(predictions=[prediction or "" for prediction in predictions], references=references,
                                  labels=labels)


def peer_calibration(probabilities: list[list[float]], references: list[str], labels: list[str]) -> dict:
    """EmoCaliber's calibration columns from per-label probabilities: ECE over `PEER_ECE_BINS` equal-width bins of the
    top-1 probability and the Brier score of that probability as a forecast of being right, both x100."""
    import evaluate

    calibration = evaluate.load(str(METRICS_DIR / "emotion_calibration"))
    figures = calibration.compute(predictions=probabilities, references=references, labels=labels,
                                  n_bins=PEER_ECE_BINS, bins_closed="left", top_k=[])
    return dict(zip(PEER_CALIBRATION_KEYS, (100 * figures["ece"], 100 * figures["top_label_brier"])))


def _separation(confidence, correct) -> float | None:
    """AUROC of the stated confidence as a score for "this answer is right": 0.5 when it says the same of every
    answer (calibrated on average, blind per image), 1 when every right answer states more than every wrong one;
    None when the answers are all right or all wrong."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(correct, confidence)) if 0 < correct.sum() < len(correct) else None


def reasoning_figures(rows: list[dict], labels: list[str]) -> dict:
    """Reasoning-format answers: format compliance, the stated confidence's ECE (`PEER_ECE_BINS` equal-width bins,
    binned as `peer_calibration` bins the rank probabilities) and Brier score as a forecast of being right, both
    x100, and its AUROC (whether it tells right answers from wrong ones), over the answers whose confidence reads
    (`confidence_missing_rate`: the others); beside them the rank-mode columns of the same images."""
    import numpy as np

    stated = [row for row in rows if row["confidence"] is not None]
    figures = {"format_compliance": float(np.mean([bool(row["well_formed"]) for row in rows])),
               "confidence_missing_rate": 1.0 - len(stated) / len(rows),
               "verbalised_ece_10_bins_x100": None, "verbalised_brier_x100": None, "verbalised_auroc": None}
    if stated:
        confidence = np.array([row["confidence"] for row in stated])
        correct = np.array([float(row["prediction"] == row["reference"]) for row in stated])
        # the rank columns' binning (peer_calibration: "left", EmoCaliber's edges), from the metric module itself
        from .metrics.emotion_calibration.emotion_calibration import expected_calibration_error

        figures["verbalised_ece_10_bins_x100"] = 100 * expected_calibration_error(confidence, correct, PEER_ECE_BINS,
                                                                                   "left")
        figures["verbalised_brier_x100"] = 100 * float(np.mean((confidence - correct) ** 2))
        figures["verbalised_auroc"] = _separation(confidence, correct)
    probabilities = [[row["rank_scores"][label] for label in labels] for row in rows]
    rank = peer_calibration(probabilities, [row["reference"] for row in rows], labels)
    figures |= {f"rank_{key}": value for key, value in rank.items()}
    figures["rank_accuracy"] = float(np.mean([labels[int(np.argmax(p))] == row["reference"]
                                              for p, row in zip(probabilities, rows)]))
    return figures
