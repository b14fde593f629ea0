"""Does the demo's EmoVIT really learn? Runs `emovit demo` with default settings for 3 seeds; prints accuracies.

    .venv/bin/python benchmarks/bench_demo_seeds.py [--seeds 0 1 2] [--keep DIR]

Targets: rank accuracy >= 60% and generate accuracy >= 40% on the held-out test split for every seed
(chance: 12.5%). Takes about 4-5 minutes per seed on 2 CPU cores.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_seed(seed: int, folder: Path) -> dict:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "emovit", "demo", "--out", str(folder), "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    state = json.loads((folder / "demo_state.json").read_text())
    return {"seed": seed, "minutes": (time.monotonic() - start) / 60,
            **{name: state[name]["accuracy"] for name in state if name.startswith("eval_")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, default=None, help="Keep each run's folder under DIR.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="emovit-demo-seeds-"))
    print("| seed | base rank | base generate | EmoVIT rank | EmoVIT generate | minutes |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        row = run_seed(seed, root / f"seed-{seed}")
        print(f"| {seed} | {row['eval_base_rank']:.1%} | {row['eval_base_generate']:.1%} | "
              f"{row['eval_emovit_rank']:.1%} | {row['eval_emovit_generate']:.1%} | {row['minutes']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
