"""Evaluation of a model against the classical baseline on data it never saw in training.

Datasets:

- phantom: subjects simulated from seeds ``seed, seed+1, ...`` (refused when the model
  card lists any of them among its training seeds); every third subject is a graft-free
  control; labels alternate label-free / SPIO; each session's T2w (and T2*w when
  simulated) is scored against the simulator's truth on the T2w grid.
- real: the public scans the card says were held out (gm-challenge run-1 T2*w with
  manual cord masks), scored on the cord; those of cords without a lesion
  (``RealScan.healthy``, all of them) also report how much of the cord region the model
  calls lesion or graft (``healthy_lesion``: its truth is none).

A graft model that takes the baseline (``ModelCard.takes_baseline``) sees each phantom
session's baseline as the pipeline gives it: the baseline scan itself at the baseline,
else the baseline registered onto the session by the two segmented cords
(``segmentation.baseline_pairing``); real scans have none. The extra segmentations this
needs count in the scan's seconds.

Per scan and method, per label ("cord" is the whole cord region, labels 1-3, which is
what manual cord masks delineate; "lesion" label 2; "graft" label 3): Dice and HD95 (mm)
of the labels (``segmentation.metrics``), and the volume error (%) of the predicted
volume against the true one. The model's volumes are partial-volume sums of its
probabilities; the baseline's are voxel counts x voxel volume; true phantom volumes are
partial-volume sums of the simulator's fractions, real ones the mask's voxel count.
Dice/HD95 are aggregated over scans where the label is present in the truth labels,
volume errors over scans with a true volume above 0; a graft-free scan (true graft
volume 0: a control, or a session before the injection) with any graft voxel after
post-processing counts as a false graft.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from imaging.errors import ModelError, RegistrationError
from imaging.volume import Volume
from models.registry import LoadedModel
from segmentation.baseline import classical_segmentation
from segmentation.inference import segment
from segmentation.metrics import dice, hd95_mm, volume_error_percent

log = logging.getLogger(__name__)

LABEL_SETS = {"cord": (1, 2, 3), "lesion": (2,), "graft": (3,)}
DEFAULT_PHANTOM_SEED = 10_000
CONTROL_EVERY = 3


@dataclass(frozen=True)
class EvalCase:
    """One scan with its truth: labels (x, y, z) and true volumes in mm3 per label name."""

    name: str
    dataset: str
    image: Volume
    truth: np.ndarray
    true_mm3: Mapping[str, float]
    labels: tuple[str, ...]
    control: bool = False
    baseline: Volume | None = None   # the subject's pre-injection scan of the same contrast
    is_baseline: bool = False        # this scan is that baseline


@dataclass(frozen=True)
class LabelScore:
    present: bool
    dice: float
    hd95_mm: float
    predicted_mm3: float
    true_mm3: float
    volume_error_percent: float


@dataclass(frozen=True)
class CaseScore:
    case: str
    dataset: str
    method: str
    contrast: str
    control: bool
    graft_free: bool
    any_graft: bool
    seconds: float
    scores: Mapping[str, LabelScore]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = {k: asdict(v) for k, v in self.scores.items()}
        return data


def score_labels(predicted: np.ndarray, predicted_mm3: Mapping[str, float], case: EvalCase,
                 spacing_mm: Sequence[float]) -> dict[str, LabelScore]:
    """Dice, HD95 and volume error of each of the case's labels."""
    scores = {}
    for name in case.labels:
        wanted = LABEL_SETS[name]
        pred, true = np.isin(predicted, wanted), np.isin(case.truth, wanted)
        scores[name] = LabelScore(
            present=bool(true.any()), dice=dice(pred, true), hd95_mm=hd95_mm(pred, true, spacing_mm),
            predicted_mm3=float(predicted_mm3[name]), true_mm3=float(case.true_mm3[name]),
            volume_error_percent=volume_error_percent(predicted_mm3[name], case.true_mm3[name]))
    return scores


