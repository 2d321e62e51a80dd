"""The same phantom subject stored or placed other ways gives the same answer (issue 5).

One small seeded subject (axial clinical phantom, 3 sessions: baseline, day 5, day 30) is
analysed through the real API (``discover_subject`` -> ``analyze_subject`` with the shipped
models, CPU) as written by the simulator (NIfTI, BIDS), and again stored

- in another orientation: every session's array permuted and flipped (``Volume.reorient``),
  the affine updated so every voxel keeps its place in the world;
- as DICOM: each session one single-frame series (``imaging.dicom.synthetic.write_series``,
  unsigned 12-bit values with a rescale slope and intercept, one study date per session)
  in one subject tree, found by ``discover_subject``;
- with intensities x 1000;
- moved: the day-30 session's affine given an extra rigid move (4 degrees, 2.9 mm), the
  array unchanged, so the subject lies elsewhere in the scanner at that session only
  (the baseline registration and look-alike exclusion must follow it);
- moved for real: re-simulated with the day-30 body 3.8 mm / 0.5 degrees elsewhere on the
  same grid (same noise draws), so the network sees other voxels: cord and graft agree
  within 1 %; the lesion within 1 % in median over five seeds (not at every seed: see the
  test).

Per timepoint, each variant must match the reference within 1 % of the reference value
(with a floor of ``FLOOR_MM3`` for volumes near 0): cord volume, lesion volume, graft volume
after the look-alike exclusion, and the graft partial-volume sum straight from the model.
The surviving fraction must agree within 1 percentage point (or be None in both), and the
same flags must be raised at each timepoint. The shipped
model finds almost no graft, so the cord and lesion volumes are today's meaningful check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from imaging.dicom.synthetic import SeriesSpec, write_series
from imaging.phantom.bids_writer import write_subject
from imaging.study import discover_subject
from imaging.volume import Volume
from scripts.benchmarks import pose_invariance
from segmentation.config import AnalysisConfig
from segmentation.pipeline import analyze_subject

# One xdist worker runs them all, so the session fixtures (the reference analysis) run once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("invariance")]

SEED = 20260504
DAYS = pose_invariance.DAYS
TRANSPLANT_DATE = dt.date(2025, 3, 1)
RELATIVE_TOLERANCE = 0.01
POSE_SEEDS = (SEED, 1, 2, 3, 4)   # the first five of scripts/benchmarks/pose_invariance.py
FLOOR_MM3 = 1.0            # about one clinical voxel: 1 % of it is the tolerance near 0
FRACTION_TOLERANCE = 0.01  # surviving fraction, absolute
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
STORED_MAX = 4095          # 12-bit scanner values


@dataclass(frozen=True)
class TimepointNumbers:
    days: float
    cord_volume_mm3: float
    lesion_volume_mm3: float
    graft_volume_mm3: float
    graft_probability_sum_mm3: float
    surviving_fraction: float | None
    flags: tuple[str, ...]              # codes of the flags raised at this timepoint
    registration_residual_mm: float | None


def numbers(result) -> list[TimepointNumbers]:
    rows = []
    for tp in sorted(result.timepoints, key=lambda t: t.days_post_transplant):
        graft = tp.images.graft_probability
        rows.append(TimepointNumbers(
            tp.days_post_transplant, tp.metrics.cord_volume_mm3, tp.metrics.lesion_volume_mm3,
            tp.metrics.graft_volume_mm3,
            float(np.sum(graft.array, dtype=np.float64)) * graft.voxel_volume_mm3,
            tp.estimate.surviving_fraction,
            tuple(sorted(f.code for f in result.flags if f.timepoint == tp.session_id)),
            tp.registration_residual_mm))
    return rows


def analyse(subject_dir: Path, injected_cells: float, transplant_date=None):
    subject = discover_subject(subject_dir, transplant_date=transplant_date)
    config = AnalysisConfig(injected_cells=injected_cells, label="none")
    return numbers(analyze_subject(subject, config, device="cpu"))


def simulated(move_last_body: bool = False):
    """The benchmark's small clinical subject at SEED (see pose_invariance.simulated)."""
    return pose_invariance.simulated(SEED, move_last_body)


@pytest.fixture(scope="session")
def phantom():
    return simulated()


def write_bids(root: Path, phantom, change=lambda index, volume: volume) -> Path:
    """The phantom as BIDS, each session's T2w passed through ``change(index, volume)``."""
    sessions = tuple(replace(s, t2w=change(i, s.t2w)) for i, s in enumerate(phantom.sessions))
    write_subject(root, replace(phantom, sessions=sessions))
    return root / phantom.subject_id


