"""`emovit push`: a trained model folder (weights, processor, code files, card) to a Hub model repository.

Uses huggingface_hub's `create_repo` + `upload_folder`; the token comes from the environment (HF_TOKEN) or the
huggingface_hub login, never from a file of this package.
"""

from pathlib import Path

from dataset_builder.hub import hub_credentials
from modeling_emovit.errors import EmoVITInputError

# Trainer by-products that are not part of the model.
IGNORED = ["checkpoint-*/**", "runs/**", ".cache/**", "*.lock"]


def push_model(model_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Creates `repo_id` (if needed), uploads the folder in one commit and returns the repository URL; a missing or
    refused token raises EmoVITInputError."""
    from huggingface_hub import create_repo
    from huggingface_hub import upload_folder

    folder = Path(model_dir)
    _check_model_folder(folder)
    with hub_credentials(repo_id):
        url = create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        upload_folder(
            repo_id=url.repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message="Upload EmoVIT model, processor, code and card",
            ignore_patterns=IGNORED,
        )
    return str(url)


def _check_model_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise EmoVITInputError(f"{folder}: not a saved model folder (no config.json); pass the folder model.save_pretrained wrote.")
    if not any((folder / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        raise EmoVITInputError(
            f"{folder}: the model folder has no processor (processor_config.json); save it there with "
            f"processor.save_pretrained({str(folder)!r}) before pushing."
        )
