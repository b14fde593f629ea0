"""Experiment trackers of a recipe (`report_to:`), checked before anything heavy loads.

transformers builds a tracker's callback only when the trainer is built, after the data and the model have loaded:
a recipe naming a tracker that is not installed (the 7B recipes say `report_to: tensorboard`) would fail minutes
in. This check uses transformers' own list of the trackers it finds installed.
"""

from modeling_emovit.errors import EmoVITInputError

# Trackers and the package each needs; `pip install "emovit[track]"` installs the first three.
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb", "mlflow": "mlflow",
                    "comet_ml": "comet_ml", "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive"}


def check_trackers(training_args) -> None:
    """Raises `EmoVITInputError` naming each tracker in `report_to` that is not installed."""
    from transformers.integrations import get_available_reporting_integrations

    wanted = [name for name in training_args.report_to or () if name not in ("none", "all")]
    if not wanted:
        return
    available = set(get_available_reporting_integrations())
    missing = [name for name in wanted if name not in available]
    if missing:
        packages = " ".join(TRACKER_PACKAGES.get(name, name) for name in missing)
        raise EmoVITInputError(
            f"report_to names {', '.join(missing)}, which is not installed; install it (`pip install \"emovit[track]\"` "
            f"for tensorboard, trackio and wandb, or `pip install {packages}`) or set `report_to: none`."
        )
