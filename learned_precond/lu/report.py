"""FitReport: what happened during ``LearnedLU.fit``, filled in by every stage."""

from dataclasses import dataclass, field

__all__ = ["FitReport"]


@dataclass
class FitReport:
    """What happened during ``LearnedLU.fit``.

    Attributes
    ----------
    steps : int
        Optimizer steps taken.
    loss_history : list of float
        Training loss per step.
    val_history : list of (int, float)
        ``(step, validation loss)`` at each evaluation.
    best_step : int
        Step whose parameters were kept (0 = the initialization).
    relative_error : float
        Probe estimate of ``||L U - A||_F / ||A||_F`` for the kept factors
        (permuted, scaled matrix; the estimate has ~1/sqrt(k) relative noise).
    init_relative_error : float
        The same estimate for the initialization.
    stop_reason : str
        Why training stopped: ``'tolerance'``, ``'max_steps'``,
        ``'max_steps=0'``, ``'exact'`` (the start is exact), ``'time_budget'``
        (the caller's ``time_budget`` ran out) or ``'time_limit'`` (the
        default limit on training, see ``train_limit``).
    cut_short : list of str
        The stages that a time limit cut short, in order: ``'initialize'``
        (``init='auto'`` did not try every start), ``'train'``, ``'checks'``
        (the condition estimate of A was skipped). Empty when nothing was.
    converged : bool
        Training met its tolerance (or the initialization was already exact).
    time_budget : float or None
        The ``time_budget`` the fit was given (seconds).
    train_limit : float
        Seconds training was allowed: what was left of ``time_budget`` after
        the start (less a reserve for packing and checks), or, without a
        budget, ``max(30 s, 10 x start_seconds)``.
    start_seconds : float
        Seconds until the start existed: pivoting, ordering, scaling and
        initialization (``init='auto'``: every start tried).
    train_seconds : float
        Seconds of training (``train_time`` is the same number).
    fit_time, init_time, ordering_time : float
        Seconds: the whole fit, the initialization alone, the ordering alone.
        ``fit_time - start_seconds - train_seconds`` is packing and checks.
    rank_tol : float
        ``init='hierarchical'``: the compression tolerance used.
    hierarchical : dict or None
        ``init='hierarchical'``: nodes, largest front and separator, largest
        rank, truncated nodes, floats per unknown, seconds.
    start_iterations, iterations : float
        Nested layout: Krylov iterations (CG for an SPD operator, else GMRES;
        random right-hand side, rtol 1e-8) of the start and of the kept
        factors, measured during training (its figure of merit; NaN when not
        trained).
    recoveries : int
        Times a non-finite loss was caught and training restarted from the
        best state with half the learning rate.
    """

    loss: str = "probe"
    init: str = ""
    ordering: str = ""
    symmetric: bool = False
    steps: int = 0
    loss_history: list = field(default_factory=list)
    val_history: list = field(default_factory=list)
    best_step: int = 0
    relative_error: float = float("nan")
    init_relative_error: float = float("nan")
    stop_reason: str = ""
    cut_short: list = field(default_factory=list)
    converged: bool = False
    time_budget: float | None = None
    train_limit: float = float("nan")
    start_seconds: float = 0.0
    train_seconds: float = 0.0
    fit_time: float = 0.0
    init_time: float = 0.0
    ordering_time: float = 0.0
    recoveries: int = 0
    start_iterations: float = float("nan")
    iterations: float = float("nan")
    rank_tol: float = float("nan")
    hierarchical: dict | None = None
    n_parameters: int = 0
    nbytes: int = 0
    cond_A: float = float("nan")
    cond_A_hat: float = float("nan")
    pivoting: str = "none"
    notes: list = field(default_factory=list)

    @property
    def train_time(self):
        """Seconds of training (the same as ``train_seconds``)."""
        return self.train_seconds

    @train_time.setter
    def train_time(self, value):
        self.train_seconds = value

    def summary(self):
        """A few readable lines."""
        lines = [
            f"loss={self.loss} init={self.init} ordering={self.ordering} "
            f"symmetric={self.symmetric} pivoting={self.pivoting}",
            f"steps={self.steps} best_step={self.best_step} stop={self.stop_reason} "
            f"converged={self.converged} recoveries={self.recoveries}",
            f"||LU-A||_F/||A||_F ~ {self.relative_error:.3g} "
            f"(init {self.init_relative_error:.3g})",
            f"cond(A) ~ {self.cond_A:.3g}, cond(A_hat) ~ {self.cond_A_hat:.3g}",
            f"time: fit {self.fit_time:.3g} s (start {self.start_seconds:.3g}: ordering "
            f"{self.ordering_time:.3g}, init {self.init_time:.3g}; train "
            f"{self.train_seconds:.3g} of at most {self.train_limit:.3g})",
        ]
        if self.cut_short:
            lines.append(f"cut short by the time limit: {', '.join(self.cut_short)}")
        return "\n".join(lines + self.notes)
