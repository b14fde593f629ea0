"""Instruction generation throughput: 500 requests against the loopback server at 100 ms latency, concurrency 1
vs 32 (expect close to 32x), zero lost or duplicated records, then the same run from the cache with zero requests.

    .venv/bin/python benchmarks/bench_generation.py [--requests 500] [--latency 0.1] [--concurrency 32]
"""

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dataset_builder.chat import ClientSettings, ResponseCache  # noqa: E402
from dataset_builder.generation import OpenAIBackend, generate_instructions  # noqa: E402
from generation_fixtures import make_records, pairs_reply  # noqa: E402
from openai_server import running_openai_server  # noqa: E402


def run(base_url: str, concurrency: int, records, out: Path, cache: Path):
    settings = ClientSettings(model="gpt-4o-mini", base_url=base_url, concurrency=concurrency, timeout=10)
    with ResponseCache(cache) as responses:
        started = time.perf_counter()
        report = generate_instructions(records, OpenAIBackend(settings, responses), out, progress=False)
        return report, time.perf_counter() - started


def check(out: Path, expected: int) -> tuple[int, int]:
    """(lost, duplicated) (id, task) pairs in the output."""
    counts = Counter((row["id"], row["task"]) for row in map(json.loads, out.read_text().splitlines()))
    return expected - len(counts), sum(count - 1 for count in counts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    import openai  # noqa: F401  (imported before the clock starts: seconds of start-up are not throughput)

    records = make_records(args.requests // 2)  # one conversation and one reasoning request per image
    expected = 2 * len(records)
    with tempfile.TemporaryDirectory() as work, running_openai_server(respond=pairs_reply, latency=args.latency) as (
        base_url, stats,
    ):
        work = Path(work)
        rates = {}
        for concurrency in (1, args.concurrency):
            out, cache = work / f"c{concurrency}.jsonl", work / f"c{concurrency}.sqlite"
            before = stats.requests
            report, seconds = run(base_url, concurrency, records, out, cache)
            lost, duplicated = check(out, expected)
            rates[concurrency] = report.done / seconds
            print(f"concurrency {concurrency:>3}: {report.done} records in {seconds:6.2f} s = {rates[concurrency]:7.1f} "
                  f"records/s, requests {stats.requests - before}, lost {lost}, duplicated {duplicated}, "
                  f"failed {report.failed}")
        print(f"speed-up concurrency {args.concurrency} vs 1: {rates[args.concurrency] / rates[1]:.1f}x")
        before = stats.requests
        report, seconds = run(base_url, args.concurrency, records, work / "rerun.jsonl", work / f"c{args.concurrency}.sqlite")
        lost, duplicated = check(work / "rerun.jsonl", expected)
        print(f"cached re-run: {report.done} records ({report.cached} from the cache) in {seconds:.2f} s, "
              f"requests {stats.requests - before}, lost {lost}, duplicated {duplicated}")


if __name__ == "__main__":
    main()
