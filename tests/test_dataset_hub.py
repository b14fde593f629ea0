"""`emovit data push` and `load_dataset(HUB_ID, config)` through the loopback Hub; the server also serves model repos.

Hub calls run in child processes started with `hub_env` (HF_ENDPOINT is read at import time; the suite is offline).
"""

import subprocess
import sys
from pathlib import Path

import pytest
from dataset_trees import emoset_tree, generations_file
from hub_server import hub_env, repo_folder, running_hub

from dataset_builder.build import build_dataset
from emovit.hub import hub_credentials
from modeling_emovit.errors import EmoVITInputError


def _run(code_or_args, env, tmp_path):
    args = [sys.executable, "-m", "emovit", *code_or_args] if isinstance(code_or_args, list) else [sys.executable, "-c", code_or_args]
    env = {**env, "HF_HOME": str(tmp_path / "hf-child"), "HF_DATASETS_CACHE": str(tmp_path / "ds-child")}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)


def test_pushed_dataset_loads_back_from_the_hub_by_config(tmp_path):
    root = tmp_path / "emoset"
    entries = emoset_tree(root, per_emotion=1)
    ids = [entry[1].split("/")[-1][:-4] for entry in entries]
    build_dataset("emoset", root, "train", tmp_path / "out", generations=generations_file(tmp_path / "g.jsonl", ids))
    with running_hub(tmp_path / "hub") as (endpoint, storage):
        env = hub_env(endpoint)
        pushed = _run(["data", "push", str(tmp_path / "out"), "--repo-id", "emo/instruct", "--private"], env, tmp_path)
        assert pushed.returncode == 0, pushed.stderr
        assert f"{endpoint}/datasets/emo/instruct" in pushed.stdout
        repo = repo_folder(storage, "emo/instruct", "dataset")
        for local in (tmp_path / "out").rglob("*.*"):
            assert (repo / local.relative_to(tmp_path / "out")).read_bytes() == local.read_bytes()

        code = (
            "import datasets\n"
            "rows = datasets.load_dataset('emo/instruct', 'reasoning', split='train')\n"
            "print(rows.num_rows, sorted(set(rows['task'])), rows[0]['image'].size, rows[0]['completion'])\n"
        )
        loaded = _run(code, env, tmp_path)
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.split("\n")[0] == "16 ['reasoning'] (16, 16) reasoning answer 0."


def test_loopback_hub_round_trips_a_model_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "emovit"}')
    (tmp_path / "model" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    code = (
        "import sys\n"
        "from huggingface_hub import HfApi, snapshot_download\n"
        "api = HfApi()\n"
        "api.create_repo('me/tiny', exist_ok=True)\n"
        "api.upload_folder(repo_id='me/tiny', folder_path=sys.argv[1])\n"
        "print(sorted(api.list_repo_files('me/tiny')))\n"
        "print(snapshot_download('me/tiny', cache_dir=sys.argv[2]))\n"
    )
    with running_hub(tmp_path / "hub") as (endpoint, storage):
        env = {**hub_env(endpoint), "HF_HOME": str(tmp_path / "hf")}
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model"), str(tmp_path / "cache")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        files, snapshot = done.stdout.strip().split("\n")
        assert files == "['config.json', 'weights.bin']"
        assert (Path(snapshot) / "weights.bin").read_bytes() == (tmp_path / "model" / "weights.bin").read_bytes()
        assert (repo_folder(storage, "me/tiny") / "config.json").read_text() == '{"model_type": "emovit"}'


def test_data_push_without_a_token_is_one_sentence_naming_the_login(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("---\nlicense: other\n---\n")
    with running_hub(tmp_path / "hub") as (endpoint, storage):
        env = {key: value for key, value in hub_env(endpoint).items() if key != "HF_TOKEN"}
        pushed = _run(["data", "push", str(tmp_path / "out"), "--repo-id", "emo/instruct"], env, tmp_path)
        assert not repo_folder(storage, "emo/instruct", "dataset").exists()
    assert pushed.returncode == 2 and "Traceback" not in pushed.stderr
    assert pushed.stderr.strip().splitlines() == [
        "emovit data: The Hub refused to write to emo/instruct (HTTP 401: no token, an invalid one or one without "
        "write access); log in with `hf auth login` or set HF_TOKEN (a token with write access)."
    ]


def test_no_local_token_is_the_same_one_sentence_error():
    from huggingface_hub.errors import LocalTokenNotFoundError

    with pytest.raises(EmoVITInputError, match=r"^Pushing to emo/instruct needs a Hugging Face token: log in with "):
        with hub_credentials("emo/instruct"):
            raise LocalTokenNotFoundError("Token is required, but no token found.")


@pytest.fixture
def answering_500():
    """A server on 127.0.0.1 that answers every request with HTTP 500 (a Hub having a bad day)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Failing(BaseHTTPRequestHandler):
        def _fail(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"error": "Internal Error - We\'re working hard to fix this as soon as possible!"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = do_PUT = _fail

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _closed_port_endpoint() -> str:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("hub, expected", [
    ("unreachable", "emovit data: pushing to emo/instruct: cannot reach http://127.0.0.1:"),
    ("answering 500", "emovit data: pushing to emo/instruct: the Hub answered HTTP 500 for http://127.0.0.1:"),
    ("offline mode", "emovit data: pushing to emo/instruct: the Hugging Face Hub cannot be reached with offline "
                     "mode on (HF_HUB_OFFLINE=1)"),
])
def test_push_to_a_hub_that_cannot_take_it_is_one_sentence(hub, expected, tmp_path, request):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("---\nlicense: other\n---\n")
    endpoint = request.getfixturevalue("answering_500") if hub == "answering 500" else _closed_port_endpoint()
    env = {**hub_env(endpoint), "HF_HUB_OFFLINE": "1" if hub == "offline mode" else "0"}
    pushed = _run(["data", "push", str(tmp_path / "out"), "--repo-id", "emo/instruct"], env, tmp_path)
    assert pushed.returncode == 2 and "Traceback" not in pushed.stderr
    [line] = pushed.stderr.strip().splitlines()
    assert line.startswith(expected) and line.endswith("(EMOVIT_DEBUG=1 shows the traceback).")


def test_two_local_folders_of_the_same_name_and_layout_load_their_own_rows(tmp_path):
    """datasets 5.2 caches a local folder by a name two folders can share; load_split must not mix them up."""
    from dataset_builder.loading import load_split
    from dataset_trees import config_folder, png_bytes

    rows = lambda ids: {"id": ids, "image": [{"bytes": png_bytes((9, 9, 9)), "path": None}] * len(ids),  # noqa: E731
                        "emotion": ["awe"] * len(ids)}
    config_folder(tmp_path / "a" / "data", "categorical", "test", rows(["a1", "a2"]))
    config_folder(tmp_path / "b" / "data", "categorical", "test", rows(["b1", "b2", "b3"]))
    assert load_split(str(tmp_path / "a" / "data"), "categorical", "test")["id"] == ["a1", "a2"]
    assert load_split(str(tmp_path / "b" / "data"), "categorical", "test")["id"] == ["b1", "b2", "b3"]
