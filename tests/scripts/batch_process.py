"""The batch command as a subprocess, with the thread settings that make runs comparable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def deterministic_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
            "PYTHONPATH": str(PROJECT_ROOT)}


def batch_command(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scripts.cli", "batch", str(root), "--out", str(out),
            "--device", "cpu", *extra]
