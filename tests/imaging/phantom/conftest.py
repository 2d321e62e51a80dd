"""A small written phantom dataset (with its DICOM export), shared by the dataset tests."""

from __future__ import annotations

import pytest

from imaging.phantom import write_dataset

# the arguments the dataset was written with, so a test can write it again
DATASET_ARGS = dict(n_subjects=2, seed=3, labels=("spio", "19f"), plane="sagittal",
                    n_sessions=2, dicom=True)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "bids"
    write_dataset(out, **DATASET_ARGS)
    return out
