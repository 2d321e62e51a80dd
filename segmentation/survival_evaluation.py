"""How well ``analyze_subject`` recovers phantom truth: the table of issue 5's "what it must show".

``write_cohort`` simulates held-out subjects, one seed each (``seed + i``; training uses
seeds 1000+ and validation 900000+, the default here is 700000+), cycling through
``CASES`` so that even four subjects hold a label-free decay, a SPIO total loss (iron that
outlives its cells), a 19F decay and a graft-free control; overgrowth comes fifth.
``compare`` turns one analysed subject and its truth into per-timepoint records and
``summarise`` reduces them to the numbers the issue asks for. Nothing is read from the
truth during the analysis itself: truth files are read here, after it.

Errors: surviving fraction in percentage points (|estimate - truth| x 100). The label-free
fraction is defined against the first post-injection scan, so ``fraction_error_points``
compares it with truth / truth at that scan, at the later scans (the first is 1 by
definition, and so are its interval and coverage); ``fraction_error_vs_injected_points``
compares with living / injected cells at every post-injection scan (what the assumption
"all injected cells were alive at the first scan" costs). Volumes, iron and 19F atoms in %
of truth; for 19F also how often the count's 95 % interval holds the true atoms and its
noise floor (``_noise_floor``: the median error the image noise alone makes, from each
count's own interval). A timepoint whose estimate is not given (not quantifiable or
below detection) has no error; it is counted as not reported, and its interval covers the
truth only when it has one that does (``with_interval`` counts the timepoints that have one).
Growth flags (graft_growth or graft_larger_than_injected, any severity) are counted per
subject: ``overgrowth_flagged`` among the overgrowth subjects, ``growth_flag_without_growth``
among all the others (decay, total loss and controls, whose true graft never grows): a
false tumour signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from imaging.tsv import read_tsv
from segmentation.records import two_sided_z

CASES = (("none", "decay", False), ("spio", "total_loss", False), ("19f", "decay", False),
         ("none", "decay", True), ("none", "overgrowth", False), ("spio", "decay", False))
NORMAL_MEDIAN_ABS = 0.6745   # median of |z| for a standard normal z
LINGERING_RATIO = 1.5   # truth iron / iron per cell above this x living cells: lingering iron


def write_cohort(out: Path, n_subjects: int, seed: int, resolution: str,
                 n_sessions: int) -> Path:
    """Simulated BIDS study (truth under derivatives/phantom-truth), subject i from seed + i."""
    from imaging.phantom import sample_spec, simulate_subject
    from imaging.phantom.bids_writer import write_subject
    from imaging.phantom.dataset import finish_dataset, summary
    summaries = []
    for i in range(n_subjects):
        label, survival, control = CASES[i % len(CASES)]
        rng = np.random.default_rng(seed + i)
        spec = sample_spec(rng, label=label, control=control, resolution=resolution,
                           survival=survival, n_sessions=n_sessions)
        subject = simulate_subject(spec, rng, subject_id=f"sub-{i + 1:03d}")
        write_subject(Path(out), subject)
        summaries.append(summary(subject))
    return finish_dataset(Path(out), summaries, seed)


@dataclass(frozen=True)
class Record:
    """One post-injection timepoint of one subject: estimate against truth."""

    subject_id: str
    session_id: str
    label: str
    survival_model: str
    control: bool
    truth_fraction: float | None          # living / injected cells
    truth_relative: float | None          # truth fraction / truth at the first post-injection scan
    is_reference: bool                    # the first post-injection scan (fraction 1 by definition)
    fraction: float | None
    fraction_ci: tuple[float | None, float | None]
    truth_volume_mm3: float
    volume_mm3: float | None
    volume_ci_mm3: tuple[float | None, float | None]
    truth_iron_ug: float
    iron_ug: float | None
    truth_fluorine_atoms: float
    fluorine_atoms: float | None
    fluorine_atoms_ci: tuple[float | None, float | None]
    truth_cells: float
    spio_cells: float | None
    spio_cells_ci: tuple[float | None, float | None]
    lingering_iron: bool
    growth_flagged: bool


def _number(value: Any) -> float | None:
    if value in (None, "", "n/a"):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def compare(table: Sequence[Mapping[str, Any]], flags: Iterable[str], subject_id: str,
            truth_rows: Sequence[Mapping[str, Any]], participant: Mapping[str, Any]) -> list[Record]:
    """Records for every post-injection timepoint (``table``: SubjectResult.to_table())."""
    rows = {r["session_id"]: r for r in table}
    grown = any(code in ("graft_growth", "graft_larger_than_injected") for code in flags)
    iron_per_cell_ug = (_number(participant.get("iron_pg_per_cell")) or 0.0) * 1e-6
    post = sorted((r for r in truth_rows if float(r["days_post_transplant"]) >= 0),
                  key=lambda r: float(r["days_post_transplant"]))
    reference = _number(post[0]["surviving_fraction"]) if post else None
    records = []
    for truth in post:
        fraction = _number(truth["surviving_fraction"])
        row = rows.get(truth["session_id"], {})
        cells = float(truth["surviving_cells"])
        iron = float(truth["iron_ug"])
        records.append(Record(
            subject_id, truth["session_id"], str(participant.get("label")),
            str(participant.get("survival_model")),
            str(participant.get("control")).lower() == "true",
            fraction, None if fraction is None or not reference else fraction / reference,
            truth is post[0], _number(row.get("surviving_fraction")),
            (_number(row.get("surviving_fraction_ci_low")),
             _number(row.get("surviving_fraction_ci_high"))),
            float(truth["graft_volume_mm3"]), _number(row.get("graft_volume_mm3")),
            (_number(row.get("graft_volume_ci_low_mm3")),
             _number(row.get("graft_volume_ci_high_mm3"))),
            iron, _number(row.get("iron_ug")), float(truth["fluorine_atoms"]),
            _number(row.get("fluorine_atoms")),
            (_number(row.get("fluorine_atoms_ci_low")), _number(row.get("fluorine_atoms_ci_high"))),
            cells, _number(row.get("estimated_cells_spio")),
            (_number(row.get("estimated_cells_spio_ci_low")),
             _number(row.get("estimated_cells_spio_ci_high"))),
            iron_per_cell_ug > 0 and iron > LINGERING_RATIO * cells * iron_per_cell_ug,
            grown))
    return records


def _point_errors(pairs: Iterable[tuple[float | None, float]]) -> list[float | None]:
    return [None if est is None else 100.0 * abs(est - truth) for est, truth in pairs]


def _relative_errors(pairs: Iterable[tuple[float | None, float]]) -> list[float | None]:
    return [None if est is None else 100.0 * abs(est - truth) / truth
            for est, truth in pairs if truth > 0]


def _stats(errors: Sequence[float | None]) -> dict[str, Any]:
    given = [e for e in errors if e is not None]
    return {"n": len(errors), "reported": len(given),
            "median": float(np.median(given)) if given else None,
            "worst": float(max(given)) if given else None}


def _noise_floor(counted: Sequence[Record]) -> dict[str, Any]:
    """The median error an unbiased 19F count with each count's own noise would have:
    0.674 x its relative sd (the upper half of its 95 % interval / 1.96 / the count; the
    lower half may be cut at 0), the median of |N(0, sd)|. A median error goal below it is
    out of reach on these images for any unbiased count of their signal."""
    floors = [100.0 * NORMAL_MEDIAN_ABS * (high - value) / (two_sided_z(0.95) * value)
              for value, (_, high) in ((r.fluorine_atoms, r.fluorine_atoms_ci) for r in counted)]
    return {"n": len(floors), "median": float(np.median(floors)) if floors else None}


def _covers(low: float | None, high: float | None, truth: float) -> bool:
    return low is not None and high is not None and low <= truth <= high


def _coverage(covered: Sequence[bool]) -> dict[str, Any]:
    return {"n": len(covered), "covered": int(sum(covered)),
            "rate": (sum(covered) / len(covered)) if covered else None}


def summarise(records: Sequence[Record]) -> dict[str, Any]:
    """The issue's numbers for one set of records (one resolution)."""
    grafted = [r for r in records if not r.control and r.truth_fraction is not None]
    later = [r for r in grafted if not r.is_reference and r.truth_relative is not None]
    covered = [_covers(*r.fraction_ci, r.truth_relative) for r in later]
    with_interval = sum(None not in r.fraction_ci for r in later)
    controls = sorted({r.subject_id for r in records if r.control})
    control_ok = [s for s in controls if all((r.volume_mm3 or 0.0) < 1.0 for r in records
                                             if r.subject_id == s)]
    overgrowth = sorted({r.subject_id for r in records if r.survival_model == "overgrowth"})
    steady = sorted({r.subject_id for r in records if r.survival_model != "overgrowth"})
    lingering = [r for r in records if r.label == "spio" and r.lingering_iron]
    counted = [r for r in records if r.label == "19f" and r.fluorine_atoms
               and r.truth_fluorine_atoms > 0 and None not in r.fluorine_atoms_ci]
    return {
        "fraction_error_points": _stats(_point_errors((r.fraction, r.truth_relative) for r in later)),
        "fraction_error_vs_injected_points": _stats(_point_errors(
            (r.fraction, r.truth_fraction) for r in grafted)),
        "fraction_ci_coverage": {**_coverage(covered), "with_interval": int(with_interval)},
        "graft_volume_error_percent": _stats(_relative_errors(
            (r.volume_mm3, r.truth_volume_mm3) for r in grafted)),
        "graft_volume_ci_coverage": _coverage(
            [_covers(*r.volume_ci_mm3, r.truth_volume_mm3) for r in grafted]),
        "fluorine_atoms_error_percent": _stats(_relative_errors(
            (r.fluorine_atoms, r.truth_fluorine_atoms) for r in records if r.label == "19f")),
        "fluorine_atoms_ci_coverage": _coverage(
            [_covers(*r.fluorine_atoms_ci, r.truth_fluorine_atoms) for r in counted]),
        "fluorine_noise_floor_percent": _noise_floor(counted),
        "iron_error_percent": _stats(_relative_errors(
            (r.iron_ug, r.truth_iron_ug) for r in records if r.label == "spio")),
        "controls_no_graft": {"n": len(controls), "passed": len(control_ok)},
        "overgrowth_flagged": {"n": len(overgrowth), "passed": len(
            {r.subject_id for r in records if r.survival_model == "overgrowth" and r.growth_flagged})},
        "growth_flag_without_growth": {"n": len(steady), "flagged": len(
            {r.subject_id for r in records if r.survival_model != "overgrowth" and r.growth_flagged})},
        "lingering_iron_not_counted": {"n": len(lingering), "passed": sum(
            r.spio_cells is None or _covers(*r.spio_cells_ci, r.truth_cells) for r in lingering)},
    }


