"""Where training and validation cases come from: phantom seeds and the public real scans.

The split is fixed here and written into every model card:

* real scans used for training (cord masks only): sct_testing_data t2, t1, t2s and
  data-testing sub-unf01 T2w/T2star/T1w, sct_tutorial multi_subject sub-05 (MT-on);
* real scans held out for evaluation: every gm-challenge-data run-1 scan with its manual
  cord mask (4 axial T2*w scans, 3 sites);
* scans without a cord, for the locator only (every voxel background, so that "no cord
  in view" is learnt): the dcm_qa sagittal and coronal brain EPIs, the dcm_qa_fmap
  gradient echo, and nibabel's bundled ``anatomical.nii`` brain. The dcm_qa AXIAL EPI is
  kept out: the test that a brain gives "no cord found" runs on it;
* phantoms: subject seeds ``PHANTOM_TRAIN_BASE + i`` for training and
  ``PHANTOM_HOLDOUT_BASE + i`` for validation (never used in training). The locator also
  gets wide views of the same subjects (``wide_sessions``): the simulator's own fields of
  view (at most 34 x 72 x 90 mm) are smaller than one locator patch, while clinical
  sagittal and axial spine scans cover 160-300 mm with the cord anywhere in them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import nibabel as nib
import numpy as np

from imaging.atomic import write_text_atomic
from imaging.io import load
from imaging.volume import LabelVolume, Volume
from models.input import image_for_model
from models.card import ModelCard
from models.training.dataset import (RealScan, TrainingCase, build_case, cache_key,
                                     load_cached_case, save_case, soft_targets_from_fractions)

log = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHANTOM_TRAIN_BASE = 1000
PHANTOM_HOLDOUT_BASE = 900000

# The public scans are of cords without a lesion (``RealScan.healthy``): the SCT testing and
# tutorial scans and the gm-challenge volunteers show none and annotate none, and
# sub-unf01's lesion mask is a dummy (../shared/data/README.md). Before this was used,
# seg-v2 labelled 30-60 % of the real T2*w and T1w cords as lesion (bright gray matter).
REAL_TRAIN = (
    RealScan("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz", "T2w",
             healthy=True),
    RealScan("sct_testing_data/t1/t1w.nii.gz", "sct_testing_data/t1/t1w_seg-manual.nii.gz", "T1w",
             healthy=True),
    RealScan("sct_testing_data/t2s/t2s.nii.gz", "sct_testing_data/t2s/t2s_seg.nii.gz", "T2starw",
             healthy=True),
    RealScan("data-testing/sub-unf01/anat/sub-unf01_T2w.nii.gz",
             "data-testing/derivatives/labels/sub-unf01/anat/sub-unf01_T2w_seg-manual.nii.gz", "T2w",
             healthy=True),
    RealScan("data-testing/sub-unf01/anat/sub-unf01_T2star.nii.gz",
             "data-testing/derivatives/labels/sub-unf01/anat/sub-unf01_T2star_seg-manual.nii.gz",
             "T2starw", healthy=True),
    RealScan("data-testing/sub-unf01/anat/sub-unf01_T1w.nii.gz",
             "data-testing/derivatives/labels/sub-unf01/anat/sub-unf01_T1w_seg-manual.nii.gz", "T1w",
             healthy=True),
    RealScan("sct_tutorial_data/multi_subject/data/sub-05/anat/sub-05_acq-MTon_MTS.nii.gz",
             "sct_tutorial_data/multi_subject/data/sub-05/anat/sub-05_acq-MTon_MTS_seg.nii.gz", "MT",
             healthy=True),
)
NEGATIVE_TRAIN = (
    "dcm_qa/Ref/sag_asc_36sl_19.nii",
    "dcm_qa/Ref/cor_asc_36sl_13.nii",
    "dcm_qa_fmap/Ref/Si_2_gre_field_magph_e1.nii",
    "nibabel:anatomical.nii",
)
REAL_HOLDOUT = tuple(
    RealScan(f"gm-challenge-data/{s}/anat/{s}_run-1_T2starw.nii.gz",
             f"gm-challenge-data/derivatives/labels/{s}/anat/{s}_run-1_T2starw_seg-manual.nii.gz",
             "T2starw", healthy=True)
    for s in ("sub-9418", "sub-9584", "sub-9709Ses1", "sub-9709Ses2"))


def _cached(name: str, cache: Path | None, card: ModelCard, make, validation: bool) -> TrainingCase:
    if cache is not None:
        found = load_cached_case(name, cache, card, validation)
        if found is not None:
            return found
    case = make()
    if cache is not None:
        save_case(case, cache, card, validation)
    return case


def _read_mask(path: Path) -> LabelVolume:
    """A mask through nibabel directly: the gm-challenge masks have empty JSON sidecars,
    which ``imaging.load`` refuses."""
    image = nib.load(str(path))
    return LabelVolume((np.asanyarray(image.dataobj) > 0.5).astype(np.uint8), image.affine)


def real_scan_pair(scan: RealScan, root: Path):
    """(image Volume, cord-region fraction array) of one public scan."""
    image = load(root / scan.image, nonfinite="zero")
    mask = _read_mask(root / scan.cord_mask)
    if mask.spatial_shape != image.spatial_shape:
        mask = mask.resample_like(image)
    return image, (mask.array > 0).astype(np.float32)


def real_cases(scans: Sequence[RealScan], card: ModelCard, root: Path = SHARED_DATA,
               cache: Path | None = None, validation: bool = False) -> list[TrainingCase]:
    """Cases of the real scans present under ``root`` (missing ones skipped with a warning)."""
    cases = []
    for scan in scans:
        if not (root / scan.image).is_file() or not (root / scan.cord_mask).is_file():
            log.warning("real scan %s not found under %s: skipped", scan.image, root)
            continue

        def make(scan=scan):
            image, region = real_scan_pair(scan, root)
            zeros = np.zeros_like(region)
            targets = soft_targets_from_fractions(region, zeros, zeros)
            return build_case(scan.image, image, targets, "cord", card, validation)
        case = _cached(scan.image, cache, card, make, validation)
        cases.append(replace(case, annotation=real_annotation(scan, card)))
    return cases


def real_annotation(scan: RealScan, card: ModelCard) -> str:
    """What a real scan's target supervises: every label of a healthy cord for the
    segmenter ("healthy": its lesion and graft are known to be 0), else the cord region."""
    return "healthy" if scan.healthy and card.task == "segment" else "cord"


def _negative_path(name: str, root: Path) -> Path:
    if name.startswith("nibabel:"):
        import nibabel.tests
        return Path(nibabel.tests.__file__).parent / "data" / name.split(":", 1)[1]
    return root / name


def negative_cases(names: Sequence[str], card: ModelCard, root: Path = SHARED_DATA,
                   cache: Path | None = None) -> list[TrainingCase]:
    """Locator cases of scans without a cord (target: background everywhere); missing ones
    skipped with a warning. The segmenter has no use for them (it runs inside a cord box)."""
    if card.task != "locate":
        return []
    cases = []
    for name in names:
        path = _negative_path(name, root)
        if not path.is_file():
            log.warning("scan without a cord %s not found: skipped", path)
            continue

        def make(name=name, path=path):
            image = load(path, nonfinite="zero")
            zeros = np.zeros(image.spatial_shape, np.float32)
            return build_case(f"no cord: {name}", image,
                              soft_targets_from_fractions(zeros, zeros, zeros), "cord", card)
        cases.append(_cached(f"no cord: {name}", cache, card, make, False))
    return cases


def _subject_spec(seed: int):
    """(generator, label, PhantomSpec) of the training subject ``seed``: label-free or SPIO,
    15 % graft-free controls, 35 % research resolution; the generator continues from there."""
    from imaging.phantom import sample_spec
    rng = np.random.default_rng(seed)
    label = ("none", "spio")[int(rng.integers(2))]
    control = bool(rng.random() < 0.15)
    resolution = ("clinical", "research")[int(rng.random() < 0.35)]
    return rng, label, sample_spec(rng, label=label, control=control, resolution=resolution)


def phantom_sessions(seed: int, n_sessions: int | None = None) -> Iterator[tuple[str, object]]:
    """(name, SimulatedSession) of the phantom subject simulated from ``seed``."""
    for name, session, _ in _simulated_sessions(seed, n_sessions):
        yield name, session


def _simulated_sessions(seed: int, n_sessions: int | None = None):
    """(name, SimulatedSession, SessionSpec) of the phantom subject ``seed``."""
    from imaging.phantom import simulate_subject
    rng, label, spec = _subject_spec(seed)
    subject = simulate_subject(spec, rng, subject_id=f"sub-s{seed}")
    for session, session_spec in zip(subject.sessions[:n_sessions], spec.sessions):
        yield f"phantom seed {seed} {session.session_id} {label}", session, session_spec


# How far the baseline a graft-model case sees is misaligned on purpose: the pipeline's
# registration leaves up to about this much (its residual target is < 0.5 mm).
PRIOR_JITTER_MM = 0.5
PRIOR_JITTER_DEG = 1.0


def moved_baseline(baseline: Volume, baseline_spec, session_spec, reference: Volume,
                   rng: np.random.Generator) -> Volume:
    """The baseline image (``image_for_model``) on ``reference``'s grid, moved by the two
    sessions' known body poses and a small random misalignment (``PRIOR_JITTER_*``)."""
    from scipy.spatial.transform import Rotation

    from imaging.phantom.grid import scanner_from_body
    from imaging.resample import resample_to_grid
    jitter = np.eye(4)
    jitter[:3, :3] = Rotation.from_rotvec(
        np.radians(rng.uniform(-PRIOR_JITTER_DEG, PRIOR_JITTER_DEG, 3)) / np.sqrt(3)).as_matrix()
    jitter[:3, 3] = rng.uniform(-PRIOR_JITTER_MM, PRIOR_JITTER_MM, 3) / np.sqrt(3)
    image = image_for_model(baseline)
    move = scanner_from_body(session_spec) @ jitter @ np.linalg.inv(scanner_from_body(baseline_spec))
    placed = Volume(np.asarray(image.array, np.float32), move @ image.affine)
    return resample_to_grid(placed, reference.spatial_shape, reference.affine, order=1)


