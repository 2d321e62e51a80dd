"""Models loaded once per batch worker, not once per subject.

A ``ModelCache`` holds loaded models keyed by (model name, device). Where it lives:
- a run without worker processes: inside the ``SubjectJob`` itself;
- local worker processes: one per process, made by the pool initializer ``init_worker``;
- Dask workers: one per worker, held by the ``ModelCachePlugin`` registered on the client.
Models never travel with a job: a pickled ``SubjectJob`` carries only its options.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distributed import WorkerPlugin

log = logging.getLogger(__name__)

PLUGIN_NAME = "graftwatch-models"


class ModelCache:
    """Loaded models by (name, device, models folder); each is loaded on first use."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str, str], object] = {}

    def get(self, name: str, device, models_dir: Path | None = None):
        key = (name, str(device), str(models_dir))
        if key not in self._loaded:
            from models.registry import load_model
            log.info("loading model %s on %s (once for this worker)", name, device)
            self._loaded[key] = load_model(name, device, models_dir)
        return self._loaded[key]

    def pipeline_models(self, options) -> tuple:
        """(segmenter, locator[, graft model]) for ``options`` (PipelineOptions), as
        ``analyze_subject(models=...)`` takes them, from ``options.models_dir`` when set."""
        from segmentation.device import resolve_device
        from segmentation.pipeline import load_pipeline_models
        return load_pipeline_models(
            resolve_device(options.device), options.model, graft=options.graft,
            load=lambda name, device: self.get(name, device, options.models_dir))


_worker_cache: ModelCache | None = None  # set only in a local worker process, by init_worker


def init_worker() -> None:
    """Process-pool initializer: this worker process's model cache."""
    global _worker_cache
    _worker_cache = ModelCache()


class ModelCachePlugin(WorkerPlugin):
    """Dask worker plugin: a model cache per worker (``client.register_plugin``)."""

    name = PLUGIN_NAME

    def setup(self, worker) -> None:
        self.cache = ModelCache()


def _dask_worker_cache() -> ModelCache | None:
    from distributed import get_worker
    try:
        plugin = get_worker().plugins.get(PLUGIN_NAME)
    except ValueError:  # not on a Dask worker
        return None
    return getattr(plugin, "cache", None)


class SubjectJob:
    """The batch job for one subject: ``run_subject`` with this worker's cached models.

    ``scripts.batch_runner`` calls it as ``job(entry, out_dir, on_stage=report)`` when the
    progress display wants stages; ``run_subject`` reports them (``segmentation.pipeline``).
    """

    def __init__(self, options) -> None:
        self.options = options
        self._cache: ModelCache | None = ModelCache()

    def __getstate__(self) -> dict:
        return {"options": self.options}  # a worker uses its own cache

    def __setstate__(self, state: dict) -> None:
        self.options = state["options"]
        self._cache = None

    def cache(self) -> ModelCache:
        found = self._cache or _worker_cache or _dask_worker_cache()
        if found is None:
            log.warning("no model cache on this worker (started without init_worker or the "
                        "%s plugin): models are loaded for this subject only", PLUGIN_NAME)
            return ModelCache()
        return found

    def __call__(self, entry, out_dir: Path, on_stage=None) -> None:
        from segmentation.pipeline import run_subject
        models = self.cache().pipeline_models(self.options)
        run_subject(entry, out_dir, self.options, models=models, on_stage=on_stage)
