"""Dataset build throughput (images/s at --num-proc 1 and 2) and peak memory at 1,000 vs 10,000 images.

    .venv/bin/python benchmarks/bench_dataset_build.py [--small 1000] [--large 10000] [--size 64] [--rounds 3]

Generates an image folder of noisy 64x64 JPEGs, then runs each build in a fresh child process and reads its peak
resident memory (the child's and its workers'), so one measurement cannot inflate the next. Builds the categorical
and all configs (no generations). The four settings run one after the other in every round (interleaved); the table
prints the best and the median round, per wall-clock second and per CPU-second of the child and its workers.
Memory should stay flat as the dataset grows: images are streamed to Parquet.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from interleave import interleaved, machine_load, max_median, min_median
from PIL import Image

MIKELS = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")


def make_image_folder(root: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    with open(root / "train" / "metadata.jsonl", "w") as handle:
        for number in range(count):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / f"{number:06d}.jpg", quality=90)
            handle.write(json.dumps({"file_name": f"{number:06d}.jpg", "label": MIKELS[number % 8]}) + "\n")


def child(root: str, out: str, num_proc: int) -> None:
    """Runs one build and prints seconds and peak RSS (MiB) as JSON."""
    from dataset_builder.build import build_dataset

    start, cpu = time.perf_counter(), _cpu_seconds()
    report = build_dataset("imagefolder", root, "train", out, tasks=("categorical",), num_proc=num_proc)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"images": report.records, "seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak_kib / 1024}))


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished workers."""
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def measure(root: Path, num_proc: int, work: Path) -> dict:
    out = tempfile.mkdtemp(dir=work)
    env_cache = {"HF_DATASETS_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root), out, str(num_proc)],
        env={**os.environ, **env_cache}, capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))

    with tempfile.TemporaryDirectory(prefix="emovit-bench-") as work:
        work = Path(work)
        folders = {}
        for count in (args.small, args.large):
            start = time.perf_counter()
            folders[count] = work / f"images-{count}"
            make_image_folder(folders[count], count, args.size)
            print(f"generated {count} {args.size}x{args.size} JPEGs in {time.perf_counter() - start:.1f} s")
        code = "import resource, dataset_builder.builder; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
        baseline = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        print(f"peak MiB after importing the builder alone: {baseline:.0f}; {args.rounds} interleaved rounds; "
              f"{machine_load()}")
        settings = [(count, num_proc) for count in (args.small, args.large) for num_proc in (1, 2)]
        results = interleaved({setting: (lambda n, c=setting[0], p=setting[1]: measure(folders[c], p, work))
                               for setting in settings}, args.rounds)
        print(f"{machine_load()}\n")
        print("| images | num-proc | images/s (best / median) | images per CPU-second (best / median) | "
              "peak MiB (min / median) |")
        print("|---:|---:|---|---|---|")
        for (count, num_proc), rows in results.items():
            print(f"| {count:,} | {num_proc} | {max_median(r['images'] / r['seconds'] for r in rows)} | "
                  f"{max_median(r['images'] / r['cpu_seconds'] for r in rows)} | {min_median(r['peak_mib'] for r in rows)} |")


if __name__ == "__main__":
    main()