def _paired_baseline(case: EvalCase, model: LoadedModel, locator: LoadedModel,
                     graft: LoadedModel, tta: bool, seen: dict) -> Volume | None:
    """The baseline a graft model that takes one sees, as the pipeline pairs it
    (``segmentation.baseline_pairing``): the scan itself at the baseline, else the
    baseline registered onto the scan by the two segmented cords (None: no baseline, or
    the registration failed). ``seen`` keeps the last baseline and its labels for its later scans."""
    from segmentation.baseline_pairing import baseline_on_grid, register_baseline
    if case.is_baseline:
        return case.image
    if case.baseline is None:
        return None
    if seen.get("baseline") is not case.baseline:
        seen["labels"] = segment(case.baseline, model, locator=locator, graft=graft, tta=tta,
                                 baseline=case.baseline).labels
        seen["baseline"] = case.baseline
    first = segment(case.image, model, locator=locator, graft=None, tta=False)
    try:
        transform = register_baseline(case.image, first.labels, case.baseline, seen["labels"])
    except RegistrationError as exc:
        log.warning("%s: baseline not registered (%s); the graft model sees none", case.name, exc)
        return None
    return baseline_on_grid(case.baseline, transform, case.image)


def _model_run(case: EvalCase, model: LoadedModel, locator: LoadedModel,
               graft: LoadedModel | None, tta: bool, seen: dict | None = None):
    baseline = None
    if graft is not None and graft.card.takes_baseline:
        baseline = _paired_baseline(case, model, locator, graft, tta, {} if seen is None else seen)
    result = segment(case.image, model, locator=locator, graft=graft, tta=tta, baseline=baseline)
    probs = result.probabilities.array
    voxel = result.probabilities.voxel_volume_mm3
    volumes = {name: float(probs[..., list(ids)].sum()) * voxel for name, ids in LABEL_SETS.items()}
    return result.labels.array, volumes


def _baseline_run(case: EvalCase):
    labels = classical_segmentation(case.image).array
    voxel = case.image.voxel_volume_mm3
    volumes = {name: float(np.isin(labels, ids).sum()) * voxel for name, ids in LABEL_SETS.items()}
    return labels, volumes


def score_case(case: EvalCase, method: str, run: Callable[[], tuple]) -> CaseScore:
    start = time.perf_counter()
    labels, volumes = run()
    seconds = time.perf_counter() - start
    graft_free = case.true_mm3.get("graft", 0.0) <= 0.0
    return CaseScore(case.name, case.dataset, method, str(case.image.meta.get("contrast")),
                     case.control, graft_free, bool(np.any(labels == 3)), seconds,
                     score_labels(labels, volumes, case, case.image.spacing))


# --- datasets -------------------------------------------------------------------------
def _session_case(name: str, session, image: Volume, control: bool,
                  dataset: str = "phantom", baseline: Volume | None = None,
                  is_baseline: bool = False) -> EvalCase:
    truth = session.dseg.array
    fractions = {"cord": session.cord_probseg.array + session.lesion_probseg.array
                 + session.graft_probseg.array,
                 "lesion": session.lesion_probseg.array, "graft": session.graft_probseg.array}
    voxel = session.dseg.voxel_volume_mm3
    true_mm3 = {k: float(np.sum(v)) * voxel for k, v in fractions.items()}
    return EvalCase(name, dataset, image, np.asarray(truth), true_mm3, ("cord", "lesion", "graft"),
                    control, baseline, is_baseline)


PHANTOM_DATASETS = {"clinical": "phantom", "research": "phantom-research"}


def phantom_cases(n_subjects: int, seed: int = DEFAULT_PHANTOM_SEED,
                  sessions: int | None = None, resolution: str = "clinical") -> Iterator[EvalCase]:
    """Cases of simulated subjects ``seed + i``; every third one a graft-free control.

    ``sessions`` limits the simulated schedule (baseline, early, then follow-ups);
    ``resolution`` "clinical" (3-4 mm slices, dataset "phantom") or "research" (in-plane
    0.3-0.6 mm, thin slices, dataset "phantom-research")."""
    if resolution not in PHANTOM_DATASETS:
        raise ModelError(f"resolution {resolution!r}; expected one of {list(PHANTOM_DATASETS)}")
    dataset = PHANTOM_DATASETS[resolution]
    from imaging.phantom import sample_spec, simulate_subject
    for i in range(n_subjects):
        rng = np.random.default_rng(seed + i)
        control = i % CONTROL_EVERY == CONTROL_EVERY - 1
        label = ("none", "spio")[i % 2]
        extra = {} if sessions is None else {"n_sessions": sessions}
        spec = sample_spec(rng, label=label, control=control, resolution=resolution, **extra)
        subject = simulate_subject(spec, rng, subject_id=f"sub-eval{seed + i}")
        first = subject.sessions[0]   # the simulator's pre-injection baseline
        for session in subject.sessions:
            name = f"seed {seed + i} {session.session_id} {label}{' control' if control else ''}"
            own = session is first
            yield _session_case(f"{name} T2w", session, session.t2w, control, dataset,
                                first.t2w, own)
            if session.t2starw is not None:
                yield _session_case(f"{name} T2starw", session, session.t2starw, control, dataset,
                                    first.t2starw, own)


