"""PDE matrix families and the graph-conditioned SPAI generator (seed 003).

The public path of the learned-SPAI workflow, as the documentation writes
it (``from learned_precond.family import MatrixFamily, SPAIGenerator``):

:class:`MatrixFamily` (:mod:`learned_precond.problems.family`)
    Deterministic data sets of SPD matrices from one PDE family on a grid.
:class:`SPAIGenerator`, :class:`GeneratedSPAI` (:mod:`learned_precond.spai.generator`)
    The generator trained on a family (its :class:`TrainingReport`), and the
    preconditioner it outputs for an unseen matrix in one forward pass.

``python -m learned_precond.family --kind diffusion --n 12 --out gen.npz``
trains a generator and saves it (:func:`main`, defined with the other
command lines in :mod:`learned_precond.cli`).
"""

from .problems.family import FAMILIES, MatrixFamily
from .spai.generator import GeneratedSPAI, SPAIGenerator
from .spai.report import TrainingReport

__all__ = ["FAMILIES", "MatrixFamily", "SPAIGenerator", "GeneratedSPAI", "TrainingReport", "main"]


def main(argv=None):
    """``python -m learned_precond.family``: train an SPAI generator and save it."""
    from .cli import train_generator

    return train_generator(argv)


if __name__ == "__main__":
    raise SystemExit(main())
