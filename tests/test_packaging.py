"""What a user meets around training rather than in it: the shipped recipes, the CPU default, trackers that cannot
install, package names a user's project can shadow, and the model card's loss lines. tests/test_wheel.py runs the
same from a wheel installed outside the source tree."""

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from train_helpers import REPO, TINY_RECIPE, write_dataset

from emovit.training import sft
from emovit.training.recipe_files import copy_recipes, recipe_names, recipes_folder
from emovit.training.trackers import check_trackers
from modeling_emovit import EmoVITInputError

# The recipe folders of the repository, read from the source tree (what `emovit recipes list` must name).
REPOSITORY_RECIPES = sorted({path.parent.name for path in (REPO / "recipes").glob("*/*.yaml")} - {"accelerate_configs"})
REPOSITORY_YAMLS = sorted([*(REPO / "recipes").glob("*/sft.yaml"), *(REPO / "recipes").glob("*/grpo.yaml")])


@pytest.fixture(scope="module")
def gpu_recipe(tmp_path_factory) -> Path:
    """The tiny recipe as a GPU recipe reads: no `use_cpu`, and SFTConfig's default `bf16: true`."""
    recipe = tmp_path_factory.mktemp("recipe") / "sft.yaml"
    lines = TINY_RECIPE.read_text().splitlines(keepends=True)
    recipe.write_text("".join(line for line in lines if not line.startswith(("use_cpu:", "bf16:"))))
    return recipe


@pytest.fixture(scope="module")
def trained_on_cpu(gpu_recipe, tmp_path_factory):
    """(training arguments, output folder, launch log) of 3 logged steps of the GPU recipe on this machine."""
    tmp = tmp_path_factory.mktemp("trained")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("emovit.training.launch").addHandler(handler)
    argv = ["--config", str(gpu_recipe), "--model_name_or_path", "tiny-random", "--dataset_name",
            str(write_dataset(tmp / "data", rows=8)), "--output_dir", str(tmp / "out"), "--max_steps", "3",
            "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true", "--per_device_train_batch_size", "4"]
    try:
        parsed = sft.parse_recipe(argv)
        sft.train(*parsed)
    finally:
        logging.getLogger("emovit.training.launch").removeHandler(handler)
    return parsed[1], tmp / "out", [record.getMessage() for record in records]


def test_a_gpu_recipe_trains_on_a_machine_without_an_accelerator_and_says_it_uses_the_cpu(trained_on_cpu):
    """On the suite's CPU machines: use_cpu true by default, which transformers needs to accept bf16 there; with an
    accelerator (torch's own view of one), nothing changes."""
    import torch

    training_args, out, log = trained_on_cpu
    accelerated = torch.accelerator.is_available()
    assert training_args.use_cpu is not accelerated and training_args.bf16 is True
    assert (out / "model.safetensors").is_file()
    assert log == ([] if accelerated else ["No GPU or other accelerator found: training on the CPU (use_cpu: true)."])


@pytest.mark.parametrize("flag", ["true", "false"])
def test_the_command_line_still_decides_use_cpu(flag, gpu_recipe):
    training_args = sft.parse_recipe(["--config", str(gpu_recipe), "--use_cpu", flag, "--bf16", "false"])[1]
    assert training_args.use_cpu is (flag == "true")


def test_the_card_shows_the_last_logged_step_loss_and_the_runs_mean_each_labelled(trained_on_cpu):
    _, out, _ = trained_on_cpu
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]  # written by transformers
    steps = [entry["loss"] for entry in history if "loss" in entry]
    mean = json.loads((out / "train_results.json").read_text())["train_loss"]
    assert len(steps) == 3 and round(steps[-1], 4) != round(mean, 4)
    card = (out / "README.md").read_text()
    assert f"training loss (last logged step) {round(steps[-1], 4)}" in card
    assert f"training loss (mean over the run) {round(mean, 4)}" in card