def _with_baselines(seed: int):
    """(name, SimulatedSession, {contrast: baseline on that session's grid}) of every session
    of seed ``seed``; the baseline itself gets its own (jittered) copy."""
    sessions = list(_simulated_sessions(seed))
    _, base, base_spec = sessions[0]
    rng = np.random.default_rng([seed, 3])
    for name, session, spec in sessions:
        priors = {}
        for contrast, image, base_image in (("T2w", session.t2w, base.t2w),
                                            ("T2starw", session.t2starw, base.t2starw)):
            if image is not None and base_image is not None:
                priors[contrast] = moved_baseline(base_image, base_spec, spec, image, rng)
        yield name, session, priors


# Wide views for the locator, per plane: field of view (R, A, S) ranges in mm, how far the
# view's centre may sit off the cord (mm per axis), and a coarse resolution (in-plane,
# slice; the locator sees 2 mm voxels anyway, and coarse voxels simulate fast).
WIDE_FOV_MM = {"sagittal": ((40.0, 80.0), (160.0, 280.0), (160.0, 300.0)),
               "axial": ((120.0, 220.0), (120.0, 220.0), (40.0, 120.0))}
WIDE_SHIFT_MM = {"sagittal": (15.0, 50.0, 30.0), "axial": (40.0, 40.0, 20.0)}
WIDE_RESOLUTION_MM = ((0.7, 1.0), (2.0, 4.0))


