"""graftwatch imaging: the Volume type, readers and writers, geometry, the phantom simulator.

Never imports torch.
"""

from imaging.errors import GraftwatchError
from imaging.io import load, load_labels, save
from imaging.volume import LabelVolume, Volume, require_same_space

__all__ = ["GraftwatchError", "LabelVolume", "Volume", "load", "load_labels", "require_same_space",
           "save"]
