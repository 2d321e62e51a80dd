"""The shipped models: list them, read their cards, load their weights (sha256-checked).

Each model is two files under ``models/weights/``: ``<name>.json`` (the ModelCard) and
``<name>.pt`` (a torch state_dict, float32 or float16). ``install_model`` writes both
atomically; ``load_model`` refuses weights whose sha256 differs from the card's.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from imaging.atomic import write_bytes_atomic, write_text_atomic
from imaging.errors import ModelError
from models.card import ModelCard
from models.unet import UNet3D

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "graftwatch-seg-v4"
DEFAULT_LOCATOR = "graftwatch-locator-v2"
# The dedicated graft model whose P(graft) replaces the segmenter's (None: the segmenter's own).
# It was trained on DEFAULT_MODEL's grid and cases, so it pairs with that segmenter only.
DEFAULT_GRAFT: str | None = None
PAIRED = "paired"


@dataclass(frozen=True)
class LoadedModel:
    network: nn.Module
    card: ModelCard
    device: torch.device


def graft_model_name(choice: str | None, segmenter: str = DEFAULT_MODEL) -> str | None:
    """The graft model to run with ``segmenter``: ``None`` or "paired" -> DEFAULT_GRAFT when
    the segmenter is DEFAULT_MODEL (the pair trained together), else none; "none" -> no
    graft model (the segmenter's own graft channel); anything else is a model name."""
    if choice is None or choice == PAIRED:
        return DEFAULT_GRAFT if segmenter == DEFAULT_MODEL else None
    return None if choice.lower() == "none" else choice


def load_graft_choice(choice: str | None, segmenter: str, device: torch.device | str = "cpu",
                      weights_dir: Path | None = None) -> LoadedModel | None:
    """The graft model ``graft_model_name(choice, segmenter)`` names, loaded, or None."""
    name = graft_model_name(choice, segmenter)
    return None if name is None else load_model(name, device, weights_dir)


def _weights_dir(weights_dir: Path | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir)


def available_models(weights_dir: Path | None = None) -> tuple[str, ...]:
    """Names of the models whose card is installed, sorted."""
    folder = _weights_dir(weights_dir)
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.stem for p in folder.glob("*.json")))


def load_card(name: str = DEFAULT_MODEL, weights_dir: Path | None = None) -> ModelCard:
    """The card of an installed model; ModelError naming the installed ones otherwise."""
    path = _weights_dir(weights_dir) / f"{name}.json"
    if not path.is_file():
        raise ModelError(f"no model named {name!r} in {path.parent}; installed models: "
                         f"{list(available_models(weights_dir)) or 'none'}. Train and install one "
                         "with `graftwatch train --install`")
    try:
        return ModelCard.from_json(path.read_text(encoding="utf-8"))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_network(card: ModelCard) -> UNet3D:
    """An untrained network with the card's architecture."""
    return UNet3D(**dict(card.architecture))


def load_model(name: str = DEFAULT_MODEL, device: torch.device | str = "cpu",
               weights_dir: Path | None = None) -> LoadedModel:
    """The network of an installed model, float32, in eval mode on ``device``."""
    device = torch.device(device)
    card = load_card(name, weights_dir)
    path = _weights_dir(weights_dir) / card.weights_file
    if not card.weights_file or not path.is_file():
        raise ModelError(f"model {name!r}: weights file {path} is missing; re-install the model "
                         "(`graftwatch train --install`) or restore the file from the repository")
    found = sha256_of(path)
    if found != card.weights_sha256:
        raise ModelError(f"model {name!r}: {path} has sha256 {found}, but its card expects "
                         f"{card.weights_sha256}; the weights were changed or corrupted. "
                         "Restore them from the repository or re-install the model")
    state = torch.load(path, map_location=device, weights_only=True)
    network = build_network(card)
    try:
        network.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise ModelError(f"model {name!r}: {path} does not fit the card's architecture "
                         f"{dict(card.architecture)} ({exc})") from exc
    # channels-last weights: oneDNN's (and cuDNN's) faster 3-D convolution layout, measured
    # ~20 % faster per window batch on the CPU (scripts/benchmarks/inference.py), same outputs
    network.to(device=device, memory_format=torch.channels_last_3d).eval()
    return LoadedModel(network=network, card=card, device=device)


def install_model(card: ModelCard, state_dict: Mapping[str, torch.Tensor],
                  weights_dir: Path | None = None, half: bool = False) -> ModelCard:
    """Write ``<name>.pt`` and ``<name>.json`` atomically; return the card with its sha256."""
    folder = _weights_dir(weights_dir)
    dtype = torch.float16 if half else torch.float32
    tensors = {k: (v.detach().cpu().to(dtype) if v.is_floating_point() else v.detach().cpu())
               for k, v in state_dict.items()}
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    weights_file = f"{card.name}.pt"
    path = write_bytes_atomic(folder / weights_file, buffer.getvalue())
    final = replace(card, weights_file=weights_file, weights_sha256=sha256_of(path))
    write_text_atomic(folder / f"{card.name}.json", final.to_json())
    log.info("installed model %s in %s (%.2f MB)", card.name, folder, path.stat().st_size / 1e6)
    return final


def update_card_validation(name: str, key: str, value: Any,
                           weights_dir: Path | None = None) -> ModelCard:
    """Set ``validation[key]`` of an installed model's card (e.g. a calibration measured after
    training) and rewrite the card atomically; the weights are not touched."""
    card = load_card(name, weights_dir)
    final = replace(card, validation={**dict(card.validation), key: value})
    write_text_atomic(_weights_dir(weights_dir) / f"{name}.json", final.to_json())
    return final
