"""A phantom cohort with broken subjects through the batch: the failures stay in their rows.

    python -m scripts.benchmarks.cohort_faults --out /tmp/cohort-faults

writes a phantom BIDS cohort (default 20 subjects), breaks the last four, one way each,
and runs ``graftwatch batch`` on a CSV manifest of it twice:
- corrupt_nifti: every scan of the subject truncated (no session can be read);
- missing_session_file: one session's scan deleted (the sessions table lists it);
- bad_manifest_date: the manifest row's transplant_date is not a date;
- wrong_path: the manifest row points at a folder that does not exist.
Expected: the others complete, the broken ones fail with their reasons, the exit code is
non-zero, and the second run skips every completed subject. It prints both status tables
and checks those expectations (exit code 0 only when they hold).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Sequence

BREAKAGES = ("corrupt_nifti", "missing_session_file", "bad_manifest_date", "wrong_path")
TRANSPLANT_DATE = "2025-03-01"


def _scans(subject: Path) -> list[Path]:
    return sorted(subject.glob("ses-*/anat/*.nii.gz"))


def write_fault_manifest(study: Path, manifest: Path, breakages: Sequence[str]) -> dict[str, str]:
    """A manifest of every subject of ``study``; the last ``len(breakages)`` subjects are broken,
    one breakage each (files changed in place). Returns subject id -> breakage."""
    subjects = sorted(p for p in Path(study).glob("sub-*") if p.is_dir())
    if len(breakages) > len(subjects):
        raise ValueError(f"{len(breakages)} breakages for {len(subjects)} subjects")
    broken = dict(zip((p.name for p in subjects[len(subjects) - len(breakages):]), breakages))
    rows = []
    for subject in subjects:
        kind = broken.get(subject.name)
        path, date = str(subject), TRANSPLANT_DATE
        if kind == "corrupt_nifti":
            for scan in _scans(subject):
                scan.write_bytes(scan.read_bytes()[:200])
        elif kind == "missing_session_file":
            _scans(subject)[-1].unlink()
        elif kind == "bad_manifest_date":
            date = "2025-13-45"
        elif kind == "wrong_path":
            path = str(subject.parent / f"{subject.name}-moved")
        elif kind is not None:
            raise ValueError(f"unknown breakage {kind!r}; expected one of {BREAKAGES}")
        rows.append({"subject_id": subject.name, "path": path, "transplant_date": date})
    with Path(manifest).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=("subject_id", "path", "transplant_date"))
        writer.writeheader()
        writer.writerows(rows)
    return broken


def read_status(out: Path) -> list[dict[str, str]]:
    with (Path(out) / "status.tsv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def status_table(rows: list[dict[str, str]], broken: dict[str, str]) -> str:
    lines = [f"{'subject':<10} {'status':<8} {'seconds':>8}  {'broken as':<21} error"]
    for r in rows:
        error = r["error"] if len(r["error"]) <= 110 else r["error"][:107] + "..."
        lines.append(f"{r['subject_id']:<10} {r['status']:<8} {r['seconds']:>8}  "
                     f"{broken.get(r['subject_id'], ''):<21} {error}")
    return "\n".join(lines)


def check(rows: list[dict[str, str]], broken: dict[str, str], done_status: str) -> list[str]:
    """What differs from the expectation: broken rows failed with a reason, the rest done."""
    problems = []
    for r in rows:
        want = "failed" if r["subject_id"] in broken else done_status
        if r["status"] != want or (want == "failed" and not r["error"]):
            problems.append(f"{r['subject_id']}: {r['status']} (expected {want})")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmarks.cohort_faults",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("cohort-faults"))
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=3, help="sessions per subject (default 3)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2026)
    return parser


def _run(manifest: Path, out: Path, workers: int) -> tuple[int, float]:
    from scripts.batch import main as batch
    start = time.perf_counter()
    code = batch([str(manifest), "--out", str(out), "--device", "cpu", "--workers", str(workers)])
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from imaging.phantom import write_dataset
    from scripts.cli import configure_logging
    configure_logging()
    study, results = args.out / "study", args.out / "results"
    if (args.out / "manifest.csv").exists():
        raise SystemExit(f"{args.out} already holds a run; choose an empty --out")
    write_dataset(study, n_subjects=args.subjects, seed=args.seed, labels=("none",),
                  n_sessions=args.sessions)
    broken = write_fault_manifest(study, args.out / "manifest.csv", BREAKAGES)
    problems = []
    for attempt, done in (("first run", "ok"), ("rerun", "skipped")):
        code, seconds = _run(args.out / "manifest.csv", results, args.workers)
        rows = read_status(results)
        print(f"\n== {attempt}: exit code {code}, {seconds:.0f} s\n{status_table(rows, broken)}")
        problems += [f"{attempt}: {p}" for p in check(rows, broken, done)]
        problems += [f"{attempt}: exit code {code}, expected 1"] if code != 1 else []
    print("\nexpectations hold" if not problems else "\nNOT as expected:\n" + "\n".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