def real_cases(card_training: Mapping[str, Any]) -> Iterator[EvalCase]:
    """The held-out public scans (those the card lists, else the training split's)."""
    from models.training.sources import REAL_HOLDOUT, SHARED_DATA, real_scan_pair
    listed = set(card_training.get("real_holdout") or ())
    for scan in REAL_HOLDOUT:
        if listed and scan.image not in listed:
            continue
        if not (SHARED_DATA / scan.image).is_file():
            log.warning("held-out scan %s not found under %s: skipped", scan.image, SHARED_DATA)
            continue
        image, region = real_scan_pair(scan, SHARED_DATA)
        image = image.with_meta(contrast=scan.contrast)
        truth = (region > 0).astype(np.uint8)
        true_mm3 = {"cord": float(truth.sum()) * image.voxel_volume_mm3}
        if scan.healthy:
            true_mm3.update(lesion=0.0, graft=0.0)
        yield EvalCase(scan.image, "real", image, truth, true_mm3, tuple(true_mm3))


def check_unseen_seeds(card_training: Mapping[str, Any], seeds: Sequence[int]) -> None:
    used = set(card_training.get("phantom_train_seeds") or ()) & set(seeds)
    if used:
        raise ModelError(f"phantom seeds {sorted(used)[:5]} were used to train this model; "
                         "evaluate on seeds it never saw (e.g. --seed 10000)")


