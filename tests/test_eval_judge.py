"""`emovit eval --task reasoning|humor`: free-text answers judged by an LLM (a loopback OpenAI-compatible server)."""

import json
from pathlib import Path

import pytest
from dataset_trees import config_folder, png_bytes
from openai_server import running_openai_server
from train_helpers import save_tiny_emovit

from emovit.cli import main


def write_split(folder: Path, config: str, rows: int, completion: str = "REFERENCE answer {i}") -> Path:
    """`load_dataset(folder, config)` data with images, captions (the judge's context) and reference answers."""
    return config_folder(folder, config, "test", {
        "id": [f"r{i}" for i in range(rows)],
        "image": [{"bytes": png_bytes((60 * i % 256, 120, 200)), "path": None} for i in range(rows)],
        "caption": [f"a dog on a sofa number {i}" for i in range(rows)],
        "prompt": ["Why does this image make people feel amused?"] * rows,
        "completion": [completion.format(i=i) for i in range(rows)],
    })


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_emovit(tmp_path_factory.mktemp("model"), seed=3)


def judged_eval(model_dir, data, out, task, base_url, config=None):
    return main(["eval", "--task", task, "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--max-new-tokens", "5", "--judge-model", "judge-1", *(["--judge-base-url", base_url] if base_url else []),
                 *(["--config", config] if config else [])])


def reply_for_answer(replies: dict):
    """A judge whose reply depends on which reference answer ("REFERENCE answer <i>") the prompt holds."""
    return lambda body: next(reply for key, reply in replies.items() if key in body["messages"][-1]["content"])


def test_reasoning_reports_the_llava_bench_relative_score_and_caches_the_judge(model_dir, tmp_path):
    data = write_split(tmp_path / "data", "reasoning", rows=3)
    judge = reply_for_answer({"answer 0": "8 6\nAssistant 1 is more specific.", "answer 1": "Scores: 7 and 7",
                              "answer 2": "I cannot tell."})
    with running_openai_server(respond=judge) as (base_url, stats):
        assert judged_eval(model_dir, data, tmp_path / "out", "reasoning", base_url) == 0
        assert stats.requests == 1 + 1 + 3  # an unusable reply is asked again twice, then skipped and counted
        assert judged_eval(model_dir, data, tmp_path / "out", "reasoning", base_url) == 0
        assert stats.requests == 5 + 3  # on a re-run only the unusable one is asked again: verdicts are cached

    metrics = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    # Reference scores 8, 7 and model scores 6, 7: relative score 100 * 6.5 / 7.5.
    assert metrics["relative_score"] == pytest.approx(100 * 6.5 / 7.5)
    assert metrics["judged"] == 2 and metrics["judge_failures"] == 1
    review = stats.bodies[0]["messages"][-1]["content"]
    assert "[Context]\na dog on a sofa number" in review and "[Assistant 1]\nREFERENCE answer" in review
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert {row["id"]: row.get("judge") for row in rows}["r0"] == {"reference_score": 8.0, "model_score": 6.0}


def always_first(body) -> str:
    return "A\nThe first one."


def prefers_the_model(body) -> str:
    prompt = body["messages"][-1]["content"]
    return "B" if "Caption A: REFERENCE" in prompt else "A"


@pytest.mark.parametrize("judge, rate, ties", [(always_first, 0.5, 3), (prefers_the_model, 1.0, 0)])
def test_humor_preference_asks_both_orders_so_position_bias_cancels(judge, rate, ties, model_dir, tmp_path):
    data = write_split(tmp_path / "data", "funny-captions", rows=3)
    with running_openai_server(respond=judge) as (base_url, stats):
        assert judged_eval(model_dir, data, tmp_path / "out", "humor", base_url, config="funny-captions") == 0
        assert stats.requests == 6

    metrics = json.loads((tmp_path / "out" / "results.json").read_text())["metrics"]
    assert metrics["preference_rate"] == rate and metrics["ties"] == ties and metrics["judged"] == 3
    asked = [body["messages"][-1]["content"] for body in stats.bodies]
    assert sum("Caption A: REFERENCE" in prompt for prompt in asked) == 3  # each pair once in each order


