"""Batch progress: a bar (subjects done, current stages, time left) on a terminal, log lines otherwise.

``update`` takes one SubjectStatus per finished subject, ``stage`` each stage a running
subject starts (``scripts.batch_runner``'s ``on_stage``). On a terminal the bar's text
shows the running subjects with their current stage; otherwise each stage change is one
INFO line ("sub-002: registering ses-02") and each finished subject one more.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

log = logging.getLogger("graftwatch.batch")


class Progress:
    """Context manager fed the runner's statuses (``update``) and stages (``stage``)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._bar = None
        self._running: dict[str, str] = {}   # subject id -> its current stage
        self._finished: set[str] = set()
        self._last = ""

    def __enter__(self) -> "Progress":
        if self.stream.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=self.total, file=self.stream, unit="subject",
                             desc="graftwatch batch", dynamic_ncols=True)
        else:
            log.info("batch: %d subjects to go through", self.total)
        return self

    def stage(self, subject_id: str, stage: str) -> None:
        """``subject_id`` starts ``stage`` (ignored once the subject has finished: a worker's
        last stage can arrive just after its status)."""
        if subject_id in self._finished or self._running.get(subject_id) == stage:
            return
        self._running[subject_id] = stage
        if self._bar is not None:
            self._bar.set_postfix_str(self.text())
        else:
            log.info("%s: %s", subject_id, stage)

    def text(self) -> str:
        """The bar's text: each running subject's stage, the last finished, the failures."""
        running = [f"{sid}: {stage}" for sid, stage in self._running.items()]
        return "; ".join([*running, *([self._last] if self._last else []), f"failed {self.failed}"])

    def update(self, status) -> None:
        self.done += 1
        self.failed += status.status == "failed"
        self._running.pop(status.subject_id, None)
        self._finished.add(status.subject_id)
        self._last = f"last {status.subject_id} {status.status}"
        if self._bar is not None:
            self._bar.set_postfix_str(self.text(), refresh=False)
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
