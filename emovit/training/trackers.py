"""Experiment trackers of a recipe (`report_to:`), checked before anything heavy loads.

transformers builds a tracker's callback only when the trainer is built, after the data and the model have loaded:
a recipe naming a tracker that is not installed (the 7B recipes say `report_to: tensorboard`) would fail minutes
in. This check uses transformers' own list of the trackers it finds installed.

trackio is not in `emovit[track]`. Its metadata on PyPI (read 2026-12-03): 0.4 to 0.43 require pillow<12 or <13
themselves; 0.0.10 to 0.3 require gradio>=5.30, and gradio pins pillow too (5.35: <12, 6.31: <13); 0.0.6 names gradio
without a version, which pip, under `pillow==13.0.0` from constraints.txt, resolves to gradio 3.36, which fails on
import (`gradio_client.serializing`). So no trackio works beside pillow 13, and a recipe naming it needs one installed
in an environment with pillow<13.
"""

from modeling_emovit.errors import EmoVITInputError

# Trackers and the package each needs; `pip install "emovit[track]"` installs the first two.
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
                    "comet_ml": "comet_ml", "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive"}
TRACKIO_CONFLICT = ("every trackio release needs pillow<13 (itself or through gradio) or fails on import, while "
                    "emovit is tested with pillow 13 (constraints.txt), so `emovit[track]` leaves it out")


def check_trackers(training_args) -> None:
    """Raises `EmoVITInputError` naming each tracker in `report_to` that is not installed, or trackio when it does
    not import."""
    from transformers.integrations import get_available_reporting_integrations

    wanted = [name for name in training_args.report_to or () if name not in ("none", "all")]
    if not wanted:
        return
    available = set(get_available_reporting_integrations())
    if "trackio" in wanted:
        _check_trackio("trackio" in available)
    missing = [name for name in wanted if name not in available]
    if missing:
        packages = " ".join(TRACKER_PACKAGES.get(name, name) for name in missing)
        raise EmoVITInputError(
            f"report_to names {', '.join(missing)}, which is not installed; install it (`pip install \"emovit[track]\"` "
            f"for tensorboard and wandb, or `pip install {packages}`) or set `report_to: none`."
        )


def _check_trackio(installed: bool) -> None:
    """trackio must import (the callback imports it at the first log); the sentence says why emovit cannot help."""
    if not installed:
        raise EmoVITInputError(
            f"report_to names trackio, which is not installed: {TRACKIO_CONFLICT}; use `report_to: tensorboard` or "
            f"wandb, or install trackio in an environment with pillow<13 (`pip install trackio \"pillow<13\"`)."
        )
    try:
        import trackio  # noqa: F401  (imports gradio: seconds, and only when a recipe asks for trackio)
    except Exception as error:  # the broken 0.0.x + gradio 3 pair fails with ImportError or AttributeError
        raise EmoVITInputError(
            f"report_to names trackio, which is installed but fails on import ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:160]}): {TRACKIO_CONFLICT}; use `report_to: tensorboard` or wandb, or "
            f"`pip install -U trackio \"pillow<13\"`."
        ) from None