def test_a_judged_task_without_a_judge_model_is_refused(model_dir, tmp_path, capsys):
    data = write_split(tmp_path / "data", "reasoning", rows=1)
    assert main(["eval", "--task", "reasoning", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "--task reasoning needs --judge-model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, "--task humor needs --config naming a config of"),
        ("categorical", "config 'categorical' answers with emotion labels ('Predict emotion: ...'), not reference funny captions"),
    ],
)
def test_humor_without_reference_captions_is_refused(config, expected, model_dir, tmp_path, capsys):
    data = write_split(tmp_path / "data", "categorical", rows=2, completion="Predict emotion: amusement")
    assert judged_eval(model_dir, data, tmp_path / "out", "humor", "http://127.0.0.1:9/v1", config=config) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_judge_api_key_is_refused_before_the_model_is_loaded(model_dir, tmp_path, capsys, monkeypatch):
    from evaluation import harness

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(harness, "load_adapter", lambda model: pytest.fail("the model was loaded before the key check"))
    data = write_split(tmp_path / "data", "reasoning", rows=1)
    assert judged_eval(model_dir, data, tmp_path / "out", "reasoning", base_url=None) == 2
    assert "Set the OPENAI_API_KEY environment variable" in capsys.readouterr().err


def test_judge_rules_come_from_the_users_rule_json_and_are_recorded(model_dir, tmp_path):
    """A rule file in LLaVA-Bench's rule.json layout, written here in this test's own words."""
    data = write_split(tmp_path / "rules-data", "reasoning", rows=1)  # a name of its own: datasets caches by name
    rules = {"llava_bench_complex": {"role": "Helper", "prompt": "RULE TEXT: score both, first line two numbers."},
             "llava_bench_conv": {"role": "Assistant", "prompt": "another rule"}}
    (tmp_path / "rule.json").write_text(json.dumps(rules))
    with running_openai_server(respond=lambda body: "7 7") as (base_url, stats):
        assert main(["eval", "--task", "reasoning", "--model", str(model_dir), "--data", str(data),
                     "--out", str(tmp_path / "out"), "--max-new-tokens", "3", "--judge-model", "judge-1",
                     "--judge-base-url", base_url, "--judge-rules", str(tmp_path / "rule.json")]) == 0
        assert main(["eval", "--task", "reasoning", "--model", str(model_dir), "--data", str(data),
                     "--out", str(tmp_path / "default"), "--max-new-tokens", "3", "--judge-model", "judge-1",
                     "--judge-base-url", base_url]) == 0
    with_file, default = (body["messages"][-1]["content"] for body in stats.bodies)
    assert with_file.endswith("[System]\nRULE TEXT: score both, first line two numbers.")
    assert "[Helper 1]\nREFERENCE answer 0" in with_file
    assert "RULE TEXT" not in default and "[Assistant 2]" in default
    recorded = json.loads((tmp_path / "out" / "results.json").read_text())["judge_rules"]
    assert recorded.startswith("rule.json:llava_bench_complex (sha256 ")
    assert "not LLaVA-Bench-comparable" in json.loads((tmp_path / "default" / "results.json").read_text())["judge_rules"]
    card = (model_dir / "README.md").read_text()
    assert "rules: rule.json:llava_bench_complex" in card and "rules: emovit default wording" in card


def test_a_rule_json_without_the_entry_is_one_sentence(model_dir, tmp_path, capsys):
    data = write_split(tmp_path / "no-entry-data", "reasoning", rows=1)
    (tmp_path / "rule.json").write_text(json.dumps({"other": {"role": "A", "prompt": "p"}}))
    capsys.readouterr()
    code = main(["eval", "--task", "reasoning", "--model", str(model_dir), "--data", str(data), "--out",
                 str(tmp_path / "out"), "--judge-model", "j", "--judge-base-url", "http://127.0.0.1:9/v1",
                 "--judge-rules", str(tmp_path / "rule.json")])
    error = capsys.readouterr().err
    assert code == 2 and "llava_bench_complex" in error and len(error.strip().splitlines()) == 1


