"""Instruction generation through the openai client: concurrency 1 vs 64 against a loopback server in its own
process that takes 100 ms per reply; client CPU per record; then a re-run from the cache that sends nothing.

    .venv/bin/python benchmarks/bench_generation.py [--requests 320] [--latency 0.1] [--concurrency 64] [--rounds 3]

Each round runs concurrency 1, then 64 (interleaved over rounds); the table prints min / median over rounds.
Server-side span: from the first request's arrival to the last reply, timed by the server. Client CPU: this
process's CPU time (openai client, the generation pipeline's prompts, validation, SQLite cache and JSONL writes)
per record. Goals: the c64 span at least 40x shorter than the c1 span; at most 1 ms of client CPU per record.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx2

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from interleave import interleaved, machine_load, max_median, median, min_median  # noqa: E402

from dataset_builder.chat import ClientSettings, ResponseCache  # noqa: E402
from dataset_builder.generation import OpenAIBackend, generate_instructions  # noqa: E402
from generation_fixtures import make_records  # noqa: E402


def server_span(base_url: str, since: int) -> tuple[int, float]:
    """(chat requests the server answered after request number `since`, seconds from their first arrival to their
    last reply), read from the server's own clock."""
    stats = httpx2.get(f"{base_url}/stats").json()
    return stats["requests"] - since, max(stats["replies"][since:]) - min(stats["arrivals"][since:])


def run(base_url: str, concurrency: int, records, work: Path, name: str, cache_name: str | None = None) -> dict:
    out, cache = work / f"{name}.jsonl", work / f"{cache_name or name}.sqlite"
    since = httpx2.get(f"{base_url}/stats").json()["requests"]
    settings = ClientSettings(model="gpt-4o-mini", base_url=base_url, concurrency=concurrency, timeout=10)
    with ResponseCache(cache) as responses:
        cpu, wall = time.process_time(), time.perf_counter()
        report = generate_instructions(records, OpenAIBackend(settings, responses), out, progress=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    requests, span = server_span(base_url, since) if report.done - report.cached else (0, 0.0)
    counts = Counter((row["id"], row["task"]) for row in map(json.loads, out.read_text().splitlines()))
    return {"records": report.done, "cached": report.cached, "failed": report.failed, "requests": requests,
            "span": span, "wall": wall, "cpu_ms_per_record": 1e3 * cpu / max(1, report.done),
            "lost": 2 * len(records) - len(counts), "duplicated": sum(c - 1 for c in counts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import openai  # noqa: F401  (imported before any clock starts: seconds of start-up are not throughput)

    records = make_records(args.requests // 2)  # one conversation and one reasoning request per image
    server = subprocess.Popen([sys.executable, str(TESTS / "openai_server.py"), "--latency", str(args.latency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=TESTS)
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            variants = {f"c{c}": (lambda number, c=c: run(base_url, c, records, work, f"c{c}-round{number}"))
                        for c in (1, args.concurrency)}
            print(f"{2 * len(records)} records per run, server in its own process ({args.latency * 1e3:.0f} ms per reply), "
                  f"{args.rounds} interleaved rounds; {machine_load()}")
            results = interleaved(variants, args.rounds)
            print("\n| concurrency | server-side span s (min / median) | wall s (min / median) | records/s (best / "
                  "median) | client CPU ms/record (min / median) | requests | lost | duplicated |")
            print("|---|---|---|---|---|---|---|---|")
            for name, rows in results.items():
                print(f"| {name[1:]} | {min_median(r['span'] for r in rows)} | {min_median(r['wall'] for r in rows)} | "
                      f"{max_median(r['records'] / r['wall'] for r in rows)} | "
                      f"{min_median(r['cpu_ms_per_record'] for r in rows)} | {rows[0]['requests']} | "
                      f"{sum(r['lost'] for r in rows)} | {sum(r['duplicated'] for r in rows)} |")
            single, many = results["c1"], results[f"c{args.concurrency}"]
            ratios = [a["span"] / b["span"] for a, b in zip(single, many)]
            print(f"\nserver-side span c1 / c{args.concurrency}, per round: {', '.join(f'{r:.1f}x' for r in ratios)} "
                  f"(ideal {args.concurrency}x); whole run c1 / c{args.concurrency}: "
                  f"{median(a['wall'] / b['wall'] for a, b in zip(single, many)):.1f}x (median)")
            cached = run(base_url, args.concurrency, records, work, "rerun", cache_name=f"c{args.concurrency}-round0")
            print(f"re-run from the cache: {cached['records']} records ({cached['cached']} from the cache) in "
                  f"{cached['wall']:.2f} s, requests {cached['requests']}, lost {cached['lost']}, "
                  f"duplicated {cached['duplicated']}; {machine_load()}")
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
