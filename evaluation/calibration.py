"""Calibration of rank-mode probabilities: fitted on a validation split, stored in the model config, reported.

`emovit eval --mode rank --calibrate-on VAL_DATA`: rank predictions on VAL_DATA (their raw answer log-likelihoods,
resumable under OUT/calibration) -> a temperature T minimising the validation negative log-likelihood (temperature
scaling, Guo et al., ICML 2017), and per-label biases for the instruction's option order, kept only when they earn
their keep: 5-fold cross-validation on the validation split must show them lowering the NLL by more than
`BIAS_MIN_GAIN` -> `config.emotion_calibration` of the model (and of its local folder's config.json) -> the
probabilities of this run, of later runs, of the image-emotion-classification pipeline and of `emovit serve`, each
time the candidates are the labels it was fitted on (`modeling_emovit.calibration_emovit.calibration_applies`).
A run it applies to reports its metrics both ways: `metrics` after the calibration (per-label biases can move
accuracy, not only ECE) and `uncalibrated_metrics` from the softmax of the raw log-likelihoods (`uncalibrated_rows`).
"""

import json
from pathlib import Path

import numpy as np

from dataset_builder.loading import load_split
from modeling_emovit.errors import EmoVITInputError

from .label_space import in_label_space, resolve_label_space
from .prediction_loop import predict_split
from .settings import EvalSettings

CALIBRATION_DIR = "calibration"  # OUT/calibration: the validation split's predictions
BIAS_MIN_GAIN = 0.01  # relative cross-validated NLL gain the per-label biases must bring to be kept
FOLDS = 5
LOG_TEMPERATURE_BOUNDS = (np.log(1e-2), np.log(1e2))
# The smallest validation split a temperature is fitted on: fewer images, or one emotion only, give a temperature
# that says nothing about the model (a single image drives it to a bound). A few hundred images are better.
MIN_CALIBRATION_IMAGES = 16
MIN_CALIBRATION_EMOTIONS = 2


def calibrate(settings: EvalSettings, adapter, space) -> dict:
    """Predicts the validation split, fits the calibration, sets `model.config.emotion_calibration` and, for a local
    model folder, writes it into config.json (main process). Returns the fit's report for results.json.

    `space`: the evaluation's label space (the object itself: a space the data defines has no other name)."""
    from accelerate import PartialState

    from .predictors import ClassificationTask, RankPredictor

    val = EvalSettings(model=settings.model, data=settings.calibrate_on, out=str(Path(settings.out) / CALIBRATION_DIR),
                       config=settings.config, split=settings.calibrate_split, label_space=space.name, mode="rank",
                       batch_size=settings.batch_size)
    dataset = load_split(val.data, val.config, val.split)
    # every validation emotion must be a candidate (its polarity, for a polarity view)
    dataset = in_label_space(dataset, resolve_label_space(dataset, space, val.data))
    # every process fits the same rows, deterministically
    split = predict_split(val, dataset, ClassificationTask(RankPredictor(adapter, space), space))
    rows = split.rows
    check_calibration_split(rows, f"--calibrate-on {val.data} (split {val.split})", split.skipped["count"])
    log_likelihoods, references = log_likelihood_matrix(rows, space.labels)
    fitted_on = f"{Path(val.data).name} ({val.split}, {len(rows)} images)"
    calibration, report = fit_calibration(log_likelihoods, references, space.labels, fitted_on)
    adapter.model.config.emotion_calibration = calibration
    if PartialState().is_main_process and Path(settings.model).is_dir():
        store_calibration(settings.model, calibration)
    return report


def check_calibration_split(rows: list[dict], where: str, skipped: int = 0) -> None:
    """Refuses, in one sentence, a validation split too small or too uniform to fit a temperature on."""
    emotions = {row["reference"] for row in rows}
    if len(rows) < MIN_CALIBRATION_IMAGES or len(emotions) < MIN_CALIBRATION_EMOTIONS:
        unreadable = f" ({skipped} more did not decode)" if skipped else ""
        raise EmoVITInputError(
            f"{where}: {len(rows)} readable image(s){unreadable} of {len(emotions)} emotion(s) is too little to "
            f"calibrate on; a validation split needs at least {MIN_CALIBRATION_IMAGES} images of at least "
            f"{MIN_CALIBRATION_EMOTIONS} emotions (a few hundred are better). Nothing was stored."
        )


