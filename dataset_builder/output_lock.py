"""One writer per output: an exclusive `flock` held while a command writes a folder or file, so that a second
`emovit data build` into the same `--out`, or a second `data generate` on the same `--out`, is refused in one sentence
instead of both writing (and paying for) the same work. The kernel releases the lock when the process ends, even by
`kill -9`. Plain Python: no `datasets` import, so a `data generate` run starts fast.
"""

import contextlib
import os
from pathlib import Path

from modeling_emovit.errors import EmoVITInputError


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: str):
    """Holds an exclusive `flock` on `path` (created); `busy` is the sentence raised when another process holds it.
    The file is removed before the lock is released, and a lock taken on a file removed meanwhile counts as held by
    another process."""
    try:
        import fcntl
    except ImportError:  # not POSIX: writers are not locked against each other
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmoVITInputError(busy) from None
        if not path.exists() or os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise EmoVITInputError(busy)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
