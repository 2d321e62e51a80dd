"""Time the phantom simulator: seconds per 6-session subject, per graft label.

    python -m scripts.benchmarks.phantom [--subjects 3] [--plane sagittal|axial]

Target (issue 3): a 6-session subject in <= 5 s on 2 cores, for every label. For each
label (none, spio, 19f) and each of ``--subjects`` seeds it times the whole subject
(``simulate_subject``: rendering, bias, noise, Volumes) and, separately, the noise-free
rendering of its sessions two ways:

- ``channel``: the shipped path (every contrast from one set of per-voxel channel sums);
- ``per-point`` (the named baseline, the rendering before the channel sums): every
  contrast - T2w and each T2*w echo - evaluated at every sub-voxel point, then averaged.

Medians over the seeds are printed, CPU time beside wall time, and the load average at
the start and the end, because the machine may be shared (wall time then grows with the
other jobs, CPU time much less).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

TARGET_S = 5.0
LABELS = ("none", "spio", "19f")


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def _render_all(spec, per_point: bool) -> None:
    from imaging.phantom.graft import graft_state
    from imaging.phantom.injury import injury_state
    from imaging.phantom.render import Textures, render_session
    textures = Textures.draw(np.random.default_rng(0))
    for s in spec.sessions:
        render_session(spec, s, graft_state(spec.graft, s.days_post_transplant),
                       injury_state(spec.injury, s.days_post_transplant), textures,
                       per_point=per_point)


def _median(rows, column: int) -> float:
    return statistics.median(r[column] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmarks.phantom")
    parser.add_argument("--subjects", type=int, default=3, help="seeds per label (default 3)")
    parser.add_argument("--plane", choices=("sagittal", "axial"), default="sagittal")
    args = parser.parse_args(argv)
    from imaging.phantom import sample_spec, simulate_subject
    load_start = os.getloadavg()[0]
    simulate_subject(sample_spec(np.random.default_rng(99), n_sessions=1),
                     np.random.default_rng(0))                       # imports, caches
    print(f"6-session subjects, clinical resolution, {args.plane}; seconds (wall / CPU)")
    print(f"{'label':>5} {'seed':>4} {'subject':>15} {'render channel':>16} "
          f"{'render per-point':>17}")
    verdict = []
    for label in LABELS:
        rows = []
        for seed in range(args.subjects):
            spec = sample_spec(np.random.default_rng(seed), label=label, plane=args.plane)
            full = _timed(simulate_subject, spec, np.random.default_rng(seed))
            channel = _timed(_render_all, spec, False)
            per_point = _timed(_render_all, spec, True)
            rows.append((*full, *channel, *per_point))
            print(f"{label:>5} {seed:>4} {full[0]:>6.2f} / {full[1]:<6.2f} "
                  f"{channel[0]:>6.2f} / {channel[1]:<7.2f} "
                  f"{per_point[0]:>6.2f} / {per_point[1]:<7.2f}")
        med = [_median(rows, c) for c in range(6)]
        print(f"{label:>5} {'med':>4} {med[0]:>6.2f} / {med[1]:<6.2f} "
              f"{med[2]:>6.2f} / {med[3]:<7.2f} {med[4]:>6.2f} / {med[5]:<7.2f}"
              f"  per-point / channel render CPU: {med[5] / max(med[3], 1e-9):.2f}")
        verdict.append(f"{label} {med[0]:.2f} s wall, {med[1]:.2f} s CPU")
    print(f"median subject: {'; '.join(verdict)} (target <= {TARGET_S} s); load average "
          f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
          f"({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