def wide_sessions(seed: int, n_views: int) -> Iterator[tuple[str, object]]:
    """(name, SimulatedSession) of ``n_views`` wide views (alternating sagittal and axial)
    of the phantom subject ``seed`` describes, at randomly drawn post-injection sessions.

    The subject is drawn as in ``phantom_sessions``; the views' own draws come from a
    second generator keyed by the seed, so adding views changes no other case."""
    from imaging.phantom import simulate_subject
    _, label, spec = _subject_spec(seed)
    views = np.random.default_rng([seed, 1])
    for index in range(n_views):
        plane = ("sagittal", "axial")[index % 2]
        base = spec.sessions[int(views.integers(len(spec.sessions)))]
        session = replace(
            base, plane=plane, inplane_mm=float(views.uniform(*WIDE_RESOLUTION_MM[0])),
            slice_mm=float(views.uniform(*WIDE_RESOLUTION_MM[1])),
            fov_mm=tuple(float(views.uniform(*r)) for r in WIDE_FOV_MM[plane]),
            fov_shift_mm=tuple(float(views.uniform(-m, m)) for m in WIDE_SHIFT_MM[plane]))
        view_rng = np.random.default_rng([seed, 2, index])
        simulated = simulate_subject(replace(spec, sessions=(session,)), view_rng,
                                     subject_id=f"sub-s{seed}").sessions[0]
        yield f"phantom seed {seed} wide {plane} {index} {session.session_id} {label}", simulated