def test_recipes_list_names_every_recipe_of_the_repository(capsys):
    from emovit.cli import main

    assert recipe_names() == REPOSITORY_RECIPES and len(REPOSITORY_RECIPES) == 8
    assert main(["recipes", "list"]) == 0
    printed = capsys.readouterr().out
    for path in REPOSITORY_YAMLS:
        stage, recipe = path.stem, path.relative_to(REPO / "recipes")
        assert re.search(rf"{re.escape(recipe.parent.name)}\s+{stage}\s+\S+\s+{re.escape(str(recipes_folder() / recipe))}",
                         printed), (recipe, printed)
    assert "Salesforce/instructblip-vicuna-7b" in printed and str(recipes_folder() / "launch.slurm") in printed


def test_recipes_copy_keeps_the_layout_and_never_overwrites(tmp_path):
    written = copy_recipes("llava-1.5-7b", tmp_path / "recipes")
    assert sorted(path.relative_to(tmp_path) for path in written) == [
        Path("recipes/llava-1.5-7b/chat_template.jinja"), Path("recipes/llava-1.5-7b/sft.yaml")]
    # the YAML names its template by this path, relative to the folder holding recipes/
    assert "chat_template_path: recipes/llava-1.5-7b/chat_template.jinja" in written[1].read_text()
    (tmp_path / "recipes" / "launch.slurm").write_text("mine")
    with pytest.raises(EmoVITInputError, match=r"recipes/launch\.slurm already exists"):
        copy_recipes("all", tmp_path / "recipes")
    assert (tmp_path / "recipes" / "launch.slurm").read_text() == "mine"
    assert not (tmp_path / "recipes" / "emovit-tiny").exists()  # refused before anything was written
    with pytest.raises(EmoVITInputError, match="No recipe named 'vicuna'; choose one of emovit-flan-t5-xl"):
        copy_recipes("vicuna", tmp_path)


def test_trackio_is_refused_with_the_pillow_conflict_when_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)  # as if not installed (find_spec answers None)
    with pytest.raises(EmoVITInputError, match=r"trackio, which is not installed: every trackio release needs "
                                               r"pillow<13.*`pip install trackio \"pillow<13\"`"):
        check_trackers(SimpleNamespace(report_to=["trackio"]))


def test_an_installed_trackio_that_fails_on_import_is_refused_in_one_sentence(tmp_path, monkeypatch):
    """trackio 0.0.6 with gradio 3.36, what pip picks beside pillow 13, fails on import; the failure is reproduced by
    a package that raises what that import raised (shared/NOTES.md, 2026-12-03)."""
    (tmp_path / "trackio").mkdir()
    (tmp_path / "trackio" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named "
                                                      "'gradio_client.serializing'\")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "trackio", raising=False)
    with pytest.raises(EmoVITInputError, match=r"installed but fails on import \(ModuleNotFoundError: No module "
                                               r"named 'gradio_client\.serializing'\): every trackio release"):
        check_trackers(SimpleNamespace(report_to=["tensorboard", "trackio"]))


@pytest.mark.parametrize("own", ["evaluation/__init__.py", "dataset_builder.py"])
def test_a_package_of_the_users_that_hides_ours_is_named_with_both_paths(own, tmp_path):
    """`python -m` puts the launch folder first on sys.path; the console script does not (editable install here,
    the wheel in tests/test_wheel.py)."""
    project = tmp_path / "project"
    (project / own).parent.mkdir(parents=True, exist_ok=True)
    (project / own).write_text("")
    name = own.split("/")[0].removesuffix(".py")
    done = subprocess.run([sys.executable, "-m", "emovit", "recipes", "list"], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"emovit: The package {(project / own.split('/')[0]).resolve()} (first on sys.path: the folder you launched "
        f"from, or PYTHONPATH) hides emovit's own `{name}` package at {REPO / name}; rename yours, or launch from "
        f"another folder.")
    console = subprocess.run([str(Path(sys.executable).parent / "emovit"), "recipes", "list"], cwd=project,
                             capture_output=True, text=True, timeout=120)
    assert console.returncode == 0 and "emovit-tiny" in console.stdout
