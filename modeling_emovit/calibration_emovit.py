"""Per-label probabilities from candidate log-likelihoods, through the calibration stored in the model config.

`config.emotion_calibration`, written by `emovit eval --mode rank --calibrate-on VAL_DATA`, holds
`{"temperature": T, "bias": {label: b} or None, "labels": [...], "fitted_on": "..."}`; the probabilities are
softmax(log_likelihood / T + bias) over the candidates (temperature scaling, Guo et al., ICML 2017). A temperature
never changes which label ranks first; per-label biases can. Both were fitted on one candidate list in one order
(the options the instruction names, in that order), so they apply only when the candidates are exactly `labels`
(`calibration_applies`); any other list gets the plain softmax of its log-likelihoods, and callers say so (the
pipeline's `"calibrated"` key, results.json's `calibrated`). Used by rank evaluation and the
image-emotion-classification pipeline; saved beside the weights as remote code.
"""

from collections.abc import Sequence

import torch


def calibration_applies(labels: Sequence[str], calibration: dict | None) -> bool:
    """Whether `calibration` was fitted on exactly these candidates, in this order."""
    return bool(calibration) and list(labels) == list(calibration.get("labels") or ())


def emotion_probabilities(log_likelihoods: torch.Tensor, labels: Sequence[str], calibration: dict | None) -> torch.Tensor:
    """`(batch, num_labels)` probabilities (rows sum to 1) from `(batch, num_labels)` candidate log-likelihoods:
    calibrated when `calibration_applies`, else the softmax of the log-likelihoods."""
    logits = log_likelihoods.double()
    if calibration_applies(labels, calibration):
        logits = logits / float(calibration["temperature"])
        bias = calibration.get("bias")
        if bias:
            logits = logits + torch.tensor([bias[label] for label in labels], dtype=logits.dtype, device=logits.device)
    return logits.softmax(dim=-1)
