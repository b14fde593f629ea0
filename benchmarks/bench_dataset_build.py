"""Dataset build throughput and peak memory (1,000 vs 10,000 images), and disk and time on photo-sized images.

    .venv/bin/python benchmarks/bench_dataset_build.py [--small 1000] [--large 10000] [--size 64] [--rounds 3]
    .venv/bin/python benchmarks/bench_dataset_build.py --disk [--photos 400] [--rounds 3]

Default: generates an image folder of noisy 64x64 JPEGs, then runs each build in a fresh child process and reads
its peak resident memory (the child's and its workers'), so one measurement cannot inflate the next. Builds the
categorical and all configs (no generations). The four settings run one after the other in every round
(interleaved); the table prints the best and the median round, per wall-clock second and per CPU-second of the
child and its workers. Memory should stay flat as the dataset grows: images are streamed to Parquet.

--disk: N photo-sized JPEGs (640x480, about 90 KB each) in an image folder, and a generations file giving every
image three conversation pairs and one reasoning pair; each round runs, as whole commands in fresh processes with a
fresh datasets cache, the baseline (`load_dataset("imagefolder")` + `to_parquet`, image bytes embedded), `emovit
data build --tasks categorical` and `emovit data build` with every task. Prints wall and CPU seconds (min /
median), the bytes written against the source images' bytes, and the build's time against the baseline's (median
of the per-round ratios).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from interleave import interleaved, machine_load, max_median, median, min_median
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


BASELINE_BUILD = """
import sys
from datasets import load_dataset
from datasets.table import embed_table_storage
rows = load_dataset("imagefolder", data_dir=sys.argv[1], split="train")
rows = rows.with_format("arrow").map(embed_table_storage, batched=True)
rows.to_parquet(sys.argv[2] + "/train-00000.parquet")
"""
LOREM = ("the light falls on the water and the people on the shore look towards the boats while a dog runs along "
         "the sand and the sky turns orange over the hills ").split()


def _text(rng, words: int) -> str:
    return " ".join(rng.choice(LOREM, words))


def make_photo_folder(root: Path, count: int) -> Path:
    """`root/images/train/`: 640x480 JPEGs with smooth colour fields and grain (about 90 KB each, like photos) and
    a metadata.jsonl; `root/generations.jsonl`: three conversation pairs and one reasoning pair per image."""
    rng = np.random.default_rng(0)
    folder = root / "images" / "train"
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w") as metadata, open(root / "generations.jsonl", "w") as generations:
        for number in range(count):
            field = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
            grain = rng.normal(0, 9, (480, 640, 3))
            pixels = np.clip(np.asarray(field, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{number:05d}.jpg", quality=85)
            metadata.write(json.dumps({"file_name": f"{number:05d}.jpg", "label": MIKELS[number % 8]}) + "\n")
            for task, pairs, answer_words in (("conversation", 3, 35), ("reasoning", 1, 120)):
                pairs = [{"question": _text(rng, 15) + "?", "answer": _text(rng, answer_words) + "."} for _ in range(pairs)]
                generations.write(json.dumps({"id": f"{number:05d}", "task": task, "pairs": pairs, "backend": "bench",
                                              "model": "none"}) + "\n")
    return root


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*.parquet"))


def _timed_child(command: list[str], work: Path) -> tuple[float, float]:
    """Wall and CPU seconds (the child's and its workers') of one command, with a datasets cache of its own."""
    env = {**os.environ, "HF_DATASETS_CACHE": tempfile.mkdtemp(dir=work), "HF_HUB_OFFLINE": "1"}
    before, start = _children_cpu(), time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def disk_and_time(count: int, rounds: int) -> None:
    emovit = str(Path(sys.executable).parent / "emovit")
    with tempfile.TemporaryDirectory(prefix="emovit-bench-disk-") as work:
        work = Path(work)
        started = time.perf_counter()
        root = make_photo_folder(work / "photos", count)
        images = root / "images"
        source = sum(path.stat().st_size for path in images.rglob("*.jpg"))
        print(f"generated {count} 640x480 JPEGs ({source / 2**20:.1f} MiB) in {time.perf_counter() - started:.0f} s; "
              f"{rounds} interleaved rounds; {machine_load()}")
        build = [emovit, "data", "build", "--source", "imagefolder", "--root", str(images), "--split", "train"]

        def run(name: str, command) -> dict:
            out = Path(tempfile.mkdtemp(dir=work))
            wall, cpu = _timed_child(command(out), work)
            sizes = {"total": _folder_bytes(out), **{f.name: _folder_bytes(f) for f in out.iterdir() if f.is_dir()}}
            shutil.rmtree(out)
            return {"wall": wall, "cpu": cpu, "bytes": sizes}

        variants = {
            "baseline: imagefolder + to_parquet": lambda out: [sys.executable, "-c", BASELINE_BUILD, str(images), str(out)],
            "emovit data build --tasks categorical": lambda out: [*build, "--tasks", "categorical", "--out", str(out)],
            "emovit data build (every task)": lambda out: [*build, "--generations", str(root / "generations.jsonl"),
                                                            "--out", str(out)],
        }
        results = interleaved({name: (lambda n, name=name, c=command: run(name, c)) for name, command in variants.items()},
                              rounds)
        print(f"{machine_load()}\n")
        baseline = results["baseline: imagefolder + to_parquet"]
        print("| command | wall s (min / median) | CPU s (min / median) | vs baseline, wall / CPU (median ratio) | "
              "written, x source bytes |")
        print("|---|---|---|---|---|")
        for name, rows in results.items():
            ratios = [median(r[key] / b[key] for r, b in zip(rows, baseline)) for key in ("wall", "cpu")]
            parts = ", ".join(f"{folder}/ {size / source:.3f}x" for folder, size in rows[0]["bytes"].items()
                              if folder != "total")
            print(f"| {name} | {min_median(r['wall'] for r in rows)} | {min_median(r['cpu'] for r in rows)} | "
                  f"{ratios[0]:.2f}x / {ratios[1]:.2f}x | {rows[0]['bytes']['total'] / source:.3f}x ({parts}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--disk", action="store_true", help="Disk and time against the baseline on photo-sized JPEGs.")
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    if args.disk:
        return disk_and_time(args.photos, args.rounds)

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