def log_likelihood_matrix(rows: list[dict], labels) -> tuple[np.ndarray, np.ndarray]:
    """`(N, C)` raw answer log-likelihoods (label order) and `(N,)` reference label ids, from prediction rows."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.array([[row["log_likelihoods"][label] for label in labels] for row in rows], dtype=np.float64)
    return matrix, np.array([index[row["reference"]] for row in rows])


def fit_calibration(log_likelihoods: np.ndarray, references: np.ndarray, labels, fitted_on: str) -> tuple[dict, dict]:
    """(the `emotion_calibration` config entry, a report of the choice). Biases only when they earn their keep."""
    labels = list(labels)
    centred = log_likelihoods - log_likelihoods.max(axis=1, keepdims=True)  # softmax is shift-invariant per row
    temperature, _ = _fit(centred, references, with_bias=False)
    cv_temperature = _cross_validated_nll(centred, references, with_bias=False)
    cv_bias = _cross_validated_nll(centred, references, with_bias=True)
    keep_bias = cv_bias is not None and cv_bias < cv_temperature * (1 - BIAS_MIN_GAIN)
    if keep_bias:
        temperature, bias = _fit(centred, references, with_bias=True)
    _refuse_a_bound(temperature, fitted_on)
    calibration = {
        "temperature": round(float(temperature), 6),
        "bias": {label: round(float(b), 6) for label, b in zip(labels, bias)} if keep_bias else None,
        "labels": labels,
        "fitted_on": fitted_on,
    }
    report = {"fitted_on": fitted_on, "temperature": calibration["temperature"], "bias_kept": keep_bias,
              "cross_validated_nll": {"temperature": cv_temperature, "temperature_and_bias": cv_bias}}
    return calibration, report


def _refuse_a_bound(temperature: float, fitted_on: str) -> None:
    """A temperature at the edge of its search range is no fit (the split pushes it as far as allowed): refused
    rather than stored, since T = 100 would make every later probability nearly uniform."""
    low, high = np.exp(LOG_TEMPERATURE_BOUNDS)
    if not low * 1.01 < temperature < high / 1.01:
        raise EmoVITInputError(
            f"Calibration on {fitted_on}: the temperature ran to the end of its range ({temperature:.3g}; allowed "
            f"{low:g} to {high:g}), so this split cannot calibrate the model; use a larger validation split with "
            "several emotions. Nothing was stored."
        )


def store_calibration(model_dir: str | Path, calibration: dict) -> None:
    """Sets `emotion_calibration` in MODEL_DIR/config.json, leaving every other key as it was."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text())
    config["emotion_calibration"] = calibration
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _nll_and_gradient(params: np.ndarray, log_likelihoods: np.ndarray, references: np.ndarray):
    """Mean NLL of softmax(ll / T + b) and its gradient in (log T, b...); `params` = [log T] or [log T, b_1..b_C]."""
    temperature = np.exp(params[0])
    logits = log_likelihoods / temperature + (params[1:] if len(params) > 1 else 0.0)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rows = np.arange(len(references))
    nll = -np.mean(np.log(probabilities[rows, references] + 1e-300))
    residual = probabilities.copy()
    residual[rows, references] -= 1.0  # d NLL / d logits, per example
    gradient = [np.mean(np.sum(residual * (-log_likelihoods / temperature), axis=1))]
    if len(params) > 1:
        gradient += list(residual.mean(axis=0))
    return nll, np.array(gradient)


