"""The phantom simulator: longitudinal spinal MRI studies of a cell graft with known truth.

    spec = sample_spec(rng, label="spio")
    subject = simulate_subject(spec, rng, subject_id="sub-001")
    write_dataset(out, n_subjects=6, seed=0)

Parameters, units, ranges and what is not modelled: imaging/phantom/README.md.
"""

from imaging.phantom.dataset import write_dataset
from imaging.phantom.results import SessionTruth, SimulatedSession, SimulatedSubject
from imaging.phantom.sampling import sample_spec
from imaging.phantom.simulate import simulate_subject
from imaging.phantom.spec import PhantomSpec

__all__ = ["PhantomSpec", "SessionTruth", "SimulatedSession", "SimulatedSubject",
           "sample_spec", "simulate_subject", "write_dataset"]
