"""Scan-rescan repeatability of the cord volume on the real gm-challenge pairs (goal CV <= 2 %).

    python -m scripts.benchmarks.repeatability [--data ../shared/data] [--threads 1]

Pairs (axial T2*w, ``../shared/data/gm-challenge-data``): run-1 vs run-2 of one visit
for sub-9418, sub-9584, sub-9709Ses1 and sub-9709Ses2 (the scan-rescan pairs), and
sub-9709 session 1 vs session 2 (run-1 of each: one person on two days, the only pair
with a manual cord mask on both scans; the manual masks exist for run-1 only).

Each scan is segmented with the shipped models through ``segmentation.segment`` (CPU);
the rescan is registered rigidly onto the scan (``register_rigid``, driven by the model's
cord masks) and the volumes are compared over the slices both scans cover
(``segmentation.repeatability``: the rescan's map resampled onto the scan's grid, the
common extent = the scan's slices whose cord maps inside the rescan's grid). Reported per
pair, each as scan / rescan mm3 and CV:

- model: partial-volume whole-cord volume (sum of P(cord) + P(lesion) + P(graft));
- model, hard: voxels labelled cord, lesion or graft (what ``timepoints.tsv`` reports);
- manual (the baseline, same slices, same transform): the manual cord masks, where both
  scans have one;
- model over each scan's whole field of view, no common extent (what the extent removes);
- Dice of the model's labels on the scan against its manual mask (where the model fails).

Then the pooled (root mean square) CV over the run-1/run-2 pairs, and model vs manual on
the one pair where both exist.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segmentation.repeatability import PairedVolumes

GM = "gm-challenge-data"
CONTRAST = "T2starw"
GOAL_CV = 0.02


@dataclass(frozen=True)
class ScanPair:
    name: str
    scan: Path
    rescan: Path
    scan_manual: Path | None
    rescan_manual: Path | None


def _scan(root: Path, subject: str, run: int) -> Path:
    return root / GM / subject / "anat" / f"{subject}_run-{run}_{CONTRAST}.nii.gz"


def _manual(root: Path, subject: str, run: int) -> Path | None:
    path = (root / GM / "derivatives" / "labels" / subject / "anat"
            / f"{subject}_run-{run}_{CONTRAST}_seg-manual.nii.gz")
    return path if path.exists() else None


def gm_challenge_pairs(root: Path) -> list[ScanPair]:
    """The scan-rescan pairs present under ``root`` (the shared data folder)."""
    pairs = [ScanPair(f"{s} run-1/run-2", _scan(root, s, 1), _scan(root, s, 2),
                      _manual(root, s, 1), _manual(root, s, 2))
             for s in ("sub-9418", "sub-9584", "sub-9709Ses1", "sub-9709Ses2")]
    pairs.append(ScanPair("sub-9709 ses-1/ses-2 run-1", _scan(root, "sub-9709Ses1", 1),
                          _scan(root, "sub-9709Ses2", 1), _manual(root, "sub-9709Ses1", 1),
                          _manual(root, "sub-9709Ses2", 1)))
    return [p for p in pairs if p.scan.exists() and p.rescan.exists()]


@dataclass(frozen=True)
class PairResult:
    pair: ScanPair
    motion_mm: float
    model: PairedVolumes
    model_hard: PairedVolumes
    manual: PairedVolumes | None
    full_fov_mm3: tuple[float, float]
    dice_vs_manual: float | None  # model (labels >= 1) vs the scan's manual mask


def _whole_cord(result):
    from imaging.volume import Volume
    probs = result.probabilities
    return Volume(1.0 - np.asarray(probs.array[..., 0], dtype=np.float32), probs.affine)


def _hard_cord(result):
    from imaging.volume import LabelVolume, Volume
    cord = (np.asarray(result.labels.array) >= 1).astype(np.uint8)
    return LabelVolume(cord, result.labels.affine), Volume(cord.astype(np.float32),
                                                           result.labels.affine)


def measure_pair(pair: ScanPair, models, device="cpu") -> PairResult:
    """Segment both scans, register the rescan onto the scan, compare over the common extent."""
    import imaging
    from imaging.registration import register_rigid
    from segmentation.inference import segment
    from segmentation.metrics import dice
    from segmentation.repeatability import paired_volumes
    model, locator = models
    images = [imaging.load(pair.scan), imaging.load(pair.rescan)]
    results = [segment(v, model=model, locator=locator, device=device, contrast=CONTRAST)
               for v in images]
    (scan_mask, scan_hard), (rescan_mask, rescan_hard) = (_hard_cord(r) for r in results)
    transform = register_rigid(images[0], images[1], fixed_mask=scan_mask,
                               moving_mask=rescan_mask)
    manual = [None if p is None else imaging.load(p) for p in (pair.scan_manual, pair.rescan_manual)]
    region = scan_hard.array > 0.5
    if manual[0] is not None:
        region = region | (np.asarray(manual[0].array) > 0.5)
    soft = [_whole_cord(r) for r in results]
    return PairResult(
        pair, float(transform.motion_mm),
        paired_volumes(soft[0], soft[1], transform, region),
        paired_volumes(scan_hard, rescan_hard, transform, region),
        None if None in manual else paired_volumes(manual[0], manual[1], transform, region),
        tuple(float(np.sum(m.array, dtype=np.float64)) * m.voxel_volume_mm3 for m in soft),
        None if manual[0] is None else dice(scan_hard.array > 0.5, manual[0].array > 0.5))


def _cells(paired) -> str:
    if paired is None:
        return f"{'-':>9} {'-':>9} {'-':>6}"
    return f"{paired.scan_mm3:9.1f} {paired.rescan_mm3:9.1f} {100 * paired.cv:5.2f}%"


def print_table(rows: list[PairResult]) -> None:
    from segmentation.repeatability import coefficient_of_variation, pooled_cv
    print(f"{'pair':<28} {'slices':>7} {'mm':>5} {'moved':>6} | {'model scan':>9} {'rescan':>9} "
          f"{'CV':>6} | {'hard CV':>7} | {'manual':>9} {'rescan':>9} {'CV':>6} | "
          f"{'full-FOV CV':>11} | {'Dice':>5}")
    for r in rows:
        m = r.model
        dice_text = "-" if r.dice_vs_manual is None else f"{r.dice_vs_manual:.3f}"
        print(f"{r.pair.name:<28} {m.first_slice:>3}-{m.last_slice:<3} {m.length_mm:5.0f} "
              f"{r.motion_mm:5.2f}mm | {_cells(m)} | {100 * r.model_hard.cv:6.2f}% | "
              f"{_cells(r.manual)} | {100 * coefficient_of_variation(r.full_fov_mm3):10.2f}% | "
              f"{dice_text:>5}")
    runs = [r for r in rows if "run-1/run-2" in r.pair.name]
    if runs:
        full_fov = pooled_cv([coefficient_of_variation(r.full_fov_mm3) for r in runs])
        print(f"\npooled CV over the {len(runs)} run-1/run-2 pairs (goal <= "
              f"{100 * GOAL_CV:.0f} %): model {100 * pooled_cv([r.model.cv for r in runs]):.2f} %, "
              f"model hard {100 * pooled_cv([r.model_hard.cv for r in runs]):.2f} %, model "
              f"without the common extent {100 * full_fov:.2f} % (no manual masks on run-2)")
    for r in rows:
        if r.manual is not None:
            print(f"{r.pair.name}: model {100 * r.model.cv:.2f} % vs manual masks (baseline) "
                  f"{100 * r.manual.cv:.2f} % over the same {r.model.length_mm:.0f} mm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="segmenter (default: the shipped one)")
    args = parser.parse_args(argv)
    pairs = gm_challenge_pairs(args.data)
    if not pairs:
        print(f"no gm-challenge scan-rescan pairs under {args.data / GM}; nothing to measure")
        return 1
    import torch
    torch.set_num_threads(args.threads)
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    cpu = torch.device("cpu")
    models = (load_model(args.model or DEFAULT_MODEL, cpu), load_model(DEFAULT_LOCATOR, cpu))
    print(f"{len(pairs)} pairs from {args.data / GM}; model {models[0].card.name}, locator "
          f"{models[1].card.name}; {args.threads} torch thread(s); load average "
          f"{os.getloadavg()[0]:.1f}")
    print_table([measure_pair(p, models, cpu) for p in pairs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
