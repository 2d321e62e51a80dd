"""SPIO iron and 19F counts per timepoint (segmentation.labelled, segmentation.fluorine_region).

Synthetic sessions with known iron and fluorine: a straight cord along S with a lesion at
the epicentre, multi-echo T2*w written as NIfTI with echo times, a 19F image with a faint
reference tube along the spine; nothing depends on the graft label (it is empty).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging.io import save
from imaging.rigid import RigidTransform
from imaging.study import Scan, Timepoint
from imaging.volume import LabelVolume, Volume
from segmentation.config import AnalysisConfig
from segmentation.fluorine_region import fluorine_estimates, reference_tube
from segmentation.injection_site import HALF_LENGTH_MM, LabelledInput, injection_core
from segmentation.labelled import labelled_estimates
from segmentation.quantify import GraftMeasurement

SHAPE = (30, 30, 80)
AFFINE = np.array([[1.0, 0, 0, -15], [0, 1.0, 0, -15], [0, 0, 1.0, -40], [0, 0, 0, 1]])
ECHO_TIMES_MS = (4.0, 9.0, 14.0, 19.0, 24.0, 29.0)
RELAXIVITY = 100.0
ATOMS_PER_CELL = 1e12
ATOMS_PER_UNIT = 1e15


def _world(shape=SHAPE, affine=AFFINE) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _labels() -> LabelVolume:
    p = _world()
    radius = np.hypot(p[..., 0], p[..., 1])
    labels = np.where(radius <= 5.0, 1, 0)
    labels[(radius <= 3.0) & (np.abs(p[..., 2]) <= 6.0)] = 2
    return LabelVolume(labels.astype(np.uint8), AFFINE)


def _no_graft() -> Volume:
    return Volume(np.zeros(SHAPE, np.float32), AFFINE)


def _t2starw(path, iron_ug: float, rng, sigma: float = 10.0, edge_r2: float = 0.0):
    """``edge_r2``: R2* added over the cord's outer millimetre along its whole length (what a
    baseline in another plane with thick slices leaves in delta-R2*: CSF mixed in elsewhere)."""
    p = _world()
    radius = np.hypot(p[..., 0], p[..., 1])
    r2 = np.where(radius <= 5.0, 30.0, np.where(radius <= 8.0, 5.0, 20.0))
    r2 = r2 + np.where((radius > 4.0) & (radius <= 5.0), edge_r2, 0.0)
    pd = np.where(radius <= 5.0, 1000.0, np.where(radius <= 8.0, 1500.0, 600.0))
    blob = np.exp(-(p ** 2).sum(-1) / (2 * 1.5 ** 2))
    r2 = r2 + RELAXIVITY * iron_ug * blob / blob.sum()   # sum over 1 mm3 voxels = iron
    te = np.asarray(ECHO_TIMES_MS) / 1000.0
    clean = pd[..., None] * np.exp(-r2[..., None] * te)
    noisy = np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape))
    save(Volume(noisy.astype(np.float32), AFFINE), path)
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"EchoTime": [t / 1000.0 for t in ECHO_TIMES_MS]}))
    return Scan(path, "T2starw")


def _timepoint(label, days, scans) -> Timepoint:
    return Timepoint(label, days, scans)


def _measurements(inputs):
    return [GraftMeasurement(i.timepoint.label, i.timepoint.days, 0.0, 0.0, 0.0) for i in inputs]


def test_injection_core_is_the_cord_around_the_lesion_whatever_the_graft_label():
    labels = _labels()
    core = np.asarray(injection_core(labels, _no_graft(), 1.0).array) > 0
    z = _world()[..., 2]
    cord = np.asarray(labels.array) >= 1
    assert core.any() and np.all(cord[core])
    assert np.abs(z[core]).max() == pytest.approx(HALF_LENGTH_MM, abs=0.5)
    assert not core[cord & (np.abs(z) > HALF_LENGTH_MM + 0.5)].any()


@pytest.fixture(scope="module")
def spio_inputs(tmp_path_factory):
    """Baseline without iron, then 30 ug and 12 ug of iron at the epicentre."""
    folder = tmp_path_factory.mktemp("spio")
    rng = np.random.default_rng(7)
    inputs = []
    for label, days, iron in (("ses-01", -5.0, 0.0), ("ses-02", 3.0, 30.0), ("ses-03", 60.0, 12.0)):
        scan = _t2starw(folder / f"sub-1_{label}_T2starw.nii.gz", iron, rng)
        transform = None if days < 0 else RigidTransform.identity()
        inputs.append(LabelledInput(_timepoint(label, days, {"T2starw": scan}), _labels(),
                                    _no_graft(), transform))
    return inputs


def test_spio_iron_is_measured_against_the_baseline_with_an_empty_graft_label(spio_inputs):
    config = AnalysisConfig(injected_cells=2e6, label="spio", iron_pg_per_cell=20.0,
                            bootstrap_samples=200)
    results = labelled_estimates(spio_inputs, 0, _measurements(spio_inputs), config)
    assert results[0].estimate.status == "not_quantifiable" and results[0].iron is None
    for result, truth in zip(results[1:], (30.0, 12.0)):
        assert result.iron.iron_ug == pytest.approx(truth, rel=0.15)
        assert result.estimate.status == "ok" and result.estimate.method == "spio"
        # cells = iron / iron per cell
        assert result.estimate.value == pytest.approx(result.iron.iron_ug * 1e6 / 20.0, rel=1e-9)
    assert "does not depend on the graft label" in results[1].region
    # no graft volume to compare the iron with: the count says lingering iron is unchecked
    assert "cannot be checked" in results[1].estimate.reason


def _spio_pair(folder, iron_ug: float, edge_r2: float, baseline_iron_ug: float = 0.0):
    rng = np.random.default_rng(11)
    inputs = []
    for label, days, iron, edge in (("ses-01", -5.0, baseline_iron_ug, 0.0),
                                    ("ses-02", 3.0, iron_ug, edge_r2)):
        scan = _t2starw(folder / f"sub-1_{label}_T2starw.nii.gz", iron, rng, edge_r2=edge)
        inputs.append(LabelledInput(_timepoint(label, days, {"T2starw": scan}), _labels(),
                                    _no_graft(), None if days < 0 else RigidTransform.identity()))
    config = AnalysisConfig(injected_cells=2e6, label="spio", bootstrap_samples=200)
    return labelled_estimates(inputs, 0, _measurements(inputs), config)[1]


def test_spio_removes_a_delta_r2star_that_runs_along_the_whole_cord(tmp_path):
    # +20 /s over the cord's outer millimetre everywhere: seeded as it is, it joins the iron
    # into one cluster along the whole cord (408 ug); removed along the cord for the seeds and
    # by the shifted copies for the sum
    clean = _spio_pair(tmp_path, 30.0, 0.0).iron
    edged = _spio_pair(tmp_path, 30.0, 20.0).iron
    assert edged.iron_ug == pytest.approx(30.0, rel=0.15)
    assert edged.ci_low_ug <= 30.0 <= edged.ci_high_ug
    assert edged.iron_ug == pytest.approx(clean.iron_ug, abs=1.0)


def test_spio_negative_beyond_its_noise_is_not_quantifiable(tmp_path):
    # the baseline darker at the epicentre than the timepoint (as a misregistered baseline
    # hemorrhage would be): negative iron is reported as not quantifiable, not as a number
    result = _spio_pair(tmp_path, 0.0, 0.0, baseline_iron_ug=40.0)
    assert result.iron is None and result.estimate.status == "not_quantifiable"
    assert "iron cannot be negative" in result.estimate.reason


def test_spio_without_baseline_or_echoes_is_not_quantifiable_with_the_reason(spio_inputs):
    config = AnalysisConfig(label="spio", bootstrap_samples=200)
    later = list(spio_inputs[1:])
    no_base = labelled_estimates(later, None, _measurements(later), config)
    assert all("no pre-injection baseline" in r.estimate.reason for r in no_base)
    blind = LabelledInput(_timepoint("ses-04", 90.0, {}), _labels(), _no_graft(),
                          RigidTransform.identity())
    inputs = [*spio_inputs, blind]
    result = labelled_estimates(inputs, 0, _measurements(inputs), config)[-1]
    assert result.estimate.status == "not_quantifiable"
    assert "no multi-echo T2*w scan" in result.estimate.reason


# --- 19F -------------------------------------------------------------------------------------
F19_AFFINE = np.array([[3.0, 0, 0, -24], [0, 3.0, 0, -60], [0, 0, 3.0, -36], [0, 0, 0, 1]])
F19_SHAPE = (17, 29, 25)
TUBE_XY = (10.0, -45.0)


def _f19(path, cells: float, rng, sigma: float = 5.0) -> tuple[Scan, float]:
    """A real-valued 19F image: graft blob at the epicentre, tube along S; its atoms in view."""
    fine = 5
    sub = F19_AFFINE.copy()
    sub[:3, :3] /= fine
    sub[:3, 3] -= (fine - 1) / (2 * fine) * 3.0
    p = _world(tuple(n * fine for n in F19_SHAPE), sub)
    tube = (np.hypot(p[..., 0] - TUBE_XY[0], p[..., 1] - TUBE_XY[1]) <= 2.0) * 1.1e15 * 0.216
    blob = np.exp(-(p ** 2).sum(-1) / (2 * 1.2 ** 2))
    graft = cells * ATOMS_PER_CELL * blob / blob.sum()
    atoms = (tube + graft).reshape(F19_SHAPE[0], fine, F19_SHAPE[1], fine, F19_SHAPE[2], fine)
    atoms = atoms.sum(axis=(1, 3, 5))
    image = atoms / ATOMS_PER_UNIT + rng.normal(0, sigma, F19_SHAPE)
    save(Volume(image.astype(np.float32), F19_AFFINE), path)
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"ReferenceAtoms": float(tube.sum())}))
    return Scan(path, "19F"), float(tube.sum())


def test_reference_tube_is_found_on_the_19f_image_away_from_the_graft(tmp_path):
    scan, _ = _f19(tmp_path / "f.nii.gz", 2e6, np.random.default_rng(3))
    from imaging.io import load
    f19 = load(scan.path)
    centres = f19.world_coordinates(np.argwhere(np.ones(F19_SHAPE, bool))).reshape(*F19_SHAPE, 3)
    away = np.hypot(centres[..., 0], centres[..., 1]) > 15.0
    tube = np.asarray(reference_tube(f19, away, 5.0, np.array([0.0, 0.0, 1.0])).array) > 0
    inside = np.hypot(centres[..., 0] - TUBE_XY[0], centres[..., 1] - TUBE_XY[1]) <= 2.0
    assert tube[inside].all() and not tube[~away].any()
    assert tube.sum() <= 16 * F19_SHAPE[2]   # one spot (2x2 pixels grown by one) along S


def test_fluorine_count_from_the_image_and_its_sidecar(tmp_path):
    rng = np.random.default_rng(11)
    inputs = []
    for label, days, cells in (("ses-01", -3.0, 0.0), ("ses-02", 2.0, 1.5e6), ("ses-03", 40.0, 5e5)):
        scan, _ = _f19(tmp_path / f"sub-1_{label}_acq-19F_MRI.nii.gz", cells, rng)
        inputs.append(LabelledInput(_timepoint(label, days, {"19F": scan}), _labels(),
                                    _no_graft(), None))
    config = AnalysisConfig(injected_cells=2e6, label="19f", fluorine_atoms_per_cell=ATOMS_PER_CELL)
    results = fluorine_estimates(inputs, config)
    assert results[0].estimate.reason.startswith("pre-injection")
    for result, cells in zip(results[1:], (1.5e6, 5e5)):
        assert result.estimate.status == "ok", result.estimate.reason
        assert result.estimate.value == pytest.approx(cells, rel=0.15)
        assert result.estimate.ci_low <= cells <= result.estimate.ci_high
        assert result.fluorine_atoms[0] == pytest.approx(result.estimate.value * ATOMS_PER_CELL)
        assert result.estimate.surviving_fraction == pytest.approx(cells / 2e6, rel=0.15)


def test_fluorine_without_a_tube_or_an_image_says_why(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "sub-1_ses-02_acq-19F_MRI.nii.gz"
    save(Volume(rng.normal(0, 5.0, F19_SHAPE).astype(np.float32), F19_AFFINE), path)
    empty = LabelledInput(_timepoint("ses-02", 2.0, {"19F": Scan(path, "19F")}), _labels(),
                          _no_graft(), None)
    missing = LabelledInput(_timepoint("ses-03", 9.0, {}), _labels(), _no_graft(), None)
    results = fluorine_estimates([empty, missing], AnalysisConfig(label="19f"))
    assert "no reference tube found" in results[0].estimate.reason
    assert "has no acq-19F image" in results[1].estimate.reason
    assert all(r.estimate.value is None for r in results)


def test_19f_graft_region_is_the_brightest_cluster_and_a_lone_noise_voxel_is_no_graft():
    from segmentation.fluorine_region import graft_region, search_threshold
    image = np.zeros((20, 20, 20))
    near = np.zeros(image.shape, bool)
    near[2:18, 2:18, 2:18] = True                     # 4096 voxels searched
    image[9:11, 9:11, 9:11] = 8.0                    # the graft: 8 voxels at 8 sd
    image[3, 3, 3] = 4.0                             # a noise voxel at 4 sd, far from it
    region = np.asarray(graft_region(Volume(image, np.eye(4)), near, 1.0, "gaussian").array) > 0
    assert region[9:11, 9:11, 9:11].all() and not region[3, 3, 3]
    assert region.sum() == 8 + 6 * 4                 # the cluster grown by one face voxel
    # without the graft the 4 sd voxel is below the search threshold: the whole
    # neighbourhood is measured (below detection), not a region seeded on noise
    assert 4.0 < search_threshold(int(near.sum())) < 5.0
    image[9:11, 9:11, 9:11] = 0.0
    region = np.asarray(graft_region(Volume(image, np.eye(4)), near, 1.0, "gaussian").array) > 0
    assert np.array_equal(region, near)
