"""One batch run per output folder: an exclusive lock file held for the whole run."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from pathlib import Path
from typing import Iterator

from imaging.errors import OutputError

LOCK_NAME = ".graftwatch-batch.lock"


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``out_dir`` or refuse with who holds it."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = open(out_dir / LOCK_NAME, "a+", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out_dir}: {exc.strerror}; "
                          "choose a folder you can write to (--out)") from exc
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputError(f"another graftwatch batch is writing to {out_dir} ({holder}); "
                              "wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {dt.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        yield out_dir
    finally:
        handle.close()
