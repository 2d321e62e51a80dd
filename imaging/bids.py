"""BIDS file names: entities, suffixes, and what contrast a suffix means."""

from __future__ import annotations

import re
from pathlib import Path

# BIDS suffix (or acq- label) -> graftwatch contrast name
SUFFIX_CONTRASTS = {
    "T2w": "T2w",
    "T2starw": "T2starw",
    "T2star": "T2starw",
    "MEGRE": "T2starw",
    "T1w": "T1w",
    "PD": "PDw",
    "PDw": "PDw",
    "FLAIR": "FLAIR",
    "MTS": "MT",
}
_IMAGE_EXT = re.compile(r"(\.nii\.gz|\.nii|\.json|\.tsv)$", re.IGNORECASE)


def split_name(name: str) -> tuple[dict[str, str], str, str]:
    """'sub-01_ses-02_acq-19F_MRI.nii.gz' -> ({'sub': '01', 'ses': '02', 'acq': '19F'}, 'MRI', '.nii.gz')."""
    match = _IMAGE_EXT.search(name)
    ext = match.group(1) if match else ""
    stem = name[: len(name) - len(ext)]
    parts = stem.split("_")
    entities: dict[str, str] = {}
    suffix = ""
    for part in parts:
        if "-" in part:
            key, _, value = part.partition("-")
            entities[key] = value
        else:
            suffix = part
    return entities, suffix, ext


def contrast_from_name(path: str | Path) -> str | None:
    """graftwatch contrast from a BIDS file name; None when the name says nothing known."""
    entities, suffix, _ = split_name(Path(path).name)
    if entities.get("acq", "").upper() == "19F":
        return "19F"
    if suffix in SUFFIX_CONTRASTS:
        return SUFFIX_CONTRASTS[suffix]
    return None
