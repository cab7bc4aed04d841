"""The comparison grid: rows (rows.py), one fit as a pure function (jobs.py), the grid with its
selection rule (comparison.py) and the calibration of the models a run saves (calibrate.py)."""

from .comparison import MIN_VAL_GROUPS, OOF_FOLDS, ComparisonGrid, Progress
from .jobs import FitJob, GridData, Inputs, fit_and_score
from .rows import Candidate, RunSpec, pick

__all__ = ["MIN_VAL_GROUPS", "OOF_FOLDS", "Candidate", "ComparisonGrid", "FitJob", "GridData",
           "Inputs", "Progress", "RunSpec", "fit_and_score", "pick"]
