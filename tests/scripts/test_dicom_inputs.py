"""A DICOM input is named readably everywhere it is written: series folder, UID, file count.

The phantom's DICOM export (``graftwatch phantom OUT --dicom``) analysed with ``graftwatch
analyze``: survival.json names each scan by its series folder (relative to the subject
folder), SeriesInstanceUID and number of files, with one checksum per file in the
provenance; the report shows the same on one readable line; the tables and the SR still work.
"""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from imaging.study import discover_subject
from scripts.cli import main
from segmentation.dicom_sr import read_dicom_sr
from segmentation.outputs import dicom_sr_path


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    base = tmp_path_factory.mktemp("dicom_inputs")
    study = base / "study"
    assert main(["phantom", str(study), "--subjects", "1", "--seed", "4", "--contrast", "spio",
                 "--sessions", "2", "--dicom"]) == 0
    with (study / "participants.tsv").open() as handle:
        transplant = next(csv.DictReader(handle, delimiter="\t"))["transplant_date"]
    tree = study / "sourcedata" / "sub-001"
    out = base / "out"
    assert main(["analyze", str(tree), "--out", str(out), "--device", "cpu",
                 "--transplant-date", transplant]) == 0
    return discover_subject(tree, transplant_date=transplant), out / "sub-001"


def test_survival_json_names_each_series_and_checksums_each_file(analysed):
    subject, folder = analysed
    saved = json.loads((folder / "sub-001_survival.json").read_text())
    provenance = saved["provenance"]
    assert [t["session_id"] for t in saved["timepoints"]] == [tp.label for tp in subject.timepoints]
    for tp, written in zip(subject.timepoints, saved["timepoints"]):
        scan = tp.scans["T2w"]
        series_folder = scan.path[0].parent
        expected = {"path": series_folder.relative_to(subject.root).as_posix(),
                    "series_uid": scan.series_uid, "n_files": len(scan.path)}
        assert written["scan"] == expected and expected["path"].count("/") == 1   # ses-Y/series
        record = provenance["inputs"][tp.label]
        assert {k: record[k] for k in expected} == expected
        assert [f["path"] for f in record["files"]] == [p.name for p in scan.path]
        first = record["files"][0]["sha256"]
        assert first == hashlib.sha256(scan.path[0].read_bytes()).hexdigest()
        assert len({f["sha256"] for f in record["files"]}) == len(scan.path)   # one per file
        t2star = provenance["label_inputs"][tp.label]["T2starw"]
        assert t2star["series_uid"] == tp.scans["T2starw"].series_uid
        assert t2star["n_files"] == len(t2star["files"]) == len(tp.scans["T2starw"].path)


def test_report_tables_and_sr_show_the_series_readably(analysed):
    subject, folder = analysed
    report = (folder / "sub-001_report.html").read_text()
    for tp in subject.timepoints:
        scan = tp.scans["T2w"]
        assert (f"DICOM series {scan.series_uid}, {len(scan.path)} files, sha256 of each file "
                "in survival.json") in report
    assert "PosixPath" not in report and ".dcm" not in report
    with (folder / "sub-001_timepoints.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["session_id"] for r in rows] == [tp.label for tp in subject.timepoints]
    reported = read_dicom_sr(dicom_sr_path(folder.parent, "sub-001"))
    assert [r.measurement.session for r in reported] == [r["session_id"] for r in rows]