@pytest.fixture(scope="session")
def reference(phantom, tmp_path_factory):
    return analyse(write_bids(tmp_path_factory.mktemp("nifti"), phantom), phantom.injected_cells)


VOLUMES = ("cord_volume_mm3", "lesion_volume_mm3", "graft_volume_mm3",
           "graft_probability_sum_mm3")


def require_same(found: list[TimepointNumbers], expected: list[TimepointNumbers],
                 volumes: tuple[str, ...] = VOLUMES) -> None:
    assert [t.days for t in found] == [t.days for t in expected]
    for got, ref in zip(found, expected):
        for name in volumes:
            value, target = getattr(got, name), getattr(ref, name)
            allowed = RELATIVE_TOLERANCE * max(abs(target), FLOOR_MM3)
            assert abs(value - target) <= allowed, (
                f"day {ref.days:g} {name}: {value:.3f} vs reference {target:.3f} "
                f"(allowed +-{allowed:.3f})")
        assert got.flags == ref.flags, f"day {ref.days:g}"
        assert (got.registration_residual_mm is None) == (ref.registration_residual_mm is None)
        if ref.surviving_fraction is None or got.surviving_fraction is None:
            assert got.surviving_fraction == ref.surviving_fraction, f"day {ref.days:g}"
        else:
            assert got.surviving_fraction == pytest.approx(ref.surviving_fraction,
                                                           abs=FRACTION_TOLERANCE)


def test_reference_finds_the_cord_at_every_timepoint(reference):
    """Guards the comparisons below against a trivially empty reference."""
    assert len(reference) == len(DAYS)
    assert all(t.cord_volume_mm3 > 1000.0 for t in reference)
    assert [t.registration_residual_mm is None for t in reference] == [True, False, False]


def test_another_orientation_gives_the_same_numbers(phantom, reference, tmp_path):
    codes = ("PSR", "IRA", "ALI")   # one per session; on disk the phantom is LAS

    def reoriented(index, volume):
        moved = volume.reorient(codes[index])
        assert moved.orientation == codes[index]
        return moved
    require_same(analyse(write_bids(tmp_path, phantom, reoriented), phantom.injected_cells),
                 reference)


@pytest.fixture(scope="session")
def scaled(phantom, tmp_path_factory):
    def times_1000(index, volume):
        return volume.with_array(np.asarray(volume.array, dtype=np.float32) * 1000.0)
    return analyse(write_bids(tmp_path_factory.mktemp("x1000"), phantom, times_1000),
                   phantom.injected_cells)


def test_intensities_times_1000_give_the_same_numbers(scaled, reference):
    require_same(scaled, reference)


def test_the_same_flags_are_raised_at_every_timepoint(scaled, reference):
    assert [t.flags for t in scaled] == [t.flags for t in reference]


def moved_between_sessions(world_from_world: np.ndarray):
    def move(index, volume):
        if index != len(DAYS) - 1:
            return volume
        return Volume(volume.array, world_from_world @ volume.affine, volume.meta)
    return move


def test_a_subject_moved_between_sessions_gives_the_same_numbers(phantom, reference, tmp_path):
    move = np.eye(4)
    move[:3, :3] = Rotation.from_rotvec(np.deg2rad([4.0, 0.0, 0.0])).as_matrix()
    move[:3, 3] = (2.0, -1.5, 1.5)    # |t| = 2.9 mm
    found = analyse(write_bids(tmp_path, phantom, moved_between_sessions(move)),
                    phantom.injected_cells)
    require_same(found, reference)


@pytest.fixture(scope="session")
def body_moved(tmp_path_factory):
    moved = simulated(move_last_body=True)
    return moved, analyse(write_bids(tmp_path_factory.mktemp("moved"), moved),
                          moved.injected_cells)


def test_a_body_moved_in_the_scanner_gives_the_same_cord_and_graft(phantom, body_moved,
                                                                    reference):
    """Re-simulated with the last session's body elsewhere: the model sees new voxels."""
    moved, found = body_moved
    assert moved.sessions[-1].t2w.shape == phantom.sessions[-1].t2w.shape
    assert not np.array_equal(moved.sessions[-1].t2w.array, phantom.sessions[-1].t2w.array)
    require_same(found, reference, tuple(v for v in VOLUMES if v != "lesion_volume_mm3"))


