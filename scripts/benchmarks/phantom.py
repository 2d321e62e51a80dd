"""Time the phantom simulator: seconds per 6-session subject and per stage.

    python -m scripts.benchmarks.phantom [--subjects 3]

Target (issue 3): a 6-session subject, T2w at clinical resolution, sagittal, in <= 5 s on
2 cores. Baseline printed in the same run: the noise-free rendering alone, so the cost
of bias, noise and Volume building is visible. CPU time is printed beside wall time
because the machine may be shared.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

TARGET_S = 5.0


def _timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmarks.phantom")
    parser.add_argument("--subjects", type=int, default=3)
    args = parser.parse_args(argv)
    from imaging.phantom import sample_spec, simulate_subject
    from imaging.phantom.graft import graft_state
    from imaging.phantom.injury import injury_state
    from imaging.phantom.render import Textures, render_session
    simulate_subject(sample_spec(np.random.default_rng(99), n_sessions=1), np.random.default_rng(0))
    print(f"{'subject':>8} {'label':>5} {'render wall/cpu s':>18} {'full wall/cpu s':>16}")
    totals = []
    for index in range(args.subjects):
        label = ("none", "spio", "19f")[index % 3]
        spec = sample_spec(np.random.default_rng(index), label=label, plane="sagittal")
        textures = Textures.draw(np.random.default_rng(0))

        def render_all():
            for s in spec.sessions:
                render_session(spec, s, graft_state(spec.graft, s.days_post_transplant),
                               injury_state(spec.injury, s.days_post_transplant), textures)
        _, r_wall, r_cpu = _timed(render_all)
        _, wall, cpu = _timed(simulate_subject, spec, np.random.default_rng(index))
        totals.append((label, wall, cpu))
        print(f"{index:>8} {label:>5} {r_wall:>8.2f} / {r_cpu:<7.2f} {wall:>7.2f} / {cpu:<7.2f}")
    t2w = [cpu for label, _, cpu in totals if label == "none"]
    print(f"T2w-only subject (6 sessions, clinical, sagittal): {np.mean(t2w):.2f} s CPU "
          f"(target <= {TARGET_S} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
