"""Batch progress: a bar (subjects done, last finished, time left) on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import time
from typing import TextIO

log = logging.getLogger("graftwatch.batch")


class Progress:
    """Context manager fed one SubjectStatus per finished subject."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._bar = None

    def __enter__(self) -> "Progress":
        if self.stream.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=self.total, file=self.stream, unit="subject",
                             desc="graftwatch batch", dynamic_ncols=True)
        else:
            log.info("batch: %d subjects to go through", self.total)
        return self

    def update(self, status) -> None:
        self.done += 1
        self.failed += status.status == "failed"
        if self._bar is not None:
            self._bar.set_postfix_str(f"{status.subject_id}: {status.status}, failed {self.failed}")
            self._bar.update(1)
            return
        elapsed = time.monotonic() - self.start
        remaining = elapsed / self.done * (self.total - self.done)
        detail = f" ({status.error})" if status.error else ""
        log.info("[%d/%d] %s %s in %.1f s%s; about %.0f s left", self.done, self.total,
                 status.subject_id, status.status, status.seconds, detail, remaining)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
