"""The `evaluate` metric modules of this package, each a stand-alone folder (`<name>/<name>.py` and its README):
`metric_path` gives the installed folder, which `evaluate.load` reads offline from any working directory.

    import evaluate
    from evaluation.metrics import metric_path

    metric = evaluate.load(metric_path("emotion_classification"))
"""

from pathlib import Path

METRICS = ("emotion_classification", "emotion_calibration", "instruction_sensitivity")


def metric_path(name: str) -> str:
    """The installed folder of metric `name` (one of METRICS), as `evaluate.load` takes it."""
    if name not in METRICS:
        raise ValueError(f"No metric module named {name!r}; choose one of {', '.join(METRICS)}.")
    return str(Path(__file__).resolve().parent / name)
