"""The response cache: accepted replies in SQLite, addressed by the content of the request that produced them."""

import contextlib
import hashlib
import json
import sqlite3

from modeling_emovit.errors import EmoVITInputError


def content_key(*parts) -> str:
    """SHA-256 of the JSON of `parts`: the cache address of a request (pass backend, model, prompt version, input)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """SQLite table `responses(key, value)`: accepted replies (`content`, `usage`, `model`) by content address.

    WAL journal, one commit per put: a process killed at any moment keeps every reply it had stored (only a power
    cut can lose the last commits, which are then asked again). A file that is not such a cache (another file, a
    corrupt or unreadable database) is one sentence naming it, when opened or when a damaged page is read.
    """

    def __init__(self, path):
        self.path = str(path)
        self.connection = None
        with self._sqlite_errors():
            self.connection = sqlite3.connect(self.path)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses nothing
            self.connection.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.connection.execute("SELECT key, value FROM responses LIMIT 1")  # another program's `responses` table
            self.connection.commit()

    @contextlib.contextmanager
    def _sqlite_errors(self):
        try:
            yield
        except sqlite3.DatabaseError as error:  # also OperationalError: unreadable file, missing folder, locked
            if self.connection is not None:
                self.connection.close()
            raise EmoVITInputError(
                f"{self.path}: not a usable SQLite response cache ({error}); move it away or give another cache file."
            ) from None

    def get(self, key: str) -> dict | None:
        with self._sqlite_errors():
            row = self.connection.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        with self._sqlite_errors():
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
