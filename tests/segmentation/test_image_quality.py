"""The cord SNR estimate (difference method inside the cord) against phantoms of known SNR."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.volume import LabelVolume, Volume
from segmentation.image_quality import cord_snr


@pytest.fixture(scope="module")
def phantom_session():
    from imaging.phantom import sample_spec, simulate_subject
    rng = np.random.default_rng(10002)
    spec = sample_spec(rng, label="spio", control=False, resolution="clinical", n_sessions=2)
    subject = simulate_subject(spec, rng, subject_id="sub-q")
    return spec.sessions[1].cord_snr, subject.sessions[1]


def _with_snr(session, target: float, seed: int = 1) -> Volume:
    """The session's T2w with extra Rician noise bringing its cord SNR to ``target``."""
    array = np.asarray(session.t2w.array, np.float64)
    cord = np.median(array[np.asarray(session.dseg.array) == 1])
    rng = np.random.default_rng(seed)
    sd = cord / target
    noisy = np.hypot(array + rng.normal(0, sd, array.shape), rng.normal(0, sd, array.shape))
    return Volume(noisy, session.t2w.affine, session.t2w.meta)


def test_snr_of_a_phantom_is_close_to_the_simulated_one(phantom_session):
    truth, session = phantom_session
    estimate = cord_snr(session.t2w, session.dseg)
    assert 0.85 * truth <= estimate <= 1.2 * truth
    # multi-echo: the first echo, whose SNR the simulator also sets to the cord SNR
    assert 0.85 * truth <= cord_snr(session.t2starw, session.dseg) <= 1.2 * truth


@pytest.mark.parametrize("target", [3.0, 5.0, 8.0])
def test_a_noisier_scan_gets_a_lower_snr(phantom_session, target):
    _, session = phantom_session
    assert cord_snr(_with_snr(session, target), session.dseg) == pytest.approx(target, rel=0.2)


def test_snr_does_not_depend_on_the_intensity_scale(phantom_session):
    _, session = phantom_session
    scaled = Volume(np.asarray(session.t2w.array) * 1000.0, session.t2w.affine, session.t2w.meta)
    assert cord_snr(scaled, session.dseg) == pytest.approx(cord_snr(session.t2w, session.dseg))


def test_no_cord_gives_no_snr_and_a_thin_one_too():
    image = Volume(np.random.default_rng(0).normal(100, 5, (20, 20, 20)), np.eye(4), {})
    empty = LabelVolume(np.zeros((20, 20, 20), np.uint8), np.eye(4), {})
    assert cord_snr(image, empty) is None
    thin = np.zeros((20, 20, 20), np.uint8)
    thin[9:11, 9:11, :] = 1     # two voxels wide: nothing left inside its edge
    assert cord_snr(image, LabelVolume(thin, np.eye(4), {})) is None
    block = np.zeros((20, 20, 20), np.uint8)
    block[4:16, 4:16, 4:16] = 1
    assert cord_snr(image, LabelVolume(block, np.eye(4), {})) == pytest.approx(20.0, rel=0.15)


@pytest.mark.parametrize("scan, mask", [
    ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz"),
    ("sct_testing_data/t2s/t2s.nii.gz", "sct_testing_data/t2s/t2s_seg.nii.gz"),
    ("gm-challenge-data/sub-9709Ses1/anat/sub-9709Ses1_run-1_T2starw.nii.gz",
     "gm-challenge-data/derivatives/labels/sub-9709Ses1/anat/sub-9709Ses1_run-1_T2starw_seg-manual.nii.gz"),
])
def test_real_scans_of_ordinary_quality_are_not_called_noisy(scan, mask):
    """Real T2w / T2*w scans with their manual cord masks: SNR 10-40 (measured 16.2, 17.5,
    12.9), not below the default limit of 5 (across the cord, signal change would have given
    4.5 on the first)."""
    from imaging.nifti import load_nifti
    from tests.conftest import shared_path
    image = load_nifti(shared_path(scan))
    labels = LabelVolume((np.asarray(load_nifti(shared_path(mask)).array) > 0.5).astype(np.uint8),
                         image.affine, {})
    assert 10.0 <= cord_snr(image, labels) <= 40.0
