"""Physical constants shared by the phantom simulator and the analysis, with their units.

These are *defaults*: the simulator samples per-subject values around them (the phantom
contract in DESIGN.md), and the analysis takes them from its configuration, where a
user sets the values of their own labelling protocol.
"""

# Cells per mm3 of graft tissue (contract range 1e5-3e5).
DEFAULT_PACKING_DENSITY_CELLS_PER_MM3 = 2.0e5

# SPIO iron per labelled cell, picograms (contract range 10-30).
DEFAULT_IRON_PG_PER_CELL = 20.0

# R2* added per unit local iron concentration: 1/s per (microgram Fe per mm3).
# (1 ug/mm3 = 1 mg/mL = 17.9 mM Fe; 100 /s per ug/mm3 = 5.6 /s/mM, an effective in-tissue value
# for clustered intracellular SPIO at 3 T.)
DEFAULT_R2STAR_RELAXIVITY_PER_S_PER_UG_PER_MM3 = 100.0

# Fluorine-19 atoms per labelled cell (contract range 1e11-1e13).
DEFAULT_FLUORINE_ATOMS_PER_CELL = 1.0e12

PICOGRAMS_PER_MICROGRAM = 1.0e6