def _fit(centred, references, with_bias: bool) -> tuple[float, np.ndarray]:
    """(T, biases centred on 0) minimising the NLL with scipy's L-BFGS-B; `centred`: log-likelihoods minus each
    row's maximum."""
    from scipy.optimize import minimize

    classes = centred.shape[1]
    start = np.zeros(1 + (classes if with_bias else 0))
    bounds = [LOG_TEMPERATURE_BOUNDS] + [(None, None)] * (classes if with_bias else 0)
    result = minimize(_nll_and_gradient, start, args=(centred, references), jac=True, method="L-BFGS-B", bounds=bounds)
    bias = result.x[1:] - result.x[1:].mean() if with_bias else np.zeros(classes)
    return float(np.exp(result.x[0])), bias


def _cross_validated_nll(centred, references, with_bias: bool) -> float | None:
    """Mean held-out NLL over `FOLDS` folds (None when the split is too small to hold out folds)."""
    from sklearn.model_selection import KFold

    if len(references) < 5 * FOLDS:
        return None
    losses = []
    for train, held_out in KFold(FOLDS, shuffle=True, random_state=0).split(centred):
        temperature, bias = _fit(centred[train], references[train], with_bias)
        params = np.concatenate([[np.log(temperature)], bias]) if with_bias else np.array([np.log(temperature)])
        losses.append(_nll_and_gradient(params, centred[held_out], references[held_out])[0])
    return float(np.mean(losses))


def uncalibrated_rows(rows: list[dict], labels) -> list[dict]:
    """Prediction rows as the softmax of their raw answer log-likelihoods ranks them (prediction = the likeliest
    answer), for the metrics of a calibrated run without its calibration."""
    import torch

    from modeling_emovit.calibration_emovit import emotion_probabilities

    labels = list(labels)
    log_likelihoods, _ = log_likelihood_matrix(rows, labels)
    probabilities = emotion_probabilities(torch.from_numpy(log_likelihoods), labels, None).tolist()
    return [{**row, "prediction": labels[best], "scores": dict(zip(labels, scores))}
            for row, best, scores in zip(rows, log_likelihoods.argmax(axis=1), probabilities)]


def calibration_results(rows: list[dict], space, calibration: dict, fit: dict | None, diagram: Path, title: str) -> dict:
    """results.json's `calibration`: how it was fitted (this run's fit, else the config's record) and the before/after
    figures on this split; draws the reliability diagram PNG at `diagram`."""
    from .plots import plot_reliability_diagram

    figures, points = before_and_after(rows, space, calibration)
    panels = {f"{name}, ECE {figures[name]['ece']:.3f}": points[name] for name in points}
    plot_reliability_diagram(panels, diagram, f"{title}, T = {calibration['temperature']:.3g}")
    how = fit or {"fitted_on": calibration.get("fitted_on"), "temperature": calibration["temperature"],
                  "bias_kept": bool(calibration.get("bias"))}
    return {**how, **figures}


def before_and_after(rows: list[dict], space, calibration: dict) -> tuple[dict, dict]:
    """ECE (15 bins), Brier, NLL, accuracy and mean confidence of the raw softmax and of the calibrated probabilities
    (the `emotion_calibration` metric module), and per variant (top-1 confidence, correct) arrays for the diagram."""
    import evaluate
    import torch

    from modeling_emovit.calibration_emovit import emotion_probabilities

    from .classification_metrics import METRICS_DIR

    log_likelihoods, references = log_likelihood_matrix(rows, space.labels)
    variants = {
        "before": emotion_probabilities(torch.from_numpy(log_likelihoods), space.labels, None).numpy(),
        "after": emotion_probabilities(torch.from_numpy(log_likelihoods), space.labels, calibration).numpy(),
    }
    metric = evaluate.load(str(METRICS_DIR / "emotion_calibration"))
    figures, points = {}, {}
    for name, probabilities in variants.items():
        computed = metric.compute(predictions=probabilities.tolist(), references=references.tolist(), n_bins=15, top_k=[1])
        computed["accuracy"] = computed.pop("top_1_accuracy")
        figures[name] = computed
        points[name] = (probabilities.max(axis=1), probabilities.argmax(axis=1) == references)
    return figures, points
