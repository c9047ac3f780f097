"""What a SPAI fit reports (:class:`SPAIReport`) and what training a generator does."""

from dataclasses import dataclass, field

__all__ = ["SPAIReport", "TrainingReport"]


@dataclass
class SPAIReport:
    """How a SPAI preconditioner was obtained.

    Attributes
    ----------
    method : str
        ``'gd'``, ``'lstsq'``, ``'fsai'`` or ``'generator'``.
    pattern : str
        ``'A'``, ``'A2'`` or ``'mask'``, with ``'+f%'`` for extra fill.
    nnz : int
        Stored entries of ``R``.
    loss_init, loss : float
        Frobenius loss (squared; ``||I - R^T A R||_F^2`` or ``||I - A R||_F^2``)
        of the Jacobi start and of the result (nan where not computed).
    steps : int
        Loss evaluations of the gradient descent (0 for direct methods).
    converged : bool
        The descent met its tolerance (direct methods: True).
    certificate : str
        Why ``R`` is nonsingular, so that ``R R^T`` is SPD (see
        :func:`spd_certificate`); empty for the nonsymmetric form.
    fit_time : float
        Seconds.
    notes : list of str
    """

    method: str = ""
    pattern: str = "A"
    nnz: int = 0
    loss_init: float = float("nan")
    loss: float = float("nan")
    steps: int = 0
    converged: bool = True
    certificate: str = ""
    fit_time: float = 0.0
    notes: list = field(default_factory=list)


@dataclass
class TrainingReport:
    """What training did.

    Attributes
    ----------
    history : list of dict
        Per epoch: ``epoch``, ``loss`` (training loss per unknown, with the KL
        term), ``frobenius`` and ``kl`` (per unknown), ``val`` (validation
        ``||I - R^T A R||_F^2 / N`` at inference, ``z = 0``), ``seconds``.
    best_epoch : int
        Epoch whose parameters were kept (lowest ``val``).
    jacobi_val : float
        The validation loss of Jacobi (``R_s = I``), for reference.
    n_train, n_val : int
        Matrices used for gradient steps and for model selection (both from
        the training split).
    train_time : float
        Seconds, preprocessing included.
    stop_reason : str
    """

    history: list = field(default_factory=list)
    best_epoch: int = -1
    jacobi_val: float = float("nan")
    n_train: int = 0
    n_val: int = 0
    train_time: float = 0.0
    stop_reason: str = ""
