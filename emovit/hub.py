"""Publishing to the Hugging Face Hub: `push_dataset` (a built dataset folder) and `push_model` (a model folder).

Both use huggingface_hub's `create_repo` + `upload_folder`; the token comes from the environment (HF_TOKEN) or the
huggingface_hub login, never from a file of this package. A missing or refused token is one sentence
(`EmoVITInputError`), not a traceback.
"""

import contextlib
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError, reading
from modeling_emovit.loading import check_processor_folder

_LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"
# Trainer by-products that are not part of the model.
MODEL_IGNORED = ["checkpoint-*/**", "runs/**", ".cache/**", "*.lock"]
DATASET_FILES = ["README.md", "build_report.json", "*/*.parquet"]


@contextlib.contextmanager
def hub_credentials(repo_id: str):
    """Runs Hub writes to `repo_id`; a missing, invalid or read-only token raises EmoVITInputError (other Hub and
    connection errors are named "pushing to `repo_id`" for the error boundary)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        with reading(f"pushing to {repo_id}"):
            yield
    except LocalTokenNotFoundError as error:
        raise EmoVITInputError(f"Pushing to {repo_id} needs a Hugging Face token: {_LOGIN_HINT}.") from error
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status not in (401, 403):
            raise
        raise EmoVITInputError(
            f"The Hub refused to write to {repo_id} (HTTP {status}: no token, an invalid one or one without write "
            f"access); {_LOGIN_HINT} (a token with write access)."
        ) from error


def _upload(folder: Path, repo_id: str, repo_type: str, private: bool, message: str, **patterns) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    with hub_credentials(repo_id):
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(repo_id=url.repo_id, repo_type=repo_type, folder_path=str(folder), commit_message=message,
                          **patterns)
    return str(url)


def push_dataset(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Uploads a folder written by `emovit data build` (card, report, Parquet shards); returns the repository URL."""
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise EmoVITInputError(f"{folder}: no README.md dataset card; build the folder with `emovit data build` first.")
    return _upload(folder, repo_id, "dataset", private, "Upload EmoVIT instruction data (emovit data push)",
                   allow_patterns=DATASET_FILES)


def push_model(model_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Uploads a saved model folder (weights, processor, code files, card) in one commit; returns the repository URL."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise EmoVITInputError(f"{folder}: not a saved model folder (no config.json); pass the folder model.save_pretrained wrote.")
    check_processor_folder(folder, "pushing")
    return _upload(folder, repo_id, "model", private, "Upload EmoVIT model, processor, code and card",
                   ignore_patterns=MODEL_IGNORED)
