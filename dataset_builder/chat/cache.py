"""The response cache: accepted replies in SQLite, addressed by the content of the request that produced them."""

import hashlib
import json
import sqlite3


def content_key(*parts) -> str:
    """SHA-256 of the JSON of `parts`: the cache address of a request (pass backend, model, prompt version, input)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """SQLite table `responses(key, value)`: accepted replies (`content`, `usage`, `model`) by content address.

    WAL journal, one commit per put: a process killed at any moment keeps every reply it had stored (only a power
    cut can lose the last commits, which are then asked again).
    """

    def __init__(self, path):
        self.path = str(path)
        self.connection = sqlite3.connect(self.path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses nothing
        self.connection.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.connection.commit()

    def get(self, key: str) -> dict | None:
        row = self.connection.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        self.connection.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(value)))
        self.connection.commit()

    def __len__(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
