"""A loopback Hugging Face Hub for tests: enough of the Hub's HTTP API for `huggingface_hub` uploads and downloads.

    with running_hub(tmp_path) as (endpoint, storage):
        env = hub_env(endpoint)            # HF_ENDPOINT=endpoint, HF_HUB_OFFLINE=0, a dummy token
        subprocess.run([...], env=env)     # push / load_dataset / from_pretrained in a child process
        repo_folder(storage, "user/name", "dataset")  # the uploaded files, byte for byte

`HF_ENDPOINT` is read when huggingface_hub is imported, so Hub calls run in a subprocess started with `hub_env`.
Writes (every POST) need the token `hub_env` sets, else 401 as the Hub answers a missing or invalid token.
Served (models, datasets, spaces alike): create repo, validate YAML, repo info (with `/revision/<rev>`), refs,
preupload (every file "regular": no LFS or xet), NDJSON commits with base64 content (add, delete file or folder),
tree listing, paths-info, and `resolve` (HEAD/GET, byte ranges). One branch, `main`; every commit gets a new sha.
Stdlib only, 127.0.0.1 on a free port, stopped when the context exits.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
TOKEN = "hf_loopback_test_token"


def repo_folder(storage, repo_id: str, repo_type: str = "model") -> Path:
    """Where the loopback Hub keeps the files of a repository."""
    return Path(storage) / f"{repo_type}s" / repo_id


def hub_env(endpoint: str, **extra) -> dict:
    """Environment for a child process that talks to the loopback Hub (online, dummy token, no xet)."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
    env.update({"HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5"})
    env.update(extra)
    return env


class _Hub:
    """Repositories on disk plus their current commit sha (kept in memory)."""

    def __init__(self, storage: Path):
        self.storage = storage
        self.commits: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def folder(self, repo_type: str, repo_id: str) -> Path:
        return repo_folder(self.storage, repo_id, repo_type)

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return self.folder(repo_type, repo_id).is_dir()

    def sha(self, repo_type: str, repo_id: str) -> str:
        first = hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()
        return self.commits.setdefault((repo_type, repo_id), first)

    def new_commit(self, repo_type: str, repo_id: str, summary: str) -> str:
        sha = hashlib.sha1(f"{self.sha(repo_type, repo_id)}{summary}{len(self.commits)}".encode()).hexdigest()
        self.commits[(repo_type, repo_id)] = sha
        return sha

    def files(self, repo_type: str, repo_id: str) -> list[str]:
        folder = self.folder(repo_type, repo_id)
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _entry(folder: Path, path: str) -> dict | None:
    target = folder / path
    if target.is_file():
        data = target.read_bytes()
        return {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
    if target.is_dir():
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}
    return None


