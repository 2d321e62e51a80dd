"""Self-contained HTML reports: one per subject, and a cohort index page.

A subject report holds, per timepoint, a slice through the injection site in the plane
the scan was acquired (cord, lesion and graft outlined), the survival curve with its
intervals and fitted model, the table of numbers, the flags in plain words, the
assumptions behind each estimate and the provenance. Pictures are PNGs embedded as
base64, so the file opens anywhere. No patient identifier appears unless asked for.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from imaging.atomic import write_text_atomic

OUTLINES = ((1, "#33c4ff", "cord"), (2, "#ffb000", "lesion"), (3, "#ff2d55", "graft"))
PHI_KEYS = (("patient_name", "Patient name"), ("patient_id", "Patient ID"),
            ("patient_birth_date", "Birth date"))
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}
th{background:#eee}.critical{color:#b00020;font-weight:bold}.warning{color:#a66300}
.montage img{max-width:100%}figure{display:inline-block;margin:4px}figcaption{font-size:12px;text-align:center}
.numbers{overflow-x:auto}.numbers th{overflow-wrap:anywhere;min-width:4em}"""


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _slice_through_graft(tp):
    """2-D image and label slices through the graft (else lesion, else cord) centre.

    The slice axis is the acquisition's thickest voxel axis (the plane it was acquired in).
    """
    image = tp.images.image.array
    image = image[..., 0] if image.ndim == 4 else image
    labels = np.asarray(tp.images.labels.array)
    axis = int(np.argmax(tp.images.image.spacing))
    for value in (3, 2, 1):
        hits = np.argwhere(labels == value)
        if len(hits):
            index = int(np.round(hits[:, axis].mean()))
            break
    else:
        index = labels.shape[axis] // 2
    take = lambda a: np.take(a, index, axis=axis)  # noqa: E731
    spacing = [s for k, s in enumerate(tp.images.image.spacing) if k != axis]
    return take(image).T, take(labels).T, spacing[1] / spacing[0]


