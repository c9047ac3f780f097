r"""Sparse approximate inverse (SPAI) preconditioners: fitted, classical and generated.

A SPAI preconditioner is a sparse matrix ``R ~ A^-1`` (or a product of two)
whose sparsity pattern is fixed in advance; applying it is one or two sparse
matrix-vector products, with no triangular solve.

API map
-------
SPAI, ClassicalSPAI (:mod:`~learned_precond.spai.operator`)
    ``fit(A) -> LinearOperator``: ``M = R R^T`` (SPD, for CG) or ``M = R``;
    ``R`` by gradient descent on the exact Frobenius loss
    (:mod:`~learned_precond.spai.learned`, :mod:`~learned_precond.spai.loss`)
    or by the classical least-squares SPAI and FSAI
    (:mod:`~learned_precond.spai.classical`).
SPAIGenerator, GeneratedSPAI (:mod:`~learned_precond.spai.generator`)
    The graph-conditioned generator (seed 003): trained on a PDE matrix
    family, it outputs the SPAI of an unseen matrix in one forward pass;
    its graph networks are :mod:`~learned_precond.spai.nets`.
sparsity_pattern (:mod:`~learned_precond.spai.pattern`)
    The pattern ``R`` lives on (``'A'``, ``'A2'``, a mask, extra fill).
spd_certificate (:mod:`~learned_precond.spai.certificate`)
    Why ``R`` is nonsingular, so that ``R R^T`` is SPD.
SPAIReport, TrainingReport (:mod:`~learned_precond.spai.report`)
    What a fit and a training run did.

Saving and loading (``.npz`` + JSON, never pickle) is
:mod:`~learned_precond.spai.io`, called by the classes' ``save``/``load``.
"""

from .certificate import spd_certificate
from .generator import GeneratedSPAI, SPAIGenerator
from .operator import METHODS, SPAI, ClassicalSPAI
from .pattern import PATTERNS, sparsity_pattern
from .report import SPAIReport, TrainingReport

__all__ = [
    "METHODS",
    "PATTERNS",
    "SPAI",
    "ClassicalSPAI",
    "GeneratedSPAI",
    "SPAIGenerator",
    "SPAIReport",
    "TrainingReport",
    "sparsity_pattern",
    "spd_certificate",
]