def test_an_undecodable_image_is_skipped_and_counted_while_the_others_are_judged(model_dir, tmp_path):
    data = config_folder(tmp_path / "data", "reasoning", "test", {
        "id": ["r0", "r1", "r2"],
        "image": [{"bytes": png_bytes((10, 120, 200)), "path": None}, {"bytes": b"not an image", "path": None},
                  {"bytes": png_bytes((90, 120, 200)), "path": None}],
        "caption": ["a dog"] * 3, "prompt": ["Why amused?"] * 3,
        "completion": [f"REFERENCE answer {i}" for i in range(3)],
    })
    with running_openai_server(respond=lambda body: "8 6\nFine.") as (base_url, stats):
        assert judged_eval(model_dir, data, tmp_path / "out", "reasoning", base_url) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped_images"] == {"count": 1, "ids": ["r1"]}
    assert results["num_examples"] == 2 and stats.requests == 2


def judged_command(model_dir, data, out, base_url, *extra) -> list[str]:
    return ["eval", "--task", "reasoning", "--model", str(model_dir), "--data", str(data), "--out", str(out),
            "--max-new-tokens", "4", "--batch-size", "2", "--judge-model", "judge-1", "--judge-base-url", base_url,
            "--judge-concurrency", "1", *extra]


def test_kill_9_while_judging_then_resume_asks_each_item_once_and_generates_nothing_again(model_dir, tmp_path):
    """The judge holds its 4th reply until the run is killed: the resumed run generates no answer again and asks
    the judge only what it had not answered (the held request once more, as its reply never arrived)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data, out = write_split(tmp_path / "kill-data", "reasoning", rows=8), tmp_path / "out"
    hold_the_fourth = lambda number, body: "timeout" if number == 4 else "ok"
    with running_openai_server(script=hold_the_fourth, respond=lambda body: "8 6", hang=60) as (base_url, stats):
        command = [sys.executable, "-m", "emovit", *judged_command(model_dir, data, out, base_url)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while stats.requests < 4 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        assert stats.requests == 4 and not (out / "results.json").exists()
        assert judged_eval_command(model_dir, data, out, base_url) == 0
        assert stats.requests == 8 + 1

    results = json.loads((out / "results.json").read_text())
    assert results["progress"]["resumed"] == 8 and results["progress"]["computed"] == 0
    assert results["metrics"]["judged"] == 8
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == [f"r{i}" for i in range(8)]
    assert all(row["judge"] == {"reference_score": 8.0, "model_score": 6.0} for row in rows)


def judged_eval_command(model_dir, data, out, base_url) -> int:
    return main(judged_command(model_dir, data, out, base_url))


def test_a_run_cut_during_generation_resumes_the_answers_it_lacks(model_dir, tmp_path):
    data, out = write_split(tmp_path / "cut-data", "reasoning", rows=6), tmp_path / "out"
    with running_openai_server(respond=lambda body: "7 5") as (base_url, stats):
        assert judged_eval_command(model_dir, data, out, base_url) == 0
        answers = {row["id"]: row["answer"] for row in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
        lines = (out / "predictions.jsonl").read_text().splitlines()
        (out / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed mid-line
        (out / "results.json").unlink()
        assert judged_eval_command(model_dir, data, out, base_url) == 0
        assert stats.requests == 6  # every verdict came from the cache the second time

    results = json.loads((out / "results.json").read_text())
    assert results["progress"]["resumed"] == 2 and results["progress"]["computed"] == 4
    assert results["progress"]["partial_lines_dropped"] == 1
    again = {row["id"]: row["answer"] for row in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert again == answers  # greedy: the answers generated again are the same


def test_accelerate_launch_shards_a_judged_task_over_two_processes(model_dir, tmp_path):
    import os
    import subprocess
    import sys

    data, out = write_split(tmp_path / "shard-data", "reasoning", rows=6), tmp_path / "out"
    with running_openai_server(respond=lambda body: "8 4") as (base_url, stats):
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "emovit",
                  *judged_command(model_dir, data, out, base_url)]
        done = subprocess.run(launch, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        assert done.returncode == 0, done.stderr[-2000:]
        assert stats.requests == 6  # judged once, on the main process

    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["judged"] == 6 and results["progress"]["computed"] == 6
    assert results["metrics"]["relative_score"] == pytest.approx(50.0)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == [f"r{i}" for i in range(6)]  # none twice, none lost
