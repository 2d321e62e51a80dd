"""The model card: everything needed to run a shipped network and to trust its numbers.

A card travels as JSON next to its weights (``models/weights/<name>.json``). It says what
the network takes (contrasts, voxel spacing, patch size, normalisation), what it gives
(labels), how it was trained (data, seeds, steps, command, code commit) and how well it
did on held-out data (validation metrics).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from imaging.errors import ModelError

TASKS = ("segment", "locate", "graft")
SEGMENT_LABELS = {0: "background", 1: "cord", 2: "lesion", 3: "graft"}
LOCATE_LABELS = {0: "background", 1: "cord region"}
GRAFT_LABELS = {0: "background", 1: "graft"}
REQUIRED_KEYS = ("name", "task", "contrasts", "spacing_mm", "patch_size", "labels",
                 "architecture", "normalisation")


@dataclass(frozen=True)
class ModelCard:
    name: str
    task: str
    contrasts: tuple[str, ...]
    spacing_mm: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    labels: Mapping[int, str]
    architecture: Mapping[str, Any]
    normalisation: str
    training: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    weights_file: str = ""
    weights_sha256: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"model card {self.name!r}: task {self.task!r}; expected one of {TASKS}")
        object.__setattr__(self, "contrasts", tuple(str(c) for c in self.contrasts))
        object.__setattr__(self, "spacing_mm", _triple(self.name, "spacing_mm", self.spacing_mm, float))
        object.__setattr__(self, "patch_size", _triple(self.name, "patch_size", self.patch_size, int))
        labels = {int(k): str(v) for k, v in dict(self.labels).items()}
        if sorted(labels) != list(range(len(labels))) or len(labels) < 2:
            raise ModelError(f"model card {self.name!r}: labels {labels}; expected keys 0..K-1, K >= 2")
        object.__setattr__(self, "labels", labels)
        if not self.contrasts:
            raise ModelError(f"model card {self.name!r}: no contrasts; expected e.g. ('T2w',)")

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def takes_baseline(self) -> bool:
        """A graft model whose second input channel is the registered pre-injection
        baseline (normalised like the image; zeros when the subject has none)."""
        return self.task == "graft" and int(self.architecture.get("in_channels", 1)) == 2

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["contrasts"] = list(self.contrasts)
        data["spacing_mm"] = list(self.spacing_mm)
        data["patch_size"] = list(self.patch_size)
        data["labels"] = {str(k): v for k, v in self.labels.items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelCard":
        names = {f.name for f in fields(cls)}
        missing = sorted(set(REQUIRED_KEYS) - set(data))
        if missing:
            raise ModelError(f"model card is missing {missing}; expected all of {sorted(names)}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(f"model card has unknown keys {unknown}; expected only {sorted(names)}")
        return cls(**{k: data[k] for k in data})

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelError(f"model card is not valid JSON ({exc}); re-install the model") from exc
        if not isinstance(data, dict):
            raise ModelError(f"model card JSON is a {type(data).__name__}; expected an object")
        return cls.from_dict(data)


def _triple(name: str, key: str, value: Any, kind: type) -> tuple:
    try:
        values = tuple(kind(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model card {name!r}: {key} = {value!r}; expected three numbers") from exc
    if len(values) != 3 or any(v <= 0 for v in values):
        raise ModelError(f"model card {name!r}: {key} = {value!r}; expected three positive numbers")
    return values
