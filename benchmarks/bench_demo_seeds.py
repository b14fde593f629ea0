"""Does the demo's EmoVIT really learn, and are its rank probabilities calibrated? Runs `emovit demo` with default
settings for 3 seeds; prints accuracies and the rank probabilities' ECE / NLL before and after calibration.

    .venv/bin/python benchmarks/bench_demo_seeds.py [--seeds 0 1 2] [--keep DIR]

Targets: rank accuracy >= 60% and generate accuracy >= 40% on the held-out test split for every seed (chance:
12.5%); after calibration on the held-out validation split, ECE (15 bins) <= 0.05 with rank accuracy unchanged.
Takes about 3 minutes per seed on 2 quiet CPU cores.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interleave import machine_load


def run_seed(seed: int, folder: Path) -> dict:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "emovit", "demo", "--out", str(folder), "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    state = json.loads((folder / "demo_state.json").read_text())
    return {"seed": seed, "minutes": (time.monotonic() - start) / 60, "calibration": state["eval_emovit_rank"]["calibration"],
            **{name: state[name]["accuracy"] for name in state if name.startswith("eval_")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, default=None, help="Keep each run's folder under DIR.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="emovit-demo-seeds-"))
    print(machine_load())
    print("| seed | base rank | base generate | EmoVIT rank | EmoVIT generate | rank ECE before -> after | "
          "rank NLL before -> after | T | rank accuracy after | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        row = run_seed(seed, root / f"seed-{seed}")
        before, after = row["calibration"]["before"], row["calibration"]["after"]
        print(f"| {seed} | {row['eval_base_rank']:.1%} | {row['eval_base_generate']:.1%} | "
              f"{row['eval_emovit_rank']:.1%} | {row['eval_emovit_generate']:.1%} | {before['ece']:.3f} -> "
              f"{after['ece']:.3f} | {before['nll']:.3f} -> {after['nll']:.3f} | {row['calibration']['temperature']:.3g} | "
              f"{after['accuracy']:.1%} | {row['minutes']:.1f} |", flush=True)
    print(machine_load())


if __name__ == "__main__":
    main()
