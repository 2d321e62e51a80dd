"""Compare two batch output folders: every file, byte for byte, except what must differ.

What is allowed to differ between two runs of the same cohort, and nothing else:
- ``status.tsv`` / ``index.html``: the seconds each subject took, and ``ok`` versus
  ``skipped`` (a resumed run skips what the first run completed): both read "done";
- ``sub-X_survival.json``: ``provenance.analysed_at`` (the time of the analysis);
- ``sub-X_report.html``: the same ``analysed_at`` value in its provenance table;
- ``sub-X_outputs.json``: the checksums of the two files above (the file list and
  every other checksum must match);
- ``.graftwatch-batch.lock``: who held the folder (pid, start time).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from scripts.batch_lock import LOCK_NAME

TIMESTAMPED = ("_survival.json", "_report.html")
_ANALYSED_AT = re.compile(r"<td>analysed_at</td><td>[^<]*</td>")
_INDEX_STATUS = re.compile(r"<td>(ok|skipped)</td><td>[0-9.]+</td>")


def _digest(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _status_tsv(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    status, seconds = header.index("status"), header.index("seconds")
    out = []
    for line in lines[1:]:
        cells = line.split("\t")
        cells[status] = "done" if cells[status] in ("ok", "skipped") else cells[status]
        cells[seconds] = "-"
        out.append("\t".join(cells))
    return "\n".join([lines[0], *out])


def _normalised(path: Path) -> str:
    name = path.name
    if name == "status.tsv":
        return _digest(_status_tsv(path))
    if name == "index.html":
        return _digest(_INDEX_STATUS.sub("<td>done</td><td>-</td>", path.read_text("utf-8")))
    if name.endswith("_survival.json"):
        data = json.loads(path.read_text("utf-8"))
        data["provenance"].pop("analysed_at")
        return _digest(json.dumps(data, sort_keys=True))
    if name.endswith("_report.html"):
        return _digest(_ANALYSED_AT.sub("<td>analysed_at</td><td>-</td>", path.read_text("utf-8")))
    if name.endswith("_outputs.json"):
        files = json.loads(path.read_text("utf-8"))["files"]
        kept = {k: ("-" if k.endswith(TIMESTAMPED) else v) for k, v in files.items()}
        return _digest(json.dumps(kept, sort_keys=True))
    return _digest(path.read_bytes())


def comparable_outputs(out_dir: Path) -> dict[str, str]:
    """Relative path -> digest of every output file, with the fields above blanked out."""
    out_dir = Path(out_dir)
    return {str(p.relative_to(out_dir)): _normalised(p) for p in sorted(out_dir.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def differences(a: Path, b: Path) -> list[str]:
    """Files present in only one folder, or whose comparable contents differ."""
    da, db = comparable_outputs(a), comparable_outputs(b)
    only = [f"only in {a if k in da else b}: {k}" for k in sorted(set(da) ^ set(db))]
    changed = [f"differs: {k}" for k in sorted(set(da) & set(db)) if da[k] != db[k]]
    return only + changed