def _montage(timepoints: Sequence) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(timepoints), figsize=(2.6 * len(timepoints), 3.4), squeeze=False)
    for ax, tp in zip(axes[0], timepoints):
        image, labels, aspect = _slice_through_graft(tp)
        ax.imshow(image, cmap="gray", origin="lower", aspect=aspect)
        for value, colour, _ in OUTLINES:
            if (labels == value).any():
                ax.contour(labels == value, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"{tp.session_id}\nday {tp.days_post_transplant:g}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _survival_plot(result) -> str | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    points = [(tp.days_post_transplant, tp.estimate) for tp in result.timepoints
              if tp.estimate.surviving_fraction is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    days = np.array([d for d, _ in points])
    frac = np.array([e.surviving_fraction for _, e in points])
    low = np.array([e.surviving_fraction_ci_low if e.surviving_fraction_ci_low is not None else f
                    for (_, e), f in zip(points, frac)])
    high = np.array([e.surviving_fraction_ci_high if e.surviving_fraction_ci_high is not None else f
                     for (_, e), f in zip(points, frac)])
    ax.errorbar(days, frac, yerr=[frac - low, high - frac], fmt="o", color="k", capsize=3,
                label="measured (95 % CI)")
    if result.survival.status == "ok":
        grid = np.linspace(days.min(), days.max(), 200)
        ax.plot(grid, result.survival.predict(grid), color="#ff2d55", label="fitted plateau + decay")
    ax.set_xlabel("days since transplant")
    ax.set_ylabel("surviving fraction")
    ax.legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def _table(rows: list[dict], columns: Sequence[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "n/a" if v is None else html.escape(str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _phi(result) -> str:
    meta = result.timepoints[0].images.image.meta if result.timepoints else {}
    items = [f"<li>{label}: {html.escape(str(meta[key]))}</li>" for key, label in PHI_KEYS
             if meta.get(key)]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No patient identifiers in the input.</p>"


def subject_report_html(result, include_phi: bool = False) -> str:
    from segmentation.outputs import TIMEPOINT_COLUMNS
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>graftwatch: "
             f"{esc(result.subject_id)}</title><style>{STYLE}</style></head><body>",
             f"<h1>graftwatch report: {esc(result.subject_id)}</h1>"]
    if include_phi:
        parts.append("<h2>Patient</h2>" + _phi(result))
    parts.append("<h2>Graft at every timepoint</h2><p>Outlines: " + ", ".join(
        f"<span style='color:{c}'>{n}</span>" for _, c, n in OUTLINES) + "</p>")
    if result.timepoints:
        parts.append(f"<div class='montage'><img alt='slices' src='data:image/png;base64,"
                     f"{_montage(result.timepoints)}'></div>")
    plot = _survival_plot(result)
    parts.append("<h2>Survival</h2>")
    parts.append(f"<img alt='survival curve' src='data:image/png;base64,{plot}'>" if plot
                 else "<p>No surviving fraction could be measured.</p>")
    fit = result.survival
    parts.append(f"<p>Curve fit: {esc(fit.status)}. {esc(fit.reason or '')}</p>")
    parts.append("<h2>Numbers</h2><div class='numbers'>"
                 + _table(result.to_table(), TIMEPOINT_COLUMNS[:12]) + "</div>")
    parts.append("<h2>Flags</h2>")
    parts.append("<ul>" + "".join(f"<li class='{esc(f.severity)}'>{esc(f.severity)}: "
                                  f"{esc(f.message)}</li>" for f in result.flags) + "</ul>"
                 if result.flags else "<p>No flags.</p>")
    parts.append("<h2>Assumptions</h2><ul>" + "".join(f"<li>{esc(a)}</li>"
                                                       for a in result.assumptions) + "</ul>")
    parts.append("<h2>Provenance</h2>" + _table(_provenance_rows(result.to_json()["provenance"]),
                                                 ("key", "value")))
    parts.append("</body></html>")
    return "\n".join(parts)


def _provenance_rows(prov: dict) -> list[dict[str, str]]:
    """key/value rows; each input scan on its own row, named readably (no checksum lists)."""
    from segmentation.provenance import describe_input
    rows = [{"key": k, "value": str(v)} for k, v in prov.items()
            if k not in ("inputs", "label_inputs")]
    rows += [{"key": f"input {session}", "value": describe_input(record)}
             for session, record in prov.get("inputs", {}).items()]
    rows += [{"key": f"input {session} {contrast}", "value": describe_input(record)}
             for session, by_contrast in prov.get("label_inputs", {}).items()
             for contrast, record in by_contrast.items()]
    return rows


def write_subject_report(result, path: Path, include_phi: bool = False) -> Path:
    return write_text_atomic(path, subject_report_html(result, include_phi))


def write_cohort_index(out_dir: Path, statuses) -> Path:
    """DIR/index.html: every subject, its status and a link to its report."""
    rows = []
    for s in statuses:
        report = Path(out_dir) / s.subject_id / f"{s.subject_id}_report.html"
        link = (f"<a href='{html.escape(s.subject_id)}/{html.escape(report.name)}'>report</a>"
                if report.exists() else "")
        rows.append(f"<tr><td>{html.escape(s.subject_id)}</td><td>{html.escape(s.status)}</td>"
                    f"<td>{s.seconds:.1f}</td><td>{link}</td>"
                    f"<td style='text-align:left'>{html.escape(s.error)}</td></tr>")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>graftwatch cohort</title>"
            f"<style>{STYLE}</style></head><body><h1>graftwatch cohort</h1><table><tr><th>subject"
            f"</th><th>status</th><th>seconds</th><th>report</th><th>error</th></tr>{''.join(rows)}"
            f"</table></body></html>")
    return write_text_atomic(Path(out_dir) / "index.html", page)
