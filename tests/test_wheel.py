"""The package as users get it: a wheel built from the source, installed into a fresh virtual environment outside
the source tree, run from a folder where the source tree is not importable.

The fresh environment gets its dependencies without a reinstall: a `.pth` line puts the test environment's
site-packages after its own (a plain path line: the editable install's finder, a `.pth` import hook there, never
runs), so `emovit`, `modeling_emovit`, `dataset_builder` and `evaluation` can only come from the wheel. Each smoke
command checks that what it needs (metric scripts, prompts, the console script) was installed from the wheel.
"""

import json
import os
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


def run(installed, *command, timeout=300) -> subprocess.CompletedProcess:
    bin_dir, env, work = installed
    done = subprocess.run([str(bin_dir / command[0]), *command[1:]], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done


def test_the_wheel_holds_package_data_typing_marker_licence_extras_and_entry_point(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(name.rsplit("/", 1)[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert set(PACKAGE_DATA) <= names
    assert any(name.startswith(f"{info}/licenses/LICENSE") for name in names)
    assert "Provides-Extra: track" in metadata
    assert {"tensorboard", "trackio", "wandb"} <= {
        line.split()[1].split(";")[0] for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "track" in line}
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
        assert f"[emoset, {mode}] accuracy" in done.stdout
    demo = run(installed, "emovit", "demo", "--out", "demo", "--steps", "4", "--base-steps", "2",
               "--images-per-emotion", "2", "1", timeout=600)
    assert "EmoVIT training loss" in demo.stdout
    assert (work / "demo" / "emovit" / "model.safetensors").is_file()
