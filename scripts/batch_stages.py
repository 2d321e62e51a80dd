"""The batch job that reports its stages: ``SubjectJob`` passing the runner's reporter on.

``scripts.batch_runner`` calls a job as ``job(entry, out_dir, on_stage=report)`` when the
progress display wants stages; ``run_subject`` reports them (``segmentation.pipeline``).
"""

from __future__ import annotations

from pathlib import Path

from scripts.batch_models import SubjectJob


class StagedSubjectJob(SubjectJob):
    """``SubjectJob`` (models cached per worker) that forwards ``on_stage`` to ``run_subject``."""

    def __call__(self, entry, out_dir: Path, on_stage=None) -> None:
        from segmentation.pipeline import run_subject
        models = self.cache().pipeline_models(self.options.model, self.options.device)
        run_subject(entry, out_dir, self.options, models=models, on_stage=on_stage)
