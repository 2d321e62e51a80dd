"""How much the cord and lesion volumes move when the body lies elsewhere in the scanner.

For each seed, the small clinical label-free subject of tests/segmentation/test_invariance.py
(axial, 3 sessions: baseline, day 5, day 30) is simulated twice: as drawn, and with the
day-30 body pose mirrored (rotation and translation negated: the same grid and noise draws,
the body a few mm and a fraction of a slice elsewhere). Both go through the real API
(``analyze_subject``, CPU). Printed per seed and model, for the day-30 session, the change
(%) of

- the truth: the simulator's partial-volume lesion, and the voxel count of its label map
  (the baseline: what a hard count of a perfect label map does);
- the pipeline's lesion and cord volumes (partial volume: sums of the model's probabilities)
  and their voxel counts (``*_hard_mm3``);

then the median and worst |change| over the seeds. The goal of issue 5 is 1 %.

Run: python -m scripts.benchmarks.pose_invariance [--seeds 20260504,1,2,3,4,5]
     [--models graftwatch-seg-v3,graftwatch-seg-v4]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

DAYS = (-7.0, 5.0, 30.0)


def simulated(seed: int, move_last_body: bool = False):
    """A small label-free clinical subject with whole-day sessions (DICOM dates are whole days).

    ``move_last_body``: the last session's body pose mirrored (rotation and translation
    negated); the grid and the noise draws stay the same.
    """
    import numpy as np

    from imaging.phantom import sample_spec, simulate_subject
    rng = np.random.default_rng(seed)
    spec = sample_spec(rng, label="none", resolution="clinical", plane="axial", n_sessions=3)
    sessions = [replace(s, days_post_transplant=d) for s, d in zip(spec.sessions, DAYS)]
    if move_last_body:
        last = sessions[-1]
        sessions[-1] = replace(last, rotation_deg=tuple(-v for v in last.rotation_deg),
                               translation_mm=tuple(-v for v in last.translation_mm))
    return simulate_subject(replace(spec, sessions=tuple(sessions)), rng, subject_id="sub-001")


def truth_volumes(subject) -> tuple[float, float]:
    """The last session's true lesion: partial volume and the label map's voxel count (mm3)."""
    import numpy as np
    last = subject.sessions[-1]
    voxel = last.dseg.voxel_volume_mm3
    return (float(last.lesion_probseg.array.sum()) * voxel,
            float((np.asarray(last.dseg.array) == 2).sum()) * voxel)


def analysed_volumes(folder: Path, subject, model: str | None = None) -> dict[str, float]:
    """The pipeline's last-session cord and lesion volumes (partial volume and hard, mm3);
    ``model``: the segmenter (default: the shipped default)."""
    from imaging.phantom.bids_writer import write_subject
    from imaging.study import discover_subject
    from segmentation.config import AnalysisConfig
    from segmentation.pipeline import analyze_subject
    write_subject(folder, subject)
    config = AnalysisConfig(injected_cells=subject.injected_cells, label="none")
    result = analyze_subject(discover_subject(folder / subject.subject_id), config, device="cpu",
                             model=model)
    m = max(result.timepoints, key=lambda t: t.days_post_transplant).metrics
    return {"lesion": m.lesion_volume_mm3, "lesion hard": m.lesion_volume_hard_mm3,
            "cord": m.cord_volume_mm3, "cord hard": m.cord_volume_hard_mm3}


def change(before: float, after: float) -> float:
    return 100.0 * (after - before) / max(abs(before), 1e-9)


def summary(name: str, changes: list[float]) -> str:
    import numpy as np
    absolute = np.abs(changes)
    return f"{name}: median |change| {np.median(absolute):.2f} %, worst {absolute.max():.2f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="20260504,1,2,3,4,5")
    parser.add_argument("--models", default="graftwatch-seg-v3,graftwatch-seg-v4")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    changes: dict[str, list[float]] = {}
    for seed in seeds:
        pair = [simulated(seed), simulated(seed, move_last_body=True)]
        truth = [truth_volumes(s) for s in pair]
        for k, name in enumerate(("truth lesion", "truth lesion label count (baseline)")):
            changes.setdefault(name, []).append(change(truth[0][k], truth[1][k]))
        line = (f"seed {seed}: truth lesion {truth[0][0]:.1f} mm3 {changes['truth lesion'][-1]:+.2f} %, "
                f"label count {changes['truth lesion label count (baseline)'][-1]:+.2f} %")
        for model in models:
            with tempfile.TemporaryDirectory() as tmp:
                found = [analysed_volumes(Path(tmp) / str(i), s, model) for i, s in enumerate(pair)]
            for key in found[0]:
                changes.setdefault(f"{model} {key}", []).append(change(found[0][key], found[1][key]))
            line += "\n  " + model + ": " + ", ".join(
                f"{key} {found[0][key]:.1f} {changes[f'{model} {key}'][-1]:+.2f} %" for key in found[0])
        print(line, flush=True)
    print(f"over {len(seeds)} seeds (goal: within 1 %):")
    for name, values in changes.items():
        print("  " + summary(name, values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
