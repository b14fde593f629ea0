"""Start-up cost of the package: what each import pulls in, and whole commands against library baselines.

    .venv/bin/python benchmarks/bench_startup.py [--images 1000] [--rounds 3]

Every figure is a fresh child process (interpreter start included), repeated in interleaved rounds (A B A B ...);
the table prints min and median and the 1-minute load average beside it. Three comparisons:
1. imports: each package module against the library it stands on (`datasets`, `openai`, `evaluate`), and whether
   torch or transformers came along;
2. `emovit data build` (imagefolder, categorical) on N generated images against the baseline
   `load_dataset("imagefolder")` + `to_parquet` with the image bytes embedded;
3. a cached `emovit data generate` re-run whose items are all written already (it sends nothing), against the
   loopback OpenAI-compatible server of the tests.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
MIKELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
IMPORTS = [
    "modeling_emovit.errors", "dataset_builder.builder", "dataset_builder.chat", "dataset_builder.generation",
    "datasets", "openai", "evaluate",
]
PROBE = ("import sys, time; t = time.perf_counter(); import {module}; "
         "print(time.perf_counter() - t, 'torch' in sys.modules, 'transformers' in sys.modules)")
BASELINE_BUILD = """
import sys
from datasets import load_dataset
from datasets.table import embed_table_storage
rows = load_dataset("imagefolder", data_dir=sys.argv[1], split="train")
rows = rows.with_format("arrow").map(embed_table_storage, batched=True)
rows.to_parquet(sys.argv[2] + "/train-00000.parquet")
"""


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def interleaved(commands: dict[str, callable], rounds: int) -> dict[str, list[float]]:
    """Runs each command once per round, in the same order every round; returns the seconds of each run."""
    seconds = {name: [] for name in commands}
    for _ in range(rounds):
        for name, run in commands.items():
            seconds[name].append(run())
    return seconds


def print_table(title: str, seconds: dict[str, list[float]], reference: str | None = None) -> None:
    print(f"\n{title} (load average {os.getloadavg()[0]:.2f})")
    print(f"{'':<44}{'min s':>8}{'median s':>10}" + (f"  {'median vs ' + reference}" if reference else ""))
    for name, values in seconds.items():
        ratio = f"{statistics.median(values) / statistics.median(seconds[reference]):>21.2f}x" if reference else ""
        print(f"{name:<44}{min(values):>8.2f}{statistics.median(values):>10.2f}{ratio}")


def imports(rounds: int) -> None:
    details = {}

    def probe(module):
        def run():
            out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], check=True, capture_output=True,
                                 text=True).stdout.split()
            details[module] = f"torch {out[1]}, transformers {out[2]}"
            return float(out[0])
        return run

    seconds = interleaved({module: probe(module) for module in IMPORTS}, rounds)
    print_table("import time (seconds inside the child, interpreter start excluded)", seconds)
    for module, loaded in details.items():
        print(f"  {module:<42}{loaded}")


def make_image_folder(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    with open(root / "metadata.jsonl", "w") as handle:
        for number in range(count):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / f"{number:06d}.jpg")
            handle.write(json.dumps({"file_name": f"{number:06d}.jpg", "label": MIKELS[number % 8]}) + "\n")


def builds(work: Path, count: int, rounds: int) -> None:
    images = work / "images"
    make_image_folder(images, count)
    env = {"HF_DATASETS_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    emovit = str(Path(sys.executable).parent / "emovit")
    outputs = iter(range(10 ** 6))

    def ours():
        out = work / f"emovit-{next(outputs)}"
        return timed([emovit, "data", "build", "--source", "imagefolder", "--root", str(images), "--split", "train",
                      "--tasks", "categorical", "--out", str(out)], env)

    def baseline():
        out = work / f"baseline-{next(outputs)}"
        out.mkdir()
        return timed([sys.executable, "-c", BASELINE_BUILD, str(images), str(out)], env)

    seconds = interleaved({"imagefolder + to_parquet (baseline)": baseline, "emovit data build": ours}, rounds)
    print_table(f"whole command, {count} 64x64 JPEGs", seconds, "imagefolder + to_parquet (baseline)")


def cached_generate(work: Path, rounds: int) -> None:
    from dataset_trees import emoset_tree
    from generation_fixtures import pairs_reply
    from openai_server import running_openai_server

    emoset_tree(work / "emoset", per_emotion=4)
    emovit = str(Path(sys.executable).parent / "emovit")
    with running_openai_server(respond=pairs_reply) as (base_url, stats):
        command = [emovit, "data", "generate", "--root", str(work / "emoset"), "--backend", "openai", "--base-url",
                   base_url, "--cache", str(work / "cache.sqlite"), "--out", str(work / "g.jsonl"), "--no-progress"]
        timed(command)
        before = stats.requests
        seconds = interleaved({"cached `emovit data generate` re-run": lambda: timed(command),
                               "`emovit --help`": lambda: timed([emovit, "--help"])}, rounds)
        assert stats.requests == before, "the re-run sent requests"
    print_table("whole command, nothing left to generate (0 requests sent)", seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    imports(args.rounds)
    with tempfile.TemporaryDirectory(prefix="emovit-bench-") as work:
        builds(Path(work), args.images, args.rounds)
    with tempfile.TemporaryDirectory(prefix="emovit-bench-") as work:
        cached_generate(Path(work), args.rounds)


if __name__ == "__main__":
    main()