def session_targets(session) -> np.ndarray:
    """(4, ...) fractions of a phantom session (its cord/lesion/graft probsegs are disjoint)."""
    cord, lesion, graft = (np.asarray(v.array, np.float32) for v in
                           (session.cord_probseg, session.lesion_probseg, session.graft_probseg))
    return soft_targets_from_fractions(cord + lesion + graft, lesion, graft)


def phantom_cases(seeds: Sequence[int], card: ModelCard, cache: Path | None = None,
                  validation: bool = False, wide_views: int = 0,
                  with_baseline: bool = False) -> list[TrainingCase]:
    """Cases of every session of every seed: T2w and (when simulated) T2*w, both fully labelled.
    ``wide_views`` > 0: instead, that many wide views of each seed (``wide_sessions``).
    ``with_baseline``: every case carries the subject's pre-injection baseline of the same
    contrast as its ``prior``, moved onto its grid (``moved_baseline``).

    With a cache, each seed's case names are listed in ``seed-<seed>-<key>.txt`` (wide:
    ``wide<n>-<seed>-<key>.txt``, with baselines ``paired-...``) written after its cases, so
    a seed is rebuilt only when it was never finished.
    """
    cases = []
    prefix = f"wide{wide_views}" if wide_views else ("paired" if with_baseline else "seed")
    for seed in seeds:
        key = cache_key("", card, validation)
        index = None if cache is None else Path(cache) / f"{prefix}-{seed}-{key}.txt"
        if index is not None and index.is_file():
            names = index.read_text(encoding="utf-8").splitlines()
            loaded = [load_cached_case(n, cache, card, validation) for n in names]
            if all(c is not None for c in loaded):
                cases += loaded
                continue
        if wide_views:
            sessions = ((n, s, {}) for n, s in wide_sessions(seed, wide_views))
        elif with_baseline:
            sessions = _with_baselines(seed)
        else:
            sessions = ((n, s, {}) for n, s in phantom_sessions(seed))
        built = _phantom_subject_cases(sessions, card, validation, with_baseline)
        if index is not None:
            for case in built:
                save_case(case, cache, card, validation)
            write_text_atomic(index, "\n".join(c.name for c in built) + "\n")
        cases += built
    return cases


def _phantom_subject_cases(sessions, card: ModelCard, validation: bool,
                           with_baseline: bool = False) -> list[TrainingCase]:
    built = []
    suffix = " with baseline" if with_baseline else ""
    for name, session, priors in sessions:
        targets = session_targets(session)
        for contrast, image in (("T2w", session.t2w), ("T2starw", session.t2starw)):
            if image is None or contrast not in card.contrasts:
                continue
            built.append(build_case(f"{name} {contrast}{suffix}", image, targets, "full", card,
                                    validation, prior=priors.get(contrast)))
    return built