class _Handler(BaseHTTPRequestHandler):
    hub: _Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _send(self, status: int, body=b"", headers: dict | None = None, head: bool = False):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False):
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        self._send(status, b"" if head else {"error": message}, headers, head)

    def _body(self) -> bytes:
        return self.body

    def _endpoint(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # -- routing -------------------------------------------------------------------------------------------------

    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def _route(self, method: str):
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        # Read every request body, even unused ones: leftovers would corrupt the next request on a kept-alive socket.
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if method == "POST" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        with self.hub.lock:
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo()
            if method == "POST" and path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            api = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path)
            if api:
                return self._api(method, _TYPES[api.group(1)], api.group(2), api.group(3) or "", query)
            resolve = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if resolve:
                repo_type = _TYPES[resolve.group(1)] if resolve.group(1) else "model"
                return self._resolve(method, repo_type, resolve.group(2), resolve.group(3), resolve.group(4))
        self._error(404, "EndpointNotFound", f"loopback hub: no route for {method} {path}", method == "HEAD")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str, query: dict):
        if not self.hub.exists(repo_type, repo_id):
            return self._error(404, "RepositoryNotFound", f"{repo_type} {repo_id} not found", method == "HEAD")
        action, _, tail = rest.partition("/")
        if method == "POST" and action == "preupload":
            return self._preupload()
        if method == "POST" and action == "commit":
            return self._commit(repo_type, repo_id)
        if method == "POST" and action == "paths-info":
            return self._paths_info(repo_type, repo_id)
        if action in ("", "revision"):
            return self._info(repo_type, repo_id, tail or "main")
        if action == "refs":
            sha = self.hub.sha(repo_type, repo_id)
            main = {"name": "main", "ref": "refs/heads/main", "targetCommit": sha}
            return self._send(200, {"branches": [main], "tags": [], "converts": []})
        if action == "tree":
            revision, _, folder = tail.partition("/")
            return self._tree(repo_type, repo_id, revision, folder, query)
        self._error(404, "EndpointNotFound", f"loopback hub: no API {action!r}")

    def _known_revision(self, repo_type: str, repo_id: str, revision: str) -> bool:
        return revision in ("main", "refs/heads/main", self.hub.sha(repo_type, repo_id))

    # -- write side ----------------------------------------------------------------------------------------------

    def _create_repo(self):
        body = json.loads(self._body() or b"{}")
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if "/" not in repo_id:
            repo_id = f"loopback-user/{repo_id}"
        self.hub.folder(repo_type, repo_id).mkdir(parents=True, exist_ok=True)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._send(200, {"url": f"{self._endpoint()}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})

    def _preupload(self):
        files = json.loads(self._body() or b"{}").get("files", [])
        self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})

    def _commit(self, repo_type: str, repo_id: str):
        folder = self.hub.folder(repo_type, repo_id)
        summary = ""
        for line in self._body().decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            target = (folder / value.get("path", "")).resolve() if isinstance(value, dict) else folder
            if isinstance(value, dict) and folder.resolve() not in target.parents and target != folder.resolve():
                return self._error(400, "BadRequest", f"path escapes the repository: {value.get('path')}")
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                target.unlink(missing_ok=True)
            elif key == "deletedFolder":
                shutil.rmtree(target, ignore_errors=True)
            else:
                return self._error(400, "BadRequest", f"loopback hub: unsupported commit operation {key!r}")
        sha = self.hub.new_commit(repo_type, repo_id, summary)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self._endpoint()}/{prefix}{repo_id}/commit/{sha}"
        self._send(200, {"commitUrl": url, "commitOid": sha, "pullRequestUrl": None})

    # -- read side -----------------------------------------------------------------------------------------------

    def _info(self, repo_type: str, repo_id: str, revision: str):
        if not self._known_revision(repo_type, repo_id, revision):
            return self._error(404, "RevisionNotFound", f"revision {revision} not found")
        folder = self.hub.folder(repo_type, repo_id)
        names = self.hub.files(repo_type, repo_id)
        siblings = [{"rfilename": name, "size": (folder / name).stat().st_size} for name in names]
        self._send(200, {
            "_id": repo_id, "id": repo_id, "author": repo_id.split("/")[0], "sha": self.hub.sha(repo_type, repo_id),
            "private": False, "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
            "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
            "siblings": siblings, "cardData": {},
        })

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict):
        if not self._known_revision(repo_type, repo_id, revision):
            return self._error(404, "RevisionNotFound", f"revision {revision} not found")
        folder = self.hub.folder(repo_type, repo_id)
        base = folder / path
        if not base.is_dir():
            return self._error(404, "EntryNotFound", f"{path} not found")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        children = base.rglob("*") if recursive else base.iterdir()
        entries = [_entry(folder, child.relative_to(folder).as_posix()) for child in sorted(children)]
        self._send(200, entries)

    def _paths_info(self, repo_type: str, repo_id: str):
        body = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        folder = self.hub.folder(repo_type, repo_id)
        self._send(200, [entry for entry in (_entry(folder, p.strip("/")) for p in paths) if entry])

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str):
        head = method == "HEAD"
        if not self.hub.exists(repo_type, repo_id):
            return self._error(404, "RepositoryNotFound", f"{repo_type} {repo_id} not found", head)
        if not self._known_revision(repo_type, repo_id, revision):
            return self._error(404, "RevisionNotFound", f"revision {revision} not found", head)
        target = self.hub.folder(repo_type, repo_id) / path
        if not target.is_file():
            return self._error(404, "EntryNotFound", f"{path} not found in {repo_id}", head)
        data = target.read_bytes()
        etag = f'"{hashlib.sha1(data).hexdigest()}"'
        headers = {"X-Repo-Commit": self.hub.sha(repo_type, repo_id), "ETag": etag, "Accept-Ranges": "bytes"}
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range and not head:
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start : end + 1], headers)
        if head:
            self.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            return self.end_headers()
        self._send(200, data, headers)


@contextlib.contextmanager
def running_hub(storage):
    """Runs the loopback Hub over `storage` (a folder) in a thread; yields (endpoint_url, storage_dir)."""
    storage = Path(storage)
    storage.mkdir(parents=True, exist_ok=True)
    handler = type("LoopbackHubHandler", (_Handler,), {"hub": _Hub(storage)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", storage
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
