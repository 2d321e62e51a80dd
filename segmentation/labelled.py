"""SPIO iron and 19F counts at every timepoint, for ``analyze_subject`` (labels 'spio', '19f').

Both are measured in the injection neighbourhood of each timepoint
(``segmentation.injection_site``), never in the graft label alone:

- SPIO (``segmentation.spio_region``): delta-R2* against the pre-injection baseline
  (``segmentation.session_r2star``) summed over the iron clusters of the neighbourhood,
  with a background and an uncertainty measured along the cord;
- 19F (``segmentation.fluorine_region``): the 19F voxels that touch the neighbourhood.
"""

from __future__ import annotations

from typing import Sequence

from segmentation.config import AnalysisConfig
from segmentation.fluorine_region import fluorine_estimates
from segmentation.injection_site import LabelledInput, LabelledResult
from segmentation.quantify import GraftMeasurement
from segmentation.spio_region import spio_estimates

def labelled_estimates(inputs: Sequence[LabelledInput], base_index: int | None,
                       measurements: Sequence[GraftMeasurement],
                       config: AnalysisConfig) -> tuple[LabelledResult, ...]:
    """SPIO or 19F results, one per input (same order); () for label-free subjects."""
    if config.label == "spio":
        return spio_estimates(inputs, base_index, measurements, config)
    if config.label == "19f":
        return fluorine_estimates(inputs, config)
    return ()
