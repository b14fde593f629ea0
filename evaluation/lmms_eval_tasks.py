"""Emotion classification as lmms-eval tasks: `emovit export lmms-eval DATA DIR` writes them, `lmms-eval --include_path
DIR --tasks emovit_emoset` runs them, with this package's model (`emovit.lmms_eval_model`) or any other.

Each label space of a built dataset (its own, and the polarity views of it, `evaluation.label_space.POLARITY_VIEWS`)
becomes two tasks in lmms-eval's task format (`lmms_eval/api/task.py` `TaskConfig`, 0.7.3):
- `emovit_<space>`: `output_type: multiple_choice`, this package's rank mode: the choices are EmoVIT's candidate
  answers ("Predict emotion: <label>") after its categorical instruction, each scored by the model's `loglikelihood`;
- `emovit_<space>_generate`: `output_type: generate_until`, the generate mode: the greedy answer, parsed onto the
  label space with the dataset builder's normaliser.
Beside each pair sits a small module of their `!function`s, bound to the label space (`EmotionTask`); the metrics
aggregate through `evaluation.classification_metrics`, the functions `emovit eval` computes its results with.

lmms-eval's multiple-choice convention (`ConfigurableTask.process_results`, and the loss its bundled models return
from `loglikelihood`): the first element of each choice's response is its loss, lower is better. The probabilities
here are the softmax of minus those losses: for this package's model, whose loss is the answer's summed negative
log-likelihood, exactly the uncalibrated probabilities of rank mode.
"""

import os
from pathlib import Path

from dataset_builder.emotions import normalize_emotion
from dataset_builder.instructions import categorical_answer, categorical_instruction
from modeling_emovit.errors import EmoVITInputError

from .label_space import POLARITY_VIEWS, evaluation_label_space, reference_label

RANK_METRICS = {"accuracy": True, "macro_f1": True, "weighted_f1": True, "ece_10_bins_x100": False,
                "top_label_brier_x100": False}  # metric -> higher is better
GENERATE_METRICS = {"accuracy": True, "macro_f1": True, "weighted_f1": True, "unmapped_rate": False}
TASK_FUNCTIONS = ("doc_to_visual", "doc_to_text", "doc_to_choice", "doc_to_target", "reference",
                  "process_rank_results", "process_generate_results", *sorted(set(RANK_METRICS) | set(GENERATE_METRICS)))
DEFAULT_MAX_NEW_TOKENS = 32  # generate mode's answer budget: "Predict emotion: <label>" in any tokenizer, with room


class EmotionTask:
    """The lmms-eval functions of one label space's tasks (a doc is a row of the dataset's `categorical` config)."""

    def __init__(self, label_space: str):
        self.space = evaluation_label_space(label_space)
        self.labels = list(self.space.labels)
        self.answers = [categorical_answer(label) for label in self.labels]
        self.instruction = categorical_instruction(self.labels, 0)  # EmoVIT's own instruction, as `emovit eval` asks

    def doc_to_visual(self, doc) -> list:
        from modeling_emovit.image_utils import open_image

        return [open_image(doc["image"])]  # upright 8-bit RGB, as `emovit eval` decodes it

    def doc_to_text(self, doc) -> str:
        return self.instruction

    def doc_to_choice(self, doc) -> list[str]:
        return list(self.answers)

    def doc_to_target(self, doc) -> int:
        """The reference's position among the choices (rank task)."""
        return self.labels.index(self.reference(doc))

    def reference(self, doc) -> str:
        """The reference label (generate task's target): the emotion, or its polarity for a polarity view."""
        return reference_label(doc["emotion"], self.space)

    def process_rank_results(self, doc, results) -> dict:
        """`results`: one `(loss, is_greedy)` per choice, in choice order; lmms-eval 0.7.3 hands each over as its
        `str()` (`api/instance.py` `unwrap_generation_output` stringifies whatever is not text), read back exactly
        (a float's repr round-trips)."""
        import ast

        import torch

        from modeling_emovit.calibration_emovit import emotion_probabilities

        responses = [ast.literal_eval(result) if isinstance(result, str) else result for result in results]
        losses = torch.tensor([float(response[0]) for response in responses], dtype=torch.float64)
        probabilities = emotion_probabilities(-losses[None], self.labels, None)[0].tolist()
        prediction = self.labels[max(range(len(self.labels)), key=probabilities.__getitem__)]
        item = {"reference": self.reference(doc), "prediction": prediction,
                "probabilities": probabilities}
        return dict.fromkeys(RANK_METRICS, item)

    def process_generate_results(self, doc, results) -> dict:
        """`results`: the generated answer (lmms-eval passes it in a one-element list)."""
        item = {"reference": self.reference(doc), "prediction": normalize_emotion(results[0], self.space),
                "answer": results[0]}
        return dict.fromkeys(GENERATE_METRICS, item)

    def accuracy(self, items) -> float:
        return self._figures(items)["accuracy"]

    def macro_f1(self, items) -> float:
        return self._figures(items)["macro_f1"]

    def weighted_f1(self, items) -> float:
        return self._figures(items)["weighted_f1"]

    def unmapped_rate(self, items) -> float:
        return self._figures(items)["unmapped_rate"]

    def ece_10_bins_x100(self, items) -> float:
        return self._calibration(items)["ece_10_bins_x100"]

    def top_label_brier_x100(self, items) -> float:
        return self._calibration(items)["top_label_brier_x100"]

    def _figures(self, items) -> dict:
        from .classification_metrics import classification_figures

        return classification_figures([item["prediction"] for item in items], [item["reference"] for item in items],
                                      self.labels)

    def _calibration(self, items) -> dict:
        from .classification_metrics import peer_calibration

        return peer_calibration([item["probabilities"] for item in items], [item["reference"] for item in items],
                                self.labels)


