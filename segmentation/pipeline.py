"""``analyze_subject``: every timepoint of one subject, from scans to survival and flags.

Steps per subject (DESIGN.md data flow):
1. load each timepoint's primary scan (T2w, else T2*w) as a Volume;
2. segment it (locator, then the fine model in a box around the cord);
3. register the pre-injection baseline onto each later timepoint (rigid, cord-masked) and
   remove from the graft probability what the baseline already showed (hemorrhage, cyst);
   with a graft model that takes the baseline (``ModelCard.takes_baseline``) the
   timepoint's graft is segmented again, the graft model seeing the registered baseline as
   its second channel (``segmentation.baseline_pairing``; the segmenter's output of the
   first pass is reused, except under TTA); the baseline itself is paired with
   itself, and a timepoint whose registration failed keeps its first, baseline-free pass;
4. quantify each timepoint (partial-volume graft volume with its interval, cord, lesion);
   the interval calibrated to the coverage the models have on held-out phantoms where the
   segmenter's card holds a calibration (``segmentation.interval_calibration``; the
   result's assumptions say which, or that it is not calibrated); its cord SNR
   (``segmentation.image_quality``), flagged below ``config.min_snr``;
5. label-free surviving fraction and cells, the fitted survival curve, and the safety flags.
Quantities are measured in each timepoint's own space (a rigid move changes no volume);
only the baseline's look-alike map is moved.

Label-free estimates run for every subject. For label 'spio' subjects the iron (delta-R2*
of each session's multi-echo T2*w against the registered baseline) and for '19f' subjects
the 19F count (acq-19F image against a reference tube found on it) are added per timepoint
(``segmentation.labelled``, which documents the region used: the injection neighbourhood,
not only the graft label). Each timepoint's baseline registration is kept
(``TimepointResult.transform``) and written by ``subject_outputs``.

Stages: ``analyze_subject(on_stage=...)`` and ``run_subject(on_stage=...)`` call the given
function with the stage about to start, in order: "reading the study" (run_subject only),
"segmenting ses-X" per session, "registering ses-X" (later sessions, when a baseline is
usable), "graft against the baseline ses-X" (after it, with a graft model that takes the
baseline), "quantifying ses-X", "SPIO estimates" / "19F estimates" (labelled subjects),
"survival fit and flags", "writing outputs" (run_subject only). It is for progress
display; nothing depends on what it does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from imaging.errors import AnalysisError, GraftwatchError, RegistrationError
from imaging.study import Subject, Timepoint
from imaging.volume import LabelVolume, Volume
from segmentation.cells import CellEstimate, label_free
from segmentation.config import AnalysisConfig
from segmentation.flags import (Flag, growth_flags, image_quality_flags, lingering_iron_flags,
                                lost_graft_flags, no_baseline_flags, registration_flags)
from segmentation.image_quality import cord_snr
from segmentation.injection_site import LabelledInput, LabelledResult
from segmentation.interval_calibration import calibrated, card_calibrations
from segmentation.labelled import labelled_estimates
from segmentation.probability_calibration import (calibrated_fractions,
                                                  card_probability_calibrations)
from segmentation.provenance import ScanSource, scan_source, subject_provenance
from segmentation.quantify import (GRAFT, LESION, GraftMeasurement, TimepointMetrics,
                                   quantify_timepoint)
from segmentation.records import json_safe
from segmentation.survival import SurvivalFit, fit_survival

log = logging.getLogger(__name__)

PRIMARY_CONTRASTS = ("T2w", "T2starw")
LABEL_CONTRASTS = ("T2starw", "19F")   # read by the SPIO / 19F estimates

StageCallback = Callable[[str], None]   # called with the stage about to start
LABEL_STAGES = {"spio": "SPIO estimates", "19f": "19F estimates"}


@dataclass(frozen=True)
class PipelineOptions:
    """How a subject is run (the command line's choices); picklable for worker processes."""

    device: str = "auto"
    model: str | None = None
    graft: str | None = None        # graft model: None = the segmenter's paired one, "none", a name
    tta: bool = False
    include_phi: bool = False
    write_report: bool = True
    transplant_date: str | None = None
    seed: int = 0
    models_dir: Path | None = None   # read the models from this folder (default: the shipped ones)


@dataclass(frozen=True, eq=False)
class TimepointImages:
    """The volumes behind one timepoint's numbers (for writers and reports; not in JSON)."""

    image: Volume
    labels: LabelVolume
    graft_probability: Volume


@dataclass(frozen=True, eq=False)
class TimepointResult:
    session_id: str
    days_post_transplant: float
    is_baseline: bool
    scan: ScanSource   # the analysed file or DICOM series
    metrics: TimepointMetrics
    estimate: CellEstimate
    registration_residual_mm: float | None
    lookalike_note: str
    device: str
    images: TimepointImages = field(repr=False)
    labelled: LabelledResult | None = None   # SPIO or 19F estimate (label 'spio' / '19f')
    transform: Any = None   # imaging.rigid.RigidTransform, this timepoint -> baseline points
    cord_snr: float | None = None   # segmentation.image_quality.cord_snr (None: too little cord)

    def measurement(self) -> GraftMeasurement:
        return self.metrics.measurement(self.session_id, self.days_post_transplant)


@dataclass(frozen=True, eq=False)
class SubjectResult:
    subject_id: str
    config: AnalysisConfig
    timepoints: tuple[TimepointResult, ...]
    survival: SurvivalFit
    flags: tuple[Flag, ...]
    assumptions: tuple[str, ...]
    provenance: Mapping[str, Any]
    failed_sessions: tuple[tuple[str, float], ...] = ()   # (session_id, days) not analysed

    def to_table(self) -> list[dict[str, Any]]:
        """One row per timepoint with the timepoints.tsv columns."""
        rows = []
        for tp in self.timepoints:
            e, m = tp.estimate, tp.metrics
            rows.append({
                "session_id": tp.session_id, "days_post_transplant": tp.days_post_transplant,
                "graft_volume_mm3": m.graft_volume_mm3,
                "graft_volume_ci_low_mm3": m.graft_volume_ci_low_mm3,
                "graft_volume_ci_high_mm3": m.graft_volume_ci_high_mm3,
                "surviving_fraction": e.surviving_fraction,
                "surviving_fraction_ci_low": e.surviving_fraction_ci_low,
                "surviving_fraction_ci_high": e.surviving_fraction_ci_high,
                "estimated_surviving_cells": e.value,
                "cord_volume_mm3": m.cord_volume_mm3, "lesion_volume_mm3": m.lesion_volume_mm3,
                "flags": ";".join(f.code for f in self.flags if f.timepoint == tp.session_id),
                "graft_volume_hard_mm3": m.graft_volume_hard_mm3,
                "cord_volume_hard_mm3": m.cord_volume_hard_mm3,
                "lesion_volume_hard_mm3": m.lesion_volume_hard_mm3,
                **dict(zip(("graft_volume_model_ci_low_mm3", "graft_volume_model_ci_high_mm3"),
                           m.model_interval())),
                "estimated_cells_ci_low": e.ci_low, "estimated_cells_ci_high": e.ci_high,
                "cell_estimate_method": e.method, "cell_estimate_status": e.status,
                "lesion_length_mm": m.lesion_length_mm, "lesion_max_width_mm": m.lesion_max_width_mm,
                "cord_csa_mm2": m.cord_csa_mm2,
                "registration_residual_mm": tp.registration_residual_mm,
                "cord_snr": tp.cord_snr, "device": tp.device,
                **_labelled_columns(tp.labelled),
            })
        for session_id, days in self.failed_sessions:
            rows.append({"session_id": session_id, "days_post_transplant": days,
                         "flags": ";".join(f.code for f in self.flags if f.timepoint == session_id)})
        return sorted(rows, key=lambda r: r["days_post_transplant"])

    def to_json(self) -> dict[str, Any]:
        return json_safe({
            "subject_id": self.subject_id, "config": self.config.to_dict(),
            "survival": self.survival, "flags": [f.to_dict() for f in self.flags],
            "assumptions": list(self.assumptions),
            "failed_sessions": [{"session_id": sid, "days_post_transplant": d}
                                for sid, d in self.failed_sessions],
            "timepoints": [{"session_id": tp.session_id, "days_post_transplant": tp.days_post_transplant,
                            "scan": tp.scan.to_dict(), "metrics": tp.metrics.to_dict(),
                            "cell_estimate": tp.estimate, "lookalikes": tp.lookalike_note,
                            "labelled_estimate": tp.labelled and tp.labelled.to_dict(),
                            "registration_residual_mm": tp.registration_residual_mm,
                            "cord_snr": tp.cord_snr,
                            "transform": tp.transform and tp.transform.to_dict()}
                           for tp in self.timepoints],
            "provenance": dict(self.provenance),
        })


def _labelled_columns(labelled: LabelledResult | None) -> dict[str, Any]:
    """iron_ug / fluorine_atoms and estimated_cells_<method> columns of a labelled estimate."""
    if labelled is None:
        return {}
    e = labelled.estimate
    method = e.method
    row = {f"estimated_cells_{method}": e.value, f"estimated_cells_{method}_ci_low": e.ci_low,
           f"estimated_cells_{method}_ci_high": e.ci_high,
           f"surviving_fraction_{method}": e.surviving_fraction,
           f"cell_estimate_{method}_status": e.status}
    if method == "spio":
        iron = labelled.iron
        row.update(zip(("iron_ug", "iron_ci_low_ug", "iron_ci_high_ug"),
                       (None,) * 3 if iron is None else (iron.iron_ug, iron.ci_low_ug, iron.ci_high_ug)))
    else:
        row.update(zip(("fluorine_atoms", "fluorine_atoms_ci_low", "fluorine_atoms_ci_high"),
                       labelled.fluorine_atoms or (None,) * 3))
    return row


def primary_scan(timepoint: Timepoint):
    for contrast in PRIMARY_CONTRASTS:
        if contrast in timepoint.scans:
            return timepoint.scans[contrast]
    raise AnalysisError(f"session {timepoint.label}: no T2w or T2*w scan (found "
                        f"{sorted(timepoint.scans)}); graftwatch needs one of {PRIMARY_CONTRASTS}")


@dataclass(frozen=True, eq=False)
class _Segmented:
    timepoint: Timepoint
    image: Volume
    labels: LabelVolume
    graft_probability: Volume
    samples: np.ndarray | None
    device: str
    cord_probability: Volume      # P(label >= 1): the partial-volume cord region
    lesion_probability: Volume
    fine_pass: Any = None   # segmentation.inference.FinePass, kept for the paired second pass


def _segment_timepoint(tp: Timepoint, models, device, tta: bool,
                       is_baseline: bool = False) -> _Segmented:
    """Segment one timepoint's primary scan; the baseline is its own baseline (a graft model
    that takes one sees that nothing changed: what the baseline shows is not graft)."""
    from imaging.io import load
    scan = primary_scan(tp)
    image = load(scan.path)
    # a later session is segmented again with the registered baseline: keep the segmenter's
    # output for that pass (not under TTA: 8 passes per session would be held in memory)
    keep = _takes_baseline(models) and not is_baseline and not tta
    return _segmented(tp, image, models, device, tta, image if is_baseline else None,
                      keep_fine_pass=keep)


def _segmented(tp: Timepoint, image: Volume, models, device, tta: bool,
               baseline: Volume | None, keep_fine_pass: bool = False,
               reuse=None) -> _Segmented:
    from segmentation.inference import segment
    seg_model, locator, graft_model = _model_triple(models)
    result = segment(image, model=seg_model, locator=locator, graft=graft_model, device=device,
                     tta=tta, baseline=baseline, keep_fine_pass=keep_fine_pass, reuse=reuse)
    probs, affine = result.probabilities.array, result.probabilities.affine
    return _Segmented(tp, image, result.labels, Volume(probs[..., GRAFT], affine),
                      result.graft_probability_samples, result.device,
                      cord_probability=Volume(1.0 - probs[..., 0], affine),
                      lesion_probability=Volume(probs[..., LESION], affine),
                      fine_pass=result.fine_pass)


def _takes_baseline(models) -> bool:
    graft_model = _model_triple(models)[2]
    return graft_model is not None and graft_model.card.takes_baseline


def _model_triple(models) -> tuple:
    """(segmenter, locator, graft model or None) from 2 or 3 loaded models."""
    if len(models) not in (2, 3):
        raise AnalysisError(f"models: {len(models)} given; expected (segmenter, locator) or "
                            "(segmenter, locator, graft model)")
    return tuple(models) + (None,) * (3 - len(models))


def load_pipeline_models(device, model: str | None = None, load=None,
                         graft: str | None = None, models_dir: Path | None = None) -> tuple:
    """(segmenter, locator[, graft model]) loaded on ``device`` (``load(name, device)``: how to
    load one, e.g. a worker's cache; default load_model from ``models_dir``, else the shipped
    weights). ``graft``: None or "paired" -> the segmenter's paired graft model
    (``models.registry.graft_model_name``), "none" -> none, else a graft model's name."""
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, graft_model_name, load_model
    load = load or (lambda name, on: load_model(name, on, models_dir))
    segmenter = model or DEFAULT_MODEL
    graft_name = graft_model_name(graft, segmenter)
    names = (segmenter, DEFAULT_LOCATOR) + (() if graft_name is None else (graft_name,))
    return tuple(load(name, device) for name in names)


def folder_models(device: str, model: str | None, graft: str | None,
                  models_dir: Path | None) -> tuple | None:
    """The pipeline's models loaded from ``models_dir`` on ``device`` ("auto" resolved), or
    None without a folder (``analyze_subject`` then loads the shipped ones itself)."""
    if models_dir is None:
        return None
    from segmentation.device import resolve_device
    return load_pipeline_models(resolve_device(device), model, graft=graft,
                                models_dir=models_dir)


def _segmenter_and_graft(models) -> tuple:
    """(the segmenter, the graft model's name or None): what a card's calibrations are keyed by."""
    segmenter, _, graft_model = _model_triple(models)
    return segmenter, None if graft_model is None else graft_model.card.name


def interval_calibrations(models) -> dict:
    """The graft-volume interval calibrations (by resolution class) the segmenter's card holds
    for the graft model in use (``segmentation.interval_calibration``)."""
    segmenter, graft = _segmenter_and_graft(models)
    return card_calibrations(segmenter.card.validation, graft)


def fraction_calibrations(models) -> dict:
    """The graft probability -> fraction curves (by resolution class) the segmenter's card
    holds for the graft model in use (``segmentation.probability_calibration``)."""
    segmenter, graft = _segmenter_and_graft(models)
    return card_probability_calibrations(segmenter.card.validation, graft)


def _graft_fractions(s: _Segmented, curves) -> tuple[_Segmented, str]:
    """The timepoint with graft fractions (and its samples') for its graft probabilities."""
    fractions, samples, note = calibrated_fractions(s.graft_probability.array, s.samples, curves,
                                                    s.labels.spacing)
    return replace(s, graft_probability=s.graft_probability.with_array(fractions),
                   samples=samples), note


def _baseline_index(timepoints: list[Timepoint]) -> int | None:
    """Index of the pre-injection baseline (the last session before day 0)."""
    days = [t.days for t in timepoints]
    pre = [i for i, d in enumerate(days) if (d or 0) < 0]
    return max(pre, key=lambda i: days[i]) if pre else None


def _baseline_lookalikes(target: _Segmented, baseline: _Segmented, abnormal: Volume):
    """Baseline look-alike map moved onto ``target``'s grid, and the registration."""
    from imaging.registration import apply_transform
    from segmentation.baseline_pairing import register_baseline
    transform = register_baseline(target.image, target.labels, baseline.image, baseline.labels)
    moved = apply_transform(abnormal, transform, target.labels)
    return Volume(np.clip(moved.array, 0.0, 1.0), moved.affine), transform


def _with_baseline(target: _Segmented, baseline: _Segmented, transform, models, device,
                   tta: bool) -> _Segmented:
    """``target`` segmented again, its graft model seeing the registered baseline (the
    segmenter's output of the first pass reused where it was kept)."""
    from segmentation.baseline_pairing import baseline_on_grid
    moved = baseline_on_grid(baseline.image, transform, target.image)
    return _segmented(target.timepoint, target.image, models, device, tta, moved,
                      reuse=target.fine_pass)


def analyze_subject(subject: Subject, config: AnalysisConfig, device: str = "auto",
                    model: str | None = None, tta: bool = False,
                    subject_id: str | None = None, models=None,
                    on_stage: StageCallback | None = None,
                    graft: str | None = None) -> SubjectResult:
    """Analyse every timepoint of ``subject``; see the module docstring.

    ``subject_id`` names the outputs (default: the BIDS ``sub-`` label of the subject).
    ``models``: already loaded (segmenter, locator[, graft model]) on ``device``, so a batch worker loads
    them once, not per subject; by default they are loaded here (``model`` and ``graft`` name
    the segmenter and the graft model, see ``load_pipeline_models``).
    """
    from segmentation.device import resolve_device
    from segmentation.lookalikes import exclude_lookalikes
    if not subject.timepoints:
        raise AnalysisError(f"{subject.root}: subject {subject.subject_id} has no timepoints")
    torch_device = resolve_device(device)
    models = models or load_pipeline_models(torch_device, model, graft=graft)
    segmented, failed = _segment_all(subject, models, torch_device, tta, on_stage)
    base_i = _baseline_index([s.timepoint for s in segmented])
    abnormal, baseline_flags = _baseline_map(segmented, base_i)
    flags: list[Flag] = [*no_baseline_flags(base_i is not None), *baseline_flags,
                         *(f for _, _, f in failed)]
    calibrations, curves = interval_calibrations(models), fraction_calibrations(models)
    results, interval_notes = [], []
    for i, s in enumerate(segmented):
        residual, moved, transform = None, None, None
        if abnormal is not None and i != base_i:
            _report(on_stage, f"registering {s.timepoint.label}")
            try:
                moved, transform = _baseline_lookalikes(s, segmented[base_i], abnormal)
                residual = float(transform.residual_mm)
                if _takes_baseline(models):
                    _report(on_stage, f"graft against the baseline {s.timepoint.label}")
                    s = _with_baseline(s, segmented[base_i], transform, models, torch_device, tta)
            except RegistrationError as exc:
                log.warning("%s %s: %s", subject.subject_id, s.timepoint.label, exc)
                residual = float("nan")
            flags.extend(registration_flags(s.timepoint.label, residual,
                                            config.max_registration_residual_mm))
        _report(on_stage, f"quantifying {s.timepoint.label}")
        moved = _still_there(moved, s)
        if config.calibrated_fractions:   # the written probseg is then the fractions too
            s, note = _graft_fractions(s, curves)
            interval_notes += [note] if note not in interval_notes else []
        exclusion = exclude_lookalikes(s.graft_probability, moved, s.samples)
        metrics = quantify_timepoint(s.labels, exclusion.graft_probability,
                                     exclusion.graft_probability_samples, config.confidence,
                                     s.cord_probability, s.lesion_probability)
        if config.calibrated_intervals:
            metrics, note = calibrated(metrics, calibrations, s.labels.spacing, config.confidence,
                                     tta)
            interval_notes += [note] if note not in interval_notes else []
        if moved is None and i != base_i:
            metrics = exclusion.widened(metrics)
        snr = cord_snr(s.image, s.labels)
        if snr is not None:
            flags.extend(image_quality_flags(s.timepoint.label, snr, config.min_snr))
        results.append((s, metrics, residual, exclusion.note, transform, snr))
        segmented[i] = replace(segmented[i], fine_pass=None)   # used: free its memory
    measurements = [m.measurement(s.timepoint.label, s.timepoint.days or 0.0)
                    for s, m, *_ in results]
    # the model's own intervals: for changes within the subject (growth, iron vs volume)
    precision = [m.precision_measurement(s.timepoint.label, s.timepoint.days or 0.0)
                 for s, m, *_ in results]
    estimates = label_free(measurements, config.injected_cells, config.generator(),
                           config.confidence, config.min_graft_volume_mm3,
                           config.bootstrap_samples)
    if config.label in LABEL_STAGES:
        _report(on_stage, LABEL_STAGES[config.label])
    labelled = _labelled(results, base_i, precision, config)
    _report(on_stage, "survival fit and flags")
    flags += [*_subject_flags(measurements, precision, config),
              *lingering_iron_flags([r.estimate for r in labelled])]
    timepoints = tuple(
        TimepointResult(s.timepoint.label, float(s.timepoint.days or 0.0), i == base_i,
                        scan_source(primary_scan(s.timepoint), subject.root),
                        m, e, r, note, s.device, TimepointImages(s.image, s.labels, s.graft_probability),
                        labelled[i] if labelled else None, transform, snr)
        for i, ((s, m, r, note, transform, snr), e) in enumerate(zip(results, estimates)))
    survival = fit_survival([e.days_post_transplant for e in estimates],
                            [e.surviving_fraction for e in estimates],
                            [e.surviving_fraction_ci_low for e in estimates],
                            [e.surviving_fraction_ci_high for e in estimates],
                            config.generator(), config.confidence, config.bootstrap_samples)
    return SubjectResult(subject_id or output_id(subject), config, timepoints, survival, tuple(flags),
                         _assumptions([*estimates, *(r.estimate for r in labelled)], labelled)
                         + tuple(interval_notes),
                         _provenance(subject, models, segmented, torch_device),
                         tuple((label, days) for label, days, _ in failed))


def _still_there(moved: Volume | None, s: _Segmented) -> Volume | None:
    """The registered baseline look-alikes the timepoint still shows; all of them when it has
    no normal cord to judge its intensities by."""
    from segmentation.lookalikes import persisting
    if moved is None:
        return None
    try:
        return persisting(moved, _one_echo(s.image), s.labels)
    except AnalysisError as exc:
        log.warning("%s: %s; every baseline look-alike is excluded", s.timepoint.label, exc)
        return moved


def _one_echo(image: Volume) -> Volume:
    """A 3-D image: the first echo of a multi-echo series."""
    return image.echo(0) if image.array.ndim == 4 else image


def _baseline_map(segmented, base_i: int | None) -> tuple[Volume | None, list[Flag]]:
    """The baseline's look-alike map; a baseline without a usable cord is a flag, not a crash."""
    from segmentation.lookalikes import baseline_abnormality
    if base_i is None:
        return None, []
    b = segmented[base_i]
    try:
        return baseline_abnormality(_one_echo(b.image), b.labels), []
    except AnalysisError as exc:
        return None, [Flag("baseline_unusable", "warning", b.timepoint.label,
                           f"baseline {b.timepoint.label} cannot be used ({exc}): look-alikes "
                           "were not excluded and nothing was registered to it")]


def _report(on_stage: StageCallback | None, stage: str) -> None:
    if on_stage is not None:
        on_stage(stage)


def _segment_all(subject: Subject, models, device, tta: bool, on_stage: StageCallback | None):
    """Segment every readable timepoint; an unreadable one becomes a flag, not a failure."""
    segmented, failed = [], []
    base_i = _baseline_index(subject.timepoints) if _takes_baseline(models) else None
    for i, tp in enumerate(subject.timepoints):
        _report(on_stage, f"segmenting {tp.label}")
        try:
            segmented.append(_segment_timepoint(tp, models, device, tta, i == base_i))
        except GraftwatchError as exc:
            log.warning("%s %s not analysed: %s", subject.subject_id, tp.label, exc)
            failed.append((tp.label, float(tp.days or 0.0),
                           Flag("session_unreadable", "warning", tp.label,
                                f"session {tp.label} could not be analysed: {exc}")))
    if not segmented:
        reasons = "; ".join(f.message for _, _, f in failed)
        raise AnalysisError(f"{subject.root}: no session of {subject.subject_id} could be "
                            f"analysed ({reasons})")
    return segmented, failed


def _labelled(results, base_i: int | None, measurements,
              config: AnalysisConfig) -> tuple[LabelledResult, ...]:
    """SPIO / 19F estimates per timepoint (() for label-free subjects)."""
    inputs = [LabelledInput(s.timepoint, s.labels, s.graft_probability, transform)
              for s, _, _, _, transform, _ in results]
    return labelled_estimates(inputs, base_i, measurements, config)


def _subject_flags(measurements, precision, config: AnalysisConfig) -> list[Flag]:
    """Growth against the model's own intervals (``precision``: a bias the same at every
    timepoint is no growth); size and loss against the reported (calibrated) ones."""
    from segmentation.flags import oversize_flags
    return [*growth_flags(precision, config.confidence, config.repeatability_cv,
                          config.growth_threshold_fraction, config.growth_critical_after_days,
                          config.min_graft_volume_mm3, reported=measurements),
            *oversize_flags(measurements, config.injected_cells,
                            config.packing_density_cells_per_mm3, config.growth_critical_after_days),
            *lost_graft_flags(measurements, config.min_graft_volume_mm3)]


def _assumptions(estimates, labelled) -> tuple[str, ...]:
    seen: list[str] = []
    for e in estimates:
        seen += [a for a in e.assumptions if a not in seen]
    if labelled:
        seen.append(f"{labelled[0].estimate.method} region: {labelled[0].region}")
    return tuple(seen)


def _provenance(subject: Subject, models, segmented, device) -> dict[str, Any]:
    scans = {s.timepoint.label: primary_scan(s.timepoint) for s in segmented}
    label_scans = {s.timepoint.label: {c: scan for c, scan in s.timepoint.scans.items()
                                       if c in LABEL_CONTRASTS} for s in segmented}
    return subject_provenance(subject, models, scans, label_scans, device)


def output_id(subject: Subject) -> str:
    """The ``sub-X`` name a subject's outputs go under."""
    sid = str(subject.subject_id)
    return sid if sid.startswith("sub-") else f"sub-{sid}"


def config_for(subject: Subject, injected_cells: float | None = None,
               label: str | None = None) -> AnalysisConfig:
    """AnalysisConfig from explicit values, else the subject's participants.tsv row."""
    row = subject.participant
    cells = injected_cells
    if cells is None and row.get("injected_cells") not in (None, "", "n/a"):
        cells = float(row["injected_cells"])
    if cells is not None and cells <= 0:
        cells = None  # a graft-free control: fractions are still measured, no cell count
    label = label or (row.get("label") if row.get("label") not in (None, "", "n/a") else "none")
    return AnalysisConfig(injected_cells=cells, label=str(label))


def run_subject(entry, out_dir: Path, options: PipelineOptions, models=None,
                on_stage: StageCallback | None = None) -> None:
    """Batch job: discover, analyse and write one cohort entry's outputs (``models``: see
    ``analyze_subject``; ``on_stage``: the module docstring's stages)."""
    from imaging.study import discover_subject
    from segmentation.subject_outputs import write_subject_outputs
    date = entry.transplant_date or options.transplant_date
    _report(on_stage, "reading the study")
    subject = discover_subject(entry.path, transplant_date=date)
    config = config_for(subject, entry.injected_cells, entry.label)
    if models is None:
        models = folder_models(options.device, options.model, options.graft, options.models_dir)
    result = analyze_subject(subject, config, device=options.device, model=options.model,
                             tta=options.tta, subject_id=entry.subject_id, models=models,
                             on_stage=on_stage, graft=options.graft)
    _report(on_stage, "writing outputs")
    write_subject_outputs(result, Path(out_dir), include_report=options.write_report,
                          include_phi=options.include_phi, subject=subject)


def subject_outputs_complete(entry, out_dir: Path) -> bool:
    from segmentation.outputs import outputs_complete
    return outputs_complete(out_dir, entry.subject_id)


__all__ = ["GraftwatchError", "PipelineOptions", "SubjectResult", "TimepointResult",
           "analyze_subject", "config_for", "run_subject", "subject_outputs_complete"]
