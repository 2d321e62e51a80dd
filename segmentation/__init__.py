"""graftwatch segmentation: device choice, inference, post-processing, quantification, survival analysis."""

# ``segmentation.segment`` (the API) without importing torch for modules that do
# not need it (metrics, quantification): resolved on first access.
_LAZY = {"segment": "segmentation.inference", "SegmentationResult": "segmentation.inference"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segmentation' has no attribute {name!r}")
