"""A tiny phantom cohort and one uninterrupted batch run of it, shared by the batch tests.

Runs that are compared byte for byte use one torch thread and one ITK thread: the rigid
registration's residual changes in its 7th digit with ITK's thread scheduling
(measured: two runs of the same cohort with ITK's default threads gave
registration_residual_mm 0.3939753729 and 0.3939750314). Subprocess runs get the same
settings through ``tests.scripts.batch_process.deterministic_env``. Test modules using these fixtures mark themselves
``pytest.mark.xdist_group("tiny_cohort")`` so that under ``-n 2 --dist loadgroup`` they
share one worker, and the cohort and the reference run are made once.
"""

from __future__ import annotations

from pathlib import Path

import pytest


TINY_COHORT = {"n_subjects": 3, "seed": 11, "labels": ("none",), "n_sessions": 2}


@pytest.fixture(scope="session")
def one_thread():
    """One torch and one ITK thread for the duration of the session's compared runs."""
    import SimpleITK as sitk
    import torch
    torch_before = torch.get_num_threads()
    itk_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    torch.set_num_threads(torch_before)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_before)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """3 phantom subjects with 2 sessions each (a baseline and one follow-up)."""
    from imaging.phantom import write_dataset
    return write_dataset(tmp_path_factory.mktemp("tiny") / "study", **TINY_COHORT)


@pytest.fixture(scope="session")
def reference_run(tiny_cohort, tmp_path_factory, one_thread) -> Path:
    """The tiny cohort analysed once, in this process, without interruption."""
    from scripts.batch import run_batch
    from segmentation.pipeline import PipelineOptions
    out = tmp_path_factory.mktemp("reference") / "out"
    summary = run_batch(tiny_cohort, out, PipelineOptions(device="cpu"))
    if summary.n_ok != TINY_COHORT["n_subjects"]:
        pytest.fail(f"reference run of the tiny cohort did not complete: {summary.describe()}")
    return out
