"""The rigid transform between two sessions: a 4x4 matrix in RAS+ mm and how it was found.

Direction, once and for all: ``RigidTransform.matrix`` maps a point of the FIXED
(reference) space to the same anatomical point in the MOVING space,
``p_moving = matrix @ p_fixed`` (homogeneous, RAS+ millimetres). This is the
ITK convention, and it is what resampling needs: to put the moving image on the
fixed grid, each fixed voxel looks up the moving image at ``matrix @ p``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from imaging.atomic import write_text_atomic
from imaging.errors import RegistrationError

_ROTATION_TOLERANCE = 1e-6


def _checked_matrix(matrix: Any) -> np.ndarray:
    mat = np.array(matrix, dtype=np.float64)
    if mat.shape != (4, 4) or not np.all(np.isfinite(mat)):
        raise RegistrationError(f"rigid matrix {matrix!r}: expected a finite 4x4 matrix")
    if not np.allclose(mat[3], [0, 0, 0, 1]):
        raise RegistrationError(f"rigid matrix last row is {mat[3]}; expected [0, 0, 0, 1]")
    rot = mat[:3, :3]
    if (not np.allclose(rot @ rot.T, np.eye(3), atol=_ROTATION_TOLERANCE)
            or np.linalg.det(rot) < 0):
        raise RegistrationError(
            f"matrix\n{mat}\nis not rigid (its 3x3 part is not a proper rotation); expected "
            "a rotation plus a translation")
    mat.flags.writeable = False
    return mat


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """``p_moving = matrix @ p_fixed`` in RAS+ mm, with the registration's diagnostics.

    ``residual_mm``: estimated error of the transform, as the mean displacement at the
    fixed cord points between this solution and a re-registration started from a
    perturbed one (NaN when not checked). ``motion_mm``: mean displacement of those
    points compared with no motion. ``metric_value``: final Mattes mutual information
    (more negative is better). ``iterations``: optimiser iterations over all levels.
    """

    matrix: np.ndarray
    metric_value: float = math.nan
    residual_mm: float = math.nan
    motion_mm: float = math.nan
    iterations: int = 0
    stop_condition: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", _checked_matrix(self.matrix))

    @classmethod
    def identity(cls) -> "RigidTransform":
        return cls(np.eye(4))

    @classmethod
    def from_parameters(cls, rotation_deg: Sequence[float], translation_mm: Sequence[float],
                        center_ras: Sequence[float] = (0.0, 0.0, 0.0)) -> "RigidTransform":
        """Rotation about R, A, S axes (degrees, applied in that order) around ``center_ras``,
        then a translation: ``p -> R (p - c) + c + t``."""
        rot = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
        center = np.asarray(center_ras, dtype=np.float64)
        mat = np.eye(4)
        mat[:3, :3] = rot
        mat[:3, 3] = center + np.asarray(translation_mm, dtype=np.float64) - rot @ center
        return cls(mat)

    @property
    def translation_mm(self) -> np.ndarray:
        return np.array(self.matrix[:3, 3])

    @property
    def rotation_deg(self) -> float:
        """Angle of the rotation part (degrees, about its own axis)."""
        cos = (np.trace(self.matrix[:3, :3]) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    def transform_points(self, points_ras: Any) -> np.ndarray:
        """(N, 3) fixed-space points -> their positions in the moving space."""
        pts = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))
        return pts @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def displacement_mm(self, points_ras: Any,
                        other: "RigidTransform | None" = None) -> np.ndarray:
        """Distance (mm) between where this and ``other`` (default: none) send each point."""
        ref = np.atleast_2d(np.asarray(points_ras, dtype=np.float64)) if other is None \
            else other.transform_points(points_ras)
        return np.linalg.norm(self.transform_points(points_ras) - ref, axis=1)

    def inverse(self) -> "RigidTransform":
        """The moving -> fixed transform (diagnostics are not carried over)."""
        inv = np.eye(4)
        inv[:3, :3] = self.matrix[:3, :3].T
        inv[:3, 3] = -self.matrix[:3, :3].T @ self.matrix[:3, 3]
        return RigidTransform(inv)

    def compose(self, then: "RigidTransform") -> "RigidTransform":
        """Apply ``self`` then ``then``: ``p -> then(self(p))``."""
        return RigidTransform(then.matrix @ self.matrix)

    def to_dict(self) -> dict[str, Any]:
        return {"direction": "fixed_to_moving", "space": "RAS+ mm",
                "matrix": [[float(v) for v in row] for row in self.matrix],
                "metric_value": float(self.metric_value), "residual_mm": float(self.residual_mm),
                "motion_mm": float(self.motion_mm), "iterations": int(self.iterations),
                "stop_condition": self.stop_condition}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RigidTransform":
        if data.get("direction", "fixed_to_moving") != "fixed_to_moving":
            raise RegistrationError(f"transform direction {data.get('direction')!r}; expected "
                                    "'fixed_to_moving' (invert it first)")
        if "matrix" not in data:
            raise RegistrationError(f"transform record has keys {sorted(data)}; expected 'matrix'")
        return cls(matrix=data["matrix"],
                   metric_value=float(data.get("metric_value", math.nan)),
                   residual_mm=float(data.get("residual_mm", math.nan)),
                   motion_mm=float(data.get("motion_mm", math.nan)),
                   iterations=int(data.get("iterations", 0)),
                   stop_condition=str(data.get("stop_condition", "")))

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically); NaN diagnostics are written as null."""
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                  for k, v in self.to_dict().items()}
        return write_text_atomic(path, json.dumps(record, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RigidTransform":
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistrationError(f"{path}: cannot read a transform ({exc}); expected the JSON "
                                    "written by RigidTransform.save") from exc
        if not isinstance(record, dict):
            raise RegistrationError(f"{path}: holds {type(record).__name__}; expected a JSON "
                                    "object written by RigidTransform.save")
        record = {k: (math.nan if v is None else v) for k, v in record.items()}
        try:
            return cls.from_dict(record)
        except RegistrationError as exc:
            raise RegistrationError(f"{path}: {exc}") from exc
