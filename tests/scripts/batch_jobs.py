"""Small picklable jobs for the batch-runner tests (worker processes import them by name)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imaging.atomic import write_text_atomic
from imaging.errors import StudyError


def write_marker(entry, out_dir: Path) -> None:
    """Succeeds unless the subject id says 'broken'."""
    if "broken" in entry.subject_id:
        raise StudyError(f"{entry.path}: broken on purpose")
    if "crash" in entry.subject_id:
        raise ZeroDivisionError("division by zero")
    write_text_atomic(Path(out_dir) / entry.subject_id / "done.txt", entry.subject_id)


def marker_exists(entry, out_dir: Path) -> bool:
    marker = Path(out_dir) / entry.subject_id / "done.txt"
    return marker.exists() and marker.read_text() == entry.subject_id


def record_worker_cache(entry, out_dir: Path) -> None:
    """Writes which process ran the subject and which model cache that process holds."""
    import os

    from scripts import batch_models
    cache = batch_models._worker_cache
    write_text_atomic(Path(out_dir) / entry.subject_id / "worker.txt",
                      f"{os.getpid()} {'none' if cache is None else id(cache)}")


def count_loads(monkeypatch) -> Counter:
    """Count models.registry.load_model calls by model name (the real loader still runs)."""
    import models.registry
    loads: Counter = Counter()
    real = models.registry.load_model

    def counting(name, *args, **kwargs):
        loads[name] += 1
        return real(name, *args, **kwargs)

    monkeypatch.setattr(models.registry, "load_model", counting)
    return loads


def report_stages(entry, out_dir: Path, on_stage=None) -> None:
    """Reports three stages when given a reporter (each followed by a pause when the id says
    'slow'), then writes the marker."""
    import time
    for number in (1, 2, 3):
        if on_stage is not None:
            on_stage(f"step {number} of {entry.subject_id}")
        if "slow" in entry.subject_id:
            time.sleep(0.4)
    write_marker(entry, out_dir)


def record_threads(entry, out_dir: Path) -> None:
    """Writes the torch and SimpleITK thread counts of the process that ran the subject."""
    import SimpleITK as sitk
    import torch
    write_text_atomic(Path(out_dir) / entry.subject_id / "threads.txt",
                      f"{torch.get_num_threads()} {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}")


def process_threads() -> tuple[int, int]:
    import SimpleITK as sitk
    import torch
    return torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()


def record_start(entry, out_dir: Path) -> None:
    """Writes when the subject started (ns), then takes 0.5 s."""
    import time
    started = time.time_ns()
    time.sleep(0.5)
    write_text_atomic(Path(out_dir) / entry.subject_id / "started.txt", str(started))
