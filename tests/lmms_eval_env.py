"""lmms-eval from PyPI in an environment of its own, beside the test environment (`tests/test_lmms_eval.py`).

lmms-eval 0.7.3 requires torchvision, timm, opencv, av, yt-dlp, sentence_transformers, wandb==0.25.0 and more (its
METADATA); PyPI's torchvision does not import beside the CPU torch this project pins, and the run path of `lmms-eval
--model emovit --tasks emovit_*` imports none of them. So the environment gets lmms-eval with `--no-deps` plus the
packages that path imports (`LMMS_EVAL_PACKAGES`, found by running it), and sees the test environment's packages
(torch, transformers, datasets, accelerate, evaluate, this package) through a `site.addsitedir` line, which also runs
that environment's `.pth` hooks (the editable install's). filelock is pinned below 4: lmms-eval's evaluator imports
`filelock._api`, which filelock 4 (the test environment's) no longer has.

Built once per test environment, in `<test environment>/lmms-eval` (`make clean` removes it with `.venv`), again
when `LMMS_EVAL_PACKAGES` or the test environment's path changes; built under a temporary name and renamed, so an
interrupted or concurrent build leaves no half-made environment behind.
"""

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

LMMS_EVAL_PACKAGES = (
    "lmms-eval==0.7.3",
    "filelock==3.32.7",
    # lmms_eval.api, .evaluator, .loggers and .tasks import these
    "loguru==0.7.3", "sacrebleu==2.6.0", "portalocker==4.4.2", "tabulate==0.10.0", "colorama==0.4.6", "lxml==6.2.0",
    "pytz==2026.6", "tenacity==9.2.1",
    # the results table the command prints at the end (lmms_eval.utils.make_table)
    "pytablewriter==1.2.1", "DataProperty==1.1.1", "chardet==6.0.0.post1", "mbstrdecoder==1.1.5",
    "pathvalidate==3.3.1", "tabledata==1.3.5", "tcolorpy==0.1.7", "typepy==1.3.5", "python-dateutil==2.9.0.post0",
    "six==1.17.0",
)
STAMP = "emovit-lmms-eval-environment.txt"


def lmms_eval_bin() -> Path:
    """The environment's `bin` folder (with `python` and `lmms-eval`), built if it is missing or out of date."""
    home = Path(sys.prefix) / "lmms-eval"
    wanted = "\n".join([sysconfig.get_paths()["purelib"], *LMMS_EVAL_PACKAGES]) + "\n"
    if (home / STAMP).is_file() and (home / STAMP).read_text() == wanted:
        return home / "bin"
    building = Path(tempfile.mkdtemp(prefix="lmms-eval-", dir=home.parent))
    try:
        _build(building, wanted)
        shutil.rmtree(home, ignore_errors=True)
        building.rename(home)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return home / "bin"


def _build(folder: Path, stamp: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "emovit-test-environment.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--disable-pip-version-check", *LMMS_EVAL_PACKAGES],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    (folder / STAMP).write_text(stamp)
