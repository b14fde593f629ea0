"""The package as users get it: a wheel built from the source, installed into a fresh virtual environment outside
the source tree, run from a folder where the source tree is not importable.

The fresh environment gets its dependencies without a reinstall: a `.pth` line puts the test environment's
site-packages after its own (a plain path line: the editable install's finder, a `.pth` import hook there, never
runs), so `emovit`, `modeling_emovit`, `dataset_builder` and `evaluation` can only come from the wheel. Each smoke
command checks that what it needs (metric scripts, prompts, recipes, the console script) was installed from the
wheel. The extras are installed for real (pip resolves them with constraints.txt against what is there), which needs
the package registry, as CI has.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from generation_fixtures import pairs_reply
from openai_server import running_openai_server

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("emovit", "modeling_emovit", "dataset_builder", "evaluation")
# recipes/ as the repository holds it (the one copy): the wheel carries each file as emovit/recipes/<path>.
RECIPE_FILES = sorted(str(path.relative_to(REPO / "recipes")) for path in (REPO / "recipes").rglob("*")
                      if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py")
# Files the code reads at run time; a wheel without them breaks `emovit eval` and `data generate` (setup.cfg).
PACKAGE_DATA = (
    "evaluation/metrics/emotion_classification/emotion_classification.py",
    "evaluation/metrics/emotion_calibration/emotion_calibration.py",
    "evaluation/metrics/instruction_sensitivity/instruction_sensitivity.py",
    "dataset_builder/generation/prompts/conversation.txt",
    "dataset_builder/generation/prompts/reasoning.txt",
    "dataset_builder/generation/prices.json",
    "emovit/py.typed",
)
WHERE_FROM = """
import json, sys, importlib
modules = {name: importlib.import_module(name).__file__ for name in sys.argv[1:]}
print(json.dumps({"modules": modules, "path": sys.path}))
"""
METRIC_FROM_ITS_INSTALLED_PATH = """
import evaluate
from evaluation.metrics import metric_path
metric = evaluate.load(metric_path("emotion_classification"))
scores = metric.compute(predictions=["joy", "fear"], references=["joy", "anger"], labels=["anger", "fear", "joy"])
print(metric_path("emotion_classification"), scores["accuracy"])
"""
TINY_MODEL = """
import sys
from modeling_emovit.testing import tiny_emovit
model, processor = tiny_emovit("llama")
model.save_pretrained(sys.argv[1])
processor.save_pretrained(sys.argv[1])
"""


def _copy_source(target: Path) -> Path:
    """The source tree without build outputs, virtual environments or caches (what a clean clone holds)."""
    ignored = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     "demo-output", "outputs")
    shutil.copytree(REPO, target, ignore=ignored)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = _copy_source(tmp_path_factory.mktemp("source") / "emovit")
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = dist.glob("emovit-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(bin folder, environment, working folder): the wheel installed into a fresh venv, run from outside the repo."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path_factory.mktemp("work")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": "",
           "OMP_NUM_THREADS": "1"}
    return venv / "bin", env, work


def run(installed, *command, timeout=300, cwd=None, env=None, expect=0) -> subprocess.CompletedProcess:
    """`command` from the venv's bin folder, in the working folder (or `cwd`); its exit code must be `expect`."""
    bin_dir, base_env, work = installed
    done = subprocess.run([str(bin_dir / command[0]), *command[1:]], cwd=cwd or work, env={**base_env, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == expect, f"{command}: {done.stderr[-3000:]}"
    return done


def extra_requirements(metadata: str) -> dict[str, list[str]]:
    """{extra: [distribution names]} from a wheel's METADATA (`Requires-Dist: NAME...; extra == "X"`)."""
    extras = {line.split(":", 1)[1].strip(): [] for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" in line:
            name = re.split(r"[\s;<>=!~\[(]", line.split(":", 1)[1].strip())[0]
            extras[line.rsplit("extra ==", 1)[1].strip().strip("'\"")].append(name)
    return extras


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))).decode()


