"""Time the second, baseline-paired pass of a later session: reused segmenter vs a full pass.

    python -m scripts.benchmarks.pairing [--subjects 2] [--repeats 3] [--resolution clinical]

With a graft model that takes the pre-injection baseline (graftwatch-graft-v5), every later
session is segmented twice by ``analyze_subject``: once to register it, once with the
registered baseline beside it. For each later session of ``--subjects`` phantom subjects
(seeds 700000+) this times that second pass two ways, on the same scan and models:

- ``reuse`` (the pipeline's path): ``segment(reuse=first.fine_pass)``, the graft model,
  post-processing and assembly only;
- ``full`` (the named baseline, the pipeline before the reuse): ``segment(baseline=...)``
  from the start, locator and segmenter included.

The baseline channel is the session's own image (its content does not change the cost).
Prints the median seconds of each, their ratio, and the largest difference between the two
passes' graft volumes (0 when both use the same box).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from scripts.benchmarks.timing import median_seconds

GRAFT_MODEL = "graftwatch-graft-v5"


def _later_scans(n_subjects: int, resolution: str):
    from imaging.phantom import sample_spec, simulate_subject
    for i in range(n_subjects):
        rng = np.random.default_rng(700_000 + i)
        spec = sample_spec(rng, label="none", control=False, resolution=resolution, n_sessions=6)
        for session in simulate_subject(spec, rng, subject_id=f"sub-{i + 1:03d}").sessions:
            if session.t2w.meta["days_post_transplant"] >= 0:
                yield session.t2w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmarks.pairing")
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", choices=("clinical", "research"), default="clinical")
    args = parser.parse_args(argv)
    from models.registry import DEFAULT_LOCATOR, DEFAULT_MODEL, load_model
    from segmentation.inference import segment
    models = {"model": load_model(DEFAULT_MODEL, "cpu"), "locator": load_model(DEFAULT_LOCATOR, "cpu"),
              "graft": load_model(GRAFT_MODEL, "cpu")}
    full_s, reuse_s, volume_gap = [], [], 0.0
    for scan in _later_scans(args.subjects, args.resolution):
        first = segment(scan, **models, keep_fine_pass=True)
        if first.fine_pass is None:
            continue   # no cord: nothing to pair
        full_s.append(median_seconds(lambda: segment(scan, **models, baseline=scan), args.repeats))
        reuse_s.append(median_seconds(lambda: segment(scan, **models, baseline=scan,
                                                      reuse=first.fine_pass), args.repeats))
        full = segment(scan, **models, baseline=scan).volumes_mm3()["graft"]
        reused = segment(scan, **models, baseline=scan, reuse=first.fine_pass).volumes_mm3()["graft"]
        volume_gap = max(volume_gap, abs(full - reused))
    if not full_s:
        print("no later session with a cord found")
        return 1
    full, reuse = statistics.median(full_s), statistics.median(reuse_s)
    print(f"{len(full_s)} later {args.resolution} sessions, median of {args.repeats} each, "
          f"then the median over sessions (graft model {GRAFT_MODEL}):")
    print(f"  second pass, full (baseline: locator + segmenter again): {full:.2f} s")
    print(f"  second pass, segmenter output reused:                    {reuse:.2f} s "
          f"({full / reuse:.1f}x faster)")
    print(f"  largest graft-volume difference between the two: {volume_gap:.4f} mm3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
