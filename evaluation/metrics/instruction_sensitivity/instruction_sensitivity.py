"""Instruction sensitivity metric: how much accuracy moves when the instruction is paraphrased (lower is better).

A stand-alone `evaluate` module: it imports no emovit code and shares none with its sibling modules (it repeats
their few lines of input checking by design), so it can be published on its own. Offline, by path:
`evaluate.load(metric_path("instruction_sensitivity"))`, the installed folder (the README says where `metric_path`
lives), or "evaluation/metrics/instruction_sensitivity" from a clone's root. Per dataset, the accuracy under each
instruction paraphrase; sensitivity = standard deviation / mean of those accuracies (the coefficient of variation),
then averaged over datasets, as the instruction-sensitivity measure of InstructBLIP-style evaluations.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
For each dataset d with accuracies a_1..a_P under P instruction paraphrases:
sensitivity_d = std(a) / mean(a) (population standard deviation; 0 when the mean is 0), and
sensitivity = mean over datasets of sensitivity_d.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: label strings or ids (a prediction is right when it equals its reference, case-insensitively).
    references: label strings or ids.
    paraphrases: the paraphrase index of the instruction each prediction answered.
    datasets: the dataset name of each example (one name for all if there is one dataset).
Returns:
    sensitivity (float, averaged over datasets) and per_dataset
    ({name: {sensitivity, mean_accuracy, std_accuracy, accuracy_per_paraphrase: {index: accuracy}}}).
Example:
    >>> metric = evaluate.load(metric_path("instruction_sensitivity"))  # metric_path: see the README
    >>> metric.compute(predictions=["joy", "joy", "joy", "fear"], references=["joy"] * 4, paraphrases=[0, 0, 1, 1],
    ...                datasets=["emotion6"] * 4)["sensitivity"]
    0.3333333333333333
"""

_CITATION = """
@inproceedings{dai2023instructblip,
  title={InstructBLIP: Towards General-purpose Vision-Language Models with Instruction Tuning},
  author={Dai, Wenliang and Li, Junnan and Li, Dongxu and Tiong, Anthony Meng Huat and Zhao, Junqi and Wang, Weisheng and Li, Boyang and Fung, Pascale and Hoi, Steven},
  booktitle={NeurIPS},
  year={2023}
}
"""


def _input_format(label_type: str) -> datasets.Features:
    return datasets.Features(
        {
            "predictions": datasets.Value(label_type),
            "references": datasets.Value(label_type),
            "paraphrases": datasets.Value("int64"),
            "datasets": datasets.Value("string"),
        }
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InstructionSensitivity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[_input_format("string"), _input_format("int64")],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds a batch after checking that predictions and references are equally many."""
        if predictions is not None and references is not None and len(predictions) != len(references):
            raise ValueError(f"{self.name}: got {len(predictions)} predictions, {len(references)} references; pass one "
                             f"of each per example.")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, paraphrases, datasets, **_other_metrics_arguments):
        """`**_other_metrics_arguments`: evaluate.combine passes every keyword to every combined module."""
        correct = np.array([str(p).strip().lower() == str(r).strip().lower() for p, r in zip(predictions, references)])
        paraphrases = np.asarray(paraphrases)
        datasets = np.asarray(datasets)
        per_dataset = {str(name): _spread(correct[datasets == name], paraphrases[datasets == name])
                       for name in np.unique(datasets)}
        sensitivity = np.mean([scores["sensitivity"] for scores in per_dataset.values()]) if per_dataset else 0.0
        return {"sensitivity": float(sensitivity), "per_dataset": per_dataset}


def _spread(correct: np.ndarray, paraphrases: np.ndarray) -> dict:
    accuracy = {int(p): float(correct[paraphrases == p].mean()) for p in np.unique(paraphrases)}
    values = np.array(list(accuracy.values()))
    mean, std = float(values.mean()), float(values.std())
    return {
        "sensitivity": std / mean if mean > 0 else 0.0,
        "mean_accuracy": mean,
        "std_accuracy": std,
        "accuracy_per_paraphrase": accuracy,
    }