def test_the_wheel_holds_package_data_typing_marker_licence_extras_and_entry_point(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(name.rsplit("/", 1)[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert set(PACKAGE_DATA) <= names
    assert {f"emovit/recipes/{path}" for path in RECIPE_FILES} <= names and len(RECIPE_FILES) >= 15
    assert any(name.startswith(f"{info}/licenses/LICENSE") for name in names)
    assert "Provides-Extra: track" in metadata
    # trackio is left out: no release of it works beside the pinned pillow 13 (emovit.training.trackers)
    assert extra_requirements(metadata)["track"] == ["tensorboard", "wandb"]
    assert "Requires-Dist: scikit-learn" in metadata
    assert "emovit = emovit.cli:main" in entry_points


@pytest.mark.slow
def test_installed_wheel_runs_every_command_from_outside_the_source_tree(installed, wheel):
    bin_dir, env, work = installed
    site = Path(bin_dir).parent
    where = json.loads(run(installed, "python", "-c", WHERE_FROM, *PACKAGES).stdout)
    for name, file in where["modules"].items():
        assert Path(file).is_relative_to(site), f"{name} imported from {file}, not from the installed wheel"
    assert str(REPO) not in where["path"] and not Path(work).is_relative_to(REPO)
    assert shutil.which("emovit", path=env["PATH"]) == str(bin_dir / "emovit")  # the wheel's console script

    from emovit import __version__

    assert run(installed, "emovit", "--version").stdout.strip() == f"emovit {__version__}"
    run(installed, "emovit", "data", "sample", "--out", "sample", "--images-per-emotion", "2", "1")
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        run(installed, "emovit", "data", "generate", "--source", "emoset", "--root", "sample", "--captions",
            "sample/captions.jsonl", "--backend", "openai", "--base-url", base_url, "--out", "generations.jsonl",
            "--no-progress")
    assert stats.requests == 32 and stats.bodies[0]["messages"]  # 16 images x 2 tasks, prompts read from the wheel
    run(installed, "emovit", "data", "build", "--source", "emoset", "--root", "sample", "--split", "test",
        "--tasks", "categorical", "--out", "data")
    run(installed, "python", "-c", TINY_MODEL, "model")
    for mode in ("rank", "generate"):
        done = run(installed, "emovit", "eval", "--model", "model", "--data", "data", "--out", f"eval-{mode}",
                   "--mode", mode, "--max-new-tokens", "4")
        assert f"[emoset, {mode}] accuracy" in done.stdout and f" in {mode} mode: " in done.stdout
    metric = run(installed, "python", "-c", METRIC_FROM_ITS_INSTALLED_PATH).stdout.split()
    assert Path(metric[0]).is_relative_to(site) and metric[1] == "0.5"
    demo = run(installed, "emovit", "demo", "--out", "demo", "--steps", "4", "--base-steps", "2",
               "--images-per-emotion", "2", "1", timeout=600)
    assert "EmoVIT training loss" in demo.stdout
    assert (work / "demo" / "emovit" / "model.safetensors").is_file()


IMPORT_EXTRAS = """
import importlib, json, sys
from transformers.integrations import get_available_reporting_integrations
import PIL
for name in json.loads(sys.argv[1]):
    importlib.import_module(name.replace("-", "_"))
print(json.dumps({"trackers": get_available_reporting_integrations(), "pillow": PIL.__version__,
                  "trackio": importlib.util.find_spec("trackio") is not None}))
"""


@pytest.mark.slow
def test_every_extra_installs_with_the_constraints_and_imports(installed, wheel):
    """`pip install -c constraints.txt "emovit[EXTRA]"` for every extra the wheel declares, resolved for real (no
    --no-deps) on top of the test environment, then each requirement imported and the trackers seen by
    transformers; and the reason trackio is not among them: its newest release cannot install beside the pins.

    `lmms` is the exception: lmms-eval's own requirements pull torchvision, which cannot install beside the CPU torch
    pinned here, so tests/lmms_eval_env.py installs it (--no-deps, plus what its run path imports) in an
    environment of its own, and tests/test_lmms_eval.py runs it."""
    bin_dir, env, work = installed
    declared = extra_requirements(wheel_metadata(wheel))
    assert set(declared) == {"dev", "track", "lmms"} and declared["lmms"] == ["lmms-eval"]
    extras = {name: requirements for name, requirements in declared.items() if name != "lmms"}
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-c", str(REPO / "constraints.txt")]
    done = subprocess.run([*pip, f"{wheel}[{','.join(extras)}]"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    requirements = sorted({name for names in extras.values() for name in names})
    found = json.loads(run(installed, "python", "-c", IMPORT_EXTRAS, json.dumps(requirements)).stdout)
    assert {"tensorboard", "wandb"} <= set(found["trackers"]) and not found["trackio"]
    assert found["pillow"] == "13.0.0"  # the constraint held
    refused = subprocess.run([*pip, "--dry-run", "trackio==0.43.0"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "pillow" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_installed_recipes_list_copy_and_train_on_cpu_without_use_cpu(installed):
    """The recipes come from the wheel; a copy equals the repository's recipes/; `emovit train sft` trains a recipe
    without `use_cpu` on this CPU machine and says so; a launch error names an accelerate config that exists."""
    from train_helpers import write_dataset

    bin_dir, env, work = installed
    site = Path(bin_dir).parent
    listed = run(installed, "emovit", "recipes", "list").stdout
    for name, stage in [*((name, "sft") for name in ("emovit-tiny", "emovit-vicuna-7b", "llava-1.5-7b", "smolvlm-256m",
                                                     "qwen2.5-vl-7b")), ("tiny-vlm", "grpo"), ("qwen2.5-vl-3b", "grpo")]:
        path = re.search(rf"{re.escape(name)}\s+{stage}\s.*?(\S+/{re.escape(name)}/{stage}\.yaml)", listed)[1]
        assert Path(path).is_relative_to(site) and Path(path).is_file(), listed
    run(installed, "emovit", "recipes", "copy", "all", "recipes")
    copied = sorted(str(path.relative_to(work / "recipes")) for path in (work / "recipes").rglob("*") if path.is_file())
    assert copied == RECIPE_FILES
    assert all((work / "recipes" / path).read_bytes() == (REPO / "recipes" / path).read_bytes() for path in copied)

    recipe = work / "recipes" / "emovit-tiny" / "sft.yaml"
    recipe.write_text("".join(line for line in recipe.read_text().splitlines(True) if not line.startswith("use_cpu:")))
    data = write_dataset(work / "tiny-data", rows=8)
    trained = run(installed, "emovit", "train", "sft", "--config", str(recipe), "--model_name_or_path", "tiny-random",
                  "--dataset_name", str(data), "--output_dir", "trained", "--max_steps", "2", "--save_strategy", "no",
                  "--disable_tqdm", "true")
    import torch

    cpu_log = "No GPU or other accelerator found: training on the CPU (use_cpu: true)."
    assert (cpu_log in trained.stderr) is not torch.accelerator.is_available()
    assert (work / "trained" / "model.safetensors").is_file()

    refused = run(installed, "emovit", "train", "sft", "--config", str(recipe), "--dataset_name", str(data),
                  env={"MASTER_ADDR": "127.0.0.1"}, expect=2)  # what `accelerate launch --cpu --num_processes 2` leaves
    config = re.search(r"--config_file (\S+cpu_ddp\.yaml) -m emovit train sft", refused.stderr)[1]
    assert Path(config).is_relative_to(site) and Path(config).is_file()


def test_a_users_own_evaluation_package_is_named_not_imported(installed):
    """A user's `evaluation/__init__.py` in the launch folder comes first on sys.path under `python -m` (with the
    wheel it hid ours: `No module named 'evaluation.model_card'`); both entry points say so, naming both paths. The
    console script does not search the launch folder, so it runs."""
    bin_dir, env, work = installed
    project = work / "user-project"
    (project / "evaluation").mkdir(parents=True)
    (project / "evaluation" / "__init__.py").write_text('"""The user\'s own evaluation code."""\n')
    ours = Path(bin_dir).parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    sentence = (f"The package {project.resolve() / 'evaluation'} (first on sys.path: the folder you launched from, or "
                f"PYTHONPATH) hides emovit's own `evaluation` package at {ours.resolve() / 'evaluation'}; rename "
                f"yours, or launch from another folder.")
    cli = run(installed, "python", "-m", "emovit", "recipes", "list", cwd=project, expect=2)
    assert cli.stderr.strip() == f"emovit: {sentence}"
    recipe = run(installed, "python", "-m", "emovit.training.sft", "--config", "no-such.yaml", cwd=project, expect=2)
    assert recipe.stderr.strip().endswith(f"sft: {sentence}")
    assert "emovit-tiny" in run(installed, "emovit", "recipes", "list", cwd=project).stdout