def test_a_body_moved_in_the_scanner_moves_the_lesion_by_under_1_percent_in_median(
        body_moved, reference, tmp_path):
    """The lesion (partial volume) over POSE_SEEDS: median |change| within 1 %, and the cord
    within 1 % at every seed. Per seed the lesion moves up to 3.4 % (seed 20260504 with
    seg-v3: its 3-4 mm slices cut the lesion elsewhere; the truth moves 0.05 %), so one seed
    alone would test the luck of the draw (scripts/benchmarks/pose_invariance.py)."""
    last = -1
    lesion = [pose_invariance.change(reference[last].lesion_volume_mm3,
                                     body_moved[1][last].lesion_volume_mm3)]
    cord = [pose_invariance.change(reference[last].cord_volume_mm3,
                                   body_moved[1][last].cord_volume_mm3)]
    for seed in POSE_SEEDS[1:]:
        found = [pose_invariance.analysed_volumes(tmp_path / f"{seed}-{moved}",
                                                  pose_invariance.simulated(seed, moved))
                 for moved in (False, True)]
        lesion.append(pose_invariance.change(found[0]["lesion"], found[1]["lesion"]))
        cord.append(pose_invariance.change(found[0]["cord"], found[1]["cord"]))
    report = f"seeds {POSE_SEEDS}: lesion {np.round(lesion, 2)} %, cord {np.round(cord, 2)} %"
    assert np.median(np.abs(lesion)) <= 100 * RELATIVE_TOLERANCE, report
    assert np.max(np.abs(cord)) <= 100 * RELATIVE_TOLERANCE, report


def dicom_geometry(volume: Volume) -> tuple[np.ndarray, SeriesSpec]:
    """The array (x = column, y = row, z = slice along row x column) and its DICOM geometry.

    Slices are flipped when the volume's third axis runs against the DICOM slice normal, so
    the slice positions step forwards along the normal from ``origin_lps``.
    """
    lps = LPS_FROM_RAS @ volume.affine
    spacing = np.asarray(volume.spacing)
    row_dir, col_dir, slice_dir = (lps[:3, i] / spacing[i] for i in range(3))
    array = np.asarray(volume.array)
    origin = lps[:3, 3]
    if float(np.dot(np.cross(row_dir, col_dir), slice_dir)) < 0:
        array = array[:, :, ::-1]
        origin = origin + (array.shape[2] - 1) * spacing[2] * slice_dir
    spec = SeriesSpec(orientation=(*row_dir, *col_dir), origin_lps=tuple(origin),
                      pixel_spacing_mm=(float(spacing[1]), float(spacing[0])),
                      slice_spacing_mm=float(spacing[2]))
    return array, spec


def write_dicom_subject(folder: Path, phantom, rng: np.random.Generator) -> Path:
    """Every session as one T2w TSE series (12-bit values, rescale slope and intercept)."""
    for session in phantom.sessions:
        array, spec = dicom_geometry(session.t2w)
        intercept = -1.0
        slope = (float(array.max()) - intercept) / STORED_MAX
        stored = np.clip(np.round((array - intercept) / slope), 0, STORED_MAX).astype(np.uint16)
        date = TRANSPLANT_DATE + dt.timedelta(days=session.days_post_transplant)
        spec = replace(spec, rescale=(slope, intercept), study_date=f"{date:%Y%m%d}",
                       patient_id=phantom.subject_id, series_number=3)
        write_series(folder / session.session_id, stored, spec, rng)
    return folder


def test_the_subject_as_dicom_gives_the_same_numbers(phantom, reference, tmp_path):
    tree = write_dicom_subject(tmp_path / "dicom", phantom, np.random.default_rng(SEED))
    require_same(analyse(tree, phantom.injected_cells, TRANSPLANT_DATE.isoformat()), reference)


def test_dicom_geometry_puts_every_voxel_where_the_nifti_has_it(phantom, tmp_path):
    """The fixture itself: the DICOM loader returns the phantom's world grid."""
    from imaging.io import load
    session = phantom.sessions[0]
    array, spec = dicom_geometry(session.t2w)
    paths = write_series(tmp_path, array.astype(np.float32).round().astype(np.uint16), spec,
                         np.random.default_rng(0))
    loaded = load(paths).reorient(session.t2w.orientation)
    np.testing.assert_allclose(loaded.affine, session.t2w.affine, atol=1e-4)
    np.testing.assert_array_equal(loaded.array, np.asarray(session.t2w.array).round())