# --- aggregation ----------------------------------------------------------------------
def _median(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def summarise(cases: Sequence[CaseScore], dataset: str, method: str, label: str) -> dict[str, Any]:
    """Medians of Dice and HD95 over the scans of ``dataset`` whose truth labels hold
    ``label``; of the volume error over those whose true volume is above 0 (a small graft
    can have volume without a single voxel where it is the majority)."""
    mine = [c.scores[label] for c in cases
            if c.dataset == dataset and c.method == method and label in c.scores]
    scores = [s for s in mine if s.present]
    volumes = [s.volume_error_percent for s in mine if s.true_mm3 > 0]
    return {"dataset": dataset, "method": method, "label": label, "n": len(scores),
            "n_volume": len(volumes),
            "dice_median": _median([s.dice for s in scores]),
            "dice_mean": float(np.mean([s.dice for s in scores])) if scores else None,
            "hd95_mm_median": _median([s.hd95_mm for s in scores]),
            "hd95_undefined": sum(not math.isfinite(s.hd95_mm) for s in scores),
            "abs_volume_error_percent_median": _median([abs(v) for v in volumes]),
            "volume_error_percent_median": _median(volumes)}


def false_graft(cases: Sequence[CaseScore], method: str) -> dict[str, Any]:
    """Graft-free phantom scans (controls and pre-injection sessions) with any graft voxel."""
    free = [c for c in cases if c.dataset in PHANTOM_DATASETS.values() and c.method == method
            and c.graft_free]
    controls = [c for c in free if c.control]
    hits, control_hits = sum(c.any_graft for c in free), sum(c.any_graft for c in controls)
    return {"method": method, "graft_free_scans": len(free), "with_false_graft": hits,
            "rate": hits / len(free) if free else None, "control_scans": len(controls),
            "controls_with_false_graft": control_hits,
            "control_rate": control_hits / len(controls) if controls else None}


def healthy_lesion(cases: Sequence[CaseScore], method: str) -> dict[str, Any]:
    """Real scans of cords without a lesion: the share of the predicted cord region (mm3,
    partial volume) that is lesion or graft, median and worst over the scans."""
    shares = []
    for c in cases:
        if c.dataset != "real" or c.method != method or "lesion" not in c.scores:
            continue
        region = c.scores["cord"].predicted_mm3
        lesion = c.scores["lesion"].predicted_mm3 + c.scores["graft"].predicted_mm3
        shares.append(100.0 * lesion / region if region > 0 else 0.0)
    return {"method": method, "scans": len(shares),
            "lesion_share_percent_median": _median(shares),
            "lesion_share_percent_worst": max(shares) if shares else None}


def _finite(value: Any) -> Any:
    """JSON has no infinity: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _cell(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class EvaluationReport:
    cases: tuple[CaseScore, ...]
    settings: Mapping[str, Any]

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.method for c in self.cases))

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for dataset in dict.fromkeys(c.dataset for c in self.cases):
            labels = dict.fromkeys(k for c in self.cases if c.dataset == dataset for k in c.scores)
            rows += [summarise(self.cases, dataset, method, label)
                     for label in labels for method in self.methods]
        return rows

    def to_dict(self) -> dict[str, Any]:
        return _finite({"settings": dict(self.settings), "summary": self.summary(),
                        "false_graft": [false_graft(self.cases, m) for m in self.methods],
                        "healthy_lesion": [healthy_lesion(self.cases, m) for m in self.methods],
                        "cases": [c.to_dict() for c in self.cases]})

    def table(self) -> str:
        head = (f"{'dataset':<16} {'label':<7} {'method':<9} {'n':>3} {'Dice med':>9} "
                f"{'HD95 mm':>8} {'n vol':>5} {'|vol err| %':>11}")
        lines = [head, "-" * len(head)]
        for row in self.summary():
            if row["n"] == 0 and row["n_volume"] == 0:
                continue   # e.g. the lesion of a healthy real cord: reported below
            lines.append(f"{row['dataset']:<16} {row['label']:<7} {row['method']:<9} "
                         f"{row['n']:>3} {_cell(row['dice_median'], 3):>9} "
                         f"{_cell(row['hd95_mm_median'], 2):>8} {row['n_volume']:>5} "
                         f"{_cell(row['abs_volume_error_percent_median'], 1):>11}")
        for row in (false_graft(self.cases, m) for m in self.methods):
            if not row["graft_free_scans"]:
                continue   # no phantoms (a real-scans-only run): nothing to count
            lines.append(f"false graft ({row['method']}): {row['with_false_graft']}/"
                         f"{row['graft_free_scans']} graft-free scans, "
                         f"{row['controls_with_false_graft']}/{row['control_scans']} controls")
        for row in (healthy_lesion(self.cases, m) for m in self.methods):
            if row["scans"]:
                lines.append(f"lesion or graft in healthy real cords ({row['method']}): median "
                             f"{row['lesion_share_percent_median']:.1f} % of the cord region, "
                             f"worst {row['lesion_share_percent_worst']:.1f} % "
                             f"({row['scans']} scans; truth 0)")
        return "\n".join(lines)


def evaluate(model: LoadedModel, locator: LoadedModel, *, graft: LoadedModel | None = None,
             n_phantoms: int = 6,
             seed: int = DEFAULT_PHANTOM_SEED, sessions: int | None = None, real: bool = True,
             tta: bool = False, progress: Callable[[CaseScore], None] | None = None,
             resolutions: Sequence[str] = ("clinical",)) -> EvaluationReport:
    """Score the model and the baseline on held-out phantoms (and real scans); ``graft``:
    the graft model whose P(graft) replaces the segmenter's (None: the segmenter's own)."""
    training = dict(model.card.training)
    check_unseen_seeds(training, range(seed, seed + n_phantoms))
    sources = [phantom_cases(n_phantoms, seed, sessions, r) for r in resolutions]
    sources += [real_cases(training)] if real else []
    scores, seen = [], {}
    for source in sources:
        for case in source:
            for method, run in (("model", lambda: _model_run(case, model, locator, graft, tta, seen)),
                                ("baseline", lambda: _baseline_run(case))):
                score = score_case(case, method, run)
                scores.append(score)
                if progress is not None:
                    progress(score)
    settings = {"model": model.card.name, "locator": locator.card.name,
                "graft_model": None if graft is None else graft.card.name,
                "phantom_seeds": list(range(seed, seed + n_phantoms)), "sessions": sessions,
                "phantom_resolutions": list(resolutions),
                "real": real, "tta": tta, "device": str(model.device),
                "model_training_seeds": training.get("phantom_train_seeds"),
                "real_holdout": training.get("real_holdout")}
    return EvaluationReport(tuple(scores), settings)
