"""Turning analysis results into JSON-safe values and the two-sided normal quantile.

Every result dataclass of the analysis goes through ``json_safe`` in its ``to_dict()``:
numpy scalars become Python numbers, NaN and infinities become None ("not available"),
tuples become lists, so ``json.dumps(result.to_dict(), allow_nan=False)`` always works.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from imaging.errors import AnalysisError


def json_safe(value: Any) -> Any:
    """A value JSON can hold: None for missing or non-finite, plain numbers, lists, dicts."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(item) for item in value]
    if is_dataclass(value):
        return {f.name: json_safe(getattr(value, f.name)) for f in fields(value)}
    raise AnalysisError(f"cannot turn a {type(value).__name__} into JSON; expected numbers, "
                        "strings, lists or dataclasses of them")


def two_sided_z(confidence: float) -> float:
    """Normal quantile for a two-sided interval: 1.96 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise AnalysisError(f"confidence {confidence!r} is not a probability; expected a value "
                            "between 0 and 1 such as 0.95")
    return float(norm.ppf(0.5 + confidence / 2.0))


def percentile_interval(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple[Any, Any]:
    """Lower and upper equal-tailed percentiles of Monte-Carlo or bootstrap samples."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high
