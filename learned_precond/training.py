"""Training of the learned LU (moved to :mod:`learned_precond.lu.train`).

Kept so that ``from learned_precond.training import LUModel, FitReport,
train`` keeps working.
"""

from .lu.train import LOSSES, FitReport, LUModel, train

__all__ = ["LOSSES", "FitReport", "LUModel", "train"]
