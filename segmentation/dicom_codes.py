"""Coded terms for graftwatch's DICOM SEG and SR outputs, and the tracking identifiers.

Standard codes come from pydicom's copy of the DICOM code dictionaries (PS3.16), so
each one is a concept DICOM itself lists:

- spinal cord: category SCT 91723000 "Anatomical Structure", type SCT 2748008
  "Spinal cord" (CID 7150 / CID 7151). The older category SCT 123037004 "Body
  structure" is the SNOMED hierarchy root, not a segmentation category; DICOM
  CID 7150 uses 91723000.
- lesion (edema, cyst, hemorrhage): category SCT 49755003 "Morphologically
  Abnormal Structure" (DICOM's current meaning for what was "Morphologically
  Altered Structure"), type SCT 52988006 "Lesion".
- graft: category SCT 105590001 "Substance", type SCT 246345001 "Graft material"
  (CID 637 "Exogenous Substance Type"). The transplanted cells are exogenous
  material placed in the cord; no DICOM context group holds a "transplanted cell
  graft" concept, and "Graft material" is the closest standard one.

Where no standard concept exists, a private scheme ``99GRAFTWATCH`` (DICOM's
"99" prefix for local schemes) names it: the surviving graft fraction and the
event that day counts start from (the cell transplantation).

Tracking: a tracking ID such as "sub-01 graft" is the same string at every
timepoint of a subject, and its tracking UID is derived from it (uuid5 under a
fixed graftwatch namespace, written as a "2.25." UID), so every timepoint's graft
segment and every SR measurement group for it share one UID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

PRIVATE_SCHEME = "99GRAFTWATCH"

# Fixed namespace: changing it would change every tracking UID ever written.
TRACKING_NAMESPACE = uuid.UUID("6f1c1f9e-5d0b-5b7a-9a53-2f7a0c3e8b41")


@dataclass(frozen=True)
class LabelTerms:
    """What one graftwatch label is, in DICOM segment terms."""

    label: int
    name: str
    category: CodedConcept
    property_type: CodedConcept


def _concept(code) -> CodedConcept:
    return CodedConcept(code.value, code.scheme_designator, code.meaning)


LABEL_TERMS: dict[int, LabelTerms] = {
    1: LabelTerms(1, "spinal cord", _concept(codes.SCT.AnatomicalStructure),
                  _concept(codes.SCT.SpinalCord)),
    2: LabelTerms(2, "lesion", _concept(codes.SCT.MorphologicallyAbnormalStructure),
                  _concept(codes.SCT.Lesion)),
    3: LabelTerms(3, "graft", _concept(codes.SCT.Substance), _concept(codes.SCT.GraftMaterial)),
}
GRAFT_LABEL = 3

SURVIVING_FRACTION = CodedConcept("GW001", PRIVATE_SCHEME, "Surviving graft fraction")
CELL_TRANSPLANTATION = CodedConcept("GW002", PRIVATE_SCHEME, "Cell transplantation")
NOT_QUANTIFIABLE = CodedConcept("GW003", PRIVATE_SCHEME, "Not quantifiable")
GRAFT_VOLUME = _concept(codes.SCT.Volume)
CUBIC_MILLIMETER = _concept(codes.UCUM.CubicMillimeter)
RATIO = _concept(codes.UCUM.Ratio)
DAY = _concept(codes.UCUM.Day)
PRE_OPERATIVE = _concept(codes.SCT.PreOperative)
POST_OPERATIVE = _concept(codes.SCT.PostOperative)
ARTIFICIAL_INTELLIGENCE = _concept(codes.DCM.ArtificialIntelligence)
SPINAL_CORD = LABEL_TERMS[1].property_type


def label_for_property_type(concept) -> int | None:
    """The graftwatch label whose segment type is ``concept`` (code value and scheme), or None."""
    for terms in LABEL_TERMS.values():
        if (concept.value == terms.property_type.value
                and concept.scheme_designator == terms.property_type.scheme_designator):
            return terms.label
    return None


def tracking_id(subject_id: str, label: int) -> str:
    """The human-readable tracking ID of ``label`` for a subject, e.g. 'sub-01 graft'."""
    return f"{subject_id} {LABEL_TERMS[label].name}"


def derived_uid(text: str) -> str:
    """A DICOM UID derived from ``text`` (uuid5 as a '2.25.' UID): same text, same UID."""
    return f"2.25.{uuid.uuid5(TRACKING_NAMESPACE, text).int}"


def tracking_uid(identifier: str) -> str:
    """The tracking UID of a tracking ID: the same ID always gives the same UID."""
    return derived_uid(identifier)