def truth_of(study: Path, subject_id: str) -> tuple[list[dict], dict]:
    """The truth table and participants row of one simulated subject (after the analysis)."""
    truth = read_tsv(study / "derivatives" / "phantom-truth" / subject_id
                     / f"{subject_id}_truth.tsv")
    participants = {r["participant_id"]: r for r in read_tsv(study / "participants.tsv")}
    return truth, participants[subject_id]


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Plain-text table: one column per resolution."""
    names = list(summaries)
    lines = [f"{'':54}" + "".join(f"{n:>22}" for n in names)]

    def line(title: str, cells: list[str]) -> None:
        lines.append(f"{title:54}" + "".join(f"{c:>22}" for c in cells))

    def stat(key: str) -> None:
        line(f"{key} median / worst (k/n)", [
            f"{_cell(summaries[n][key]['median'], '.1f')} / "
            f"{_cell(summaries[n][key]['worst'], '.1f')} "
            f"({summaries[n][key]['reported']}/{summaries[n][key]['n']})" for n in names])

    stat("fraction_error_points")
    stat("fraction_error_vs_injected_points")
    line("fraction 95% CI covers truth (timepoints with one)", [
        f"{summaries[n]['fraction_ci_coverage']['covered']}/"
        f"{summaries[n]['fraction_ci_coverage']['n']} "
        f"({summaries[n]['fraction_ci_coverage']['with_interval']})" for n in names])
    line("graft volume 95% CI covers truth", [
        f"{summaries[n]['graft_volume_ci_coverage']['covered']}/"
        f"{summaries[n]['graft_volume_ci_coverage']['n']}" for n in names])
    for key in ("graft_volume_error_percent", "fluorine_atoms_error_percent", "iron_error_percent"):
        stat(key)
    line("19F atoms 95% CI covers truth (counts)", [
        f"{summaries[n]['fluorine_atoms_ci_coverage']['covered']}/"
        f"{summaries[n]['fluorine_atoms_ci_coverage']['n']}" for n in names])
    line("19F noise floor: median error of an unbiased count", [
        f"{_cell(summaries[n]['fluorine_noise_floor_percent']['median'], '.1f')} "
        f"({summaries[n]['fluorine_noise_floor_percent']['n']})" for n in names])
    for key in ("controls_no_graft", "overgrowth_flagged", "lingering_iron_not_counted"):
        line(key + " (passed/n)", [f"{summaries[n][key]['passed']}/{summaries[n][key]['n']}"
                                   for n in names])
    line("growth flagged, graft not growing (subjects/n)", [
        f"{summaries[n]['growth_flag_without_growth']['flagged']}/"
        f"{summaries[n]['growth_flag_without_growth']['n']}" for n in names])
    lines.append("goals: fraction within 3 points (research) / 8 points (clinical), CI coverage "
                 ">= 90 %, volume within 10 %, 19F within 10 %, iron within 15 %, no growth flag "
                 "without growth; "
                 "(k/n) = timepoints with an estimate / timepoints")
    return "\n".join(lines)


def fit_interval_calibration(records: Sequence[Record], resolution: str, confidence: float,
                             source: str):
    """Graft-volume interval calibration (``segmentation.interval_calibration``) from the
    post-injection timepoints of grafted subjects, analysed with uncalibrated intervals."""
    from segmentation.interval_calibration import fit_calibration
    points = [r for r in records if not r.control and r.volume_mm3 is not None
              and None not in r.volume_ci_mm3]
    return fit_calibration(resolution, [r.volume_mm3 for r in points],
                           [r.volume_ci_mm3[0] for r in points],
                           [r.volume_ci_mm3[1] for r in points],
                           [r.truth_volume_mm3 for r in points], confidence=confidence,
                           source=source)


def fraction_pairs(study: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(graft map, true graft fraction) of every voxel where the map is >= the probability
    floor, pooled over the analysed sessions of a study by resolution class: the graft maps
    ``analyze_subject`` wrote under derivatives/graftwatch against derivatives/phantom-truth."""
    from imaging.io import load
    from segmentation.interval_calibration import resolution_class
    from segmentation.outputs import graft_probseg_path
    from segmentation.quantify import PROBABILITY_FLOOR
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    derivatives = Path(study) / "derivatives"
    out, truth = derivatives / "graftwatch", derivatives / "phantom-truth"
    for session in sorted(truth.glob("sub-*/ses-*")):
        sid, ses = session.parent.name, session.name
        mapped = graft_probseg_path(out, sid, ses)
        true = truth / sid / ses / "anat" / f"{sid}_{ses}_label-graft_probseg.nii.gz"
        if not (mapped.is_file() and true.is_file()):
            continue
        p, t = load(mapped), load(true)
        keep = np.asarray(p.array) >= PROBABILITY_FLOOR
        pooled.setdefault(resolution_class(p.spacing), []).append(
            (np.asarray(p.array)[keep], np.asarray(t.array)[keep]))
    return {res: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v]))
            for res, v in pooled.items()}