def task_name(label_space: str) -> str:
    """`emovit_emoset`, `emovit_fi_2`, `emovit_webemo_25`: lmms-eval task names are identifiers."""
    return "emovit_" + label_space.replace("-", "_")


def export_lmms_eval_tasks(data: str, out_dir, split: str = "test", label_spaces: list[str] | None = None,
                           max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[str]:
    """Writes both tasks of each label space (default: the dataset's own and its polarity views) into `out_dir`;
    returns the task names. A folder or Hub id that is no built dataset with categorical rows in `split`, and a label
    space its emotions do not fit, are refused in one sentence before anything is written; files are written under
    temporary names and renamed only once all are complete, and none already in `out_dir` is overwritten."""
    from dataset_builder.loading import load_split, local_parquet_files

    from .label_space import resolve_label_space

    dataset = load_split(data, "categorical", split)
    own = resolve_label_space(dataset, None, data).name
    label_spaces = label_spaces or [own, *(view for view, source in POLARITY_VIEWS.items() if source == own)]
    for space in label_spaces:
        resolve_label_space(dataset, space, data)
    # A local folder by its Parquet files' absolute paths (`dataset_builder.loading` says why), a Hub id by name.
    local = local_parquet_files(Path(data), "categorical", split) if Path(data).is_dir() else None
    if local:  # the config's row filter too: a build stores every task's rows in one place (`all/`)
        files, filters = local
        source = {"dataset_path": "parquet",
                  "dataset_kwargs": {"data_files": {split: files}, **({"filters": filters} if filters else {})}}
    else:
        source = {"dataset_path": str(Path(data).resolve()) if Path(data).is_dir() else data, "dataset_name": "categorical"}
    files = {}
    for space in label_spaces:
        name = task_name(space)
        files[f"{name}.py"] = _functions_module(name, space)
        files[f"{name}.yaml"] = _task_yaml(name, name, space, data, split, source, "rank", max_new_tokens)
        files[f"{name}_generate.yaml"] = _task_yaml(f"{name}_generate", name, space, data, split, source, "generate",
                                                    max_new_tokens)
    _write_all(Path(out_dir), files)
    return [task for space in label_spaces for task in (task_name(space), f"{task_name(space)}_generate")]


def _functions_module(name: str, space: str) -> str:
    lines = [f'"""lmms-eval functions of the `{name}` tasks ({space}), written by `emovit export lmms-eval`: see',
             '`evaluation.lmms_eval_tasks.EmotionTask`."""', "",
             "from evaluation.lmms_eval_tasks import EmotionTask", "", f"_TASK = EmotionTask({space!r})"]
    lines += [f"{function} = _TASK.{function}" for function in TASK_FUNCTIONS]
    return "\n".join(lines) + "\n"


def _task_yaml(task: str, module: str, space: str, data: str, split: str, source: dict, mode: str,
               max_new_tokens: int) -> str:
    """One task in lmms-eval's YAML format; `!function MODULE.NAME` resolves to the module beside the YAML."""
    import yaml

    class FunctionRef(str):
        pass

    class TaskDumper(yaml.SafeDumper):
        pass

    TaskDumper.add_representer(FunctionRef, lambda dumper, value: dumper.represent_scalar("!function", str(value)))

    def function(name):
        return FunctionRef(f"{module}.{name}")

    metrics = RANK_METRICS if mode == "rank" else GENERATE_METRICS
    config = {
        "task": task, **source, "test_split": split,
        "output_type": "multiple_choice" if mode == "rank" else "generate_until",
        "doc_to_visual": function("doc_to_visual"), "doc_to_text": function("doc_to_text"),
        "doc_to_target": function("doc_to_target" if mode == "rank" else "reference"),
    }
    if mode == "rank":
        config |= {"doc_to_choice": function("doc_to_choice"), "target_delimiter": ""}
    else:  # no stop strings: `emovit eval` cuts nothing either
        config["generation_kwargs"] = {"max_new_tokens": max_new_tokens, "until": [], "do_sample": False}
    config["process_results"] = function(f"process_{mode}_results")
    config["metric_list"] = [{"metric": metric, "aggregation": function(metric), "higher_is_better": better}
                             for metric, better in metrics.items()]
    config["metadata"] = {"version": 1.0, "label_space": space, "mode": mode, "data": data}
    header = (f"# {task}: {data}, split {split}, {space} labels, {mode} mode (written by `emovit export lmms-eval`)\n")
    return header + yaml.dump(config, Dumper=TaskDumper, sort_keys=False, allow_unicode=True)


def _write_all(out_dir: Path, files: dict[str, str]) -> None:
    """Writes every file under a temporary name first, then renames them all: a failure leaves `out_dir` as it was."""
    existing = sorted(name for name in files if (out_dir / name).exists())
    if existing:
        raise EmoVITInputError(f"{out_dir / existing[0]} already exists; pass another folder or delete the old tasks.")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = {name: out_dir / f".{name}.{os.getpid()}.part" for name in files}
    try:
        for name, text in files.items():
            partial[name].write_text(text, encoding="utf-8")
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        if created:
            out_dir.rmdir()
        raise
    for name, path in partial.items():
        path.replace(out_dir / name)
