"""Preconditioner benchmarks: setup, apply, memory, iterations and solve time.

Laid out like scipy's ``benchmarks/benchmarks/sparse_linalg_solve.py``. The
grid (problems, sizes, preconditioners, Krylov methods) and the quick/full
switch are in :mod:`.common`; combinations that make no sense (CG on a
nonsymmetric matrix or with a nonsymmetric ``M``, a fixed-size matrix at
another size) raise ``NotImplementedError`` in ``setup`` and show as skipped.

``LearnedLU`` is fitted once per (problem, size) in ``setup_cache`` and
loaded in ``setup``; ``Fit.time_setup`` and ``Fit.peakmem_setup`` run
the full fit (training included) inside the measured call.
"""

import numpy as np

from learned_precond import get_preconditioner

from .common import (
    GRID_PROBLEMS,
    METHODS,
    PRECONDITIONERS,
    SIZES,
    LearnedLUCache,
    build_problem,
    check_method,
    fit,
    fitted,
    rhs,
    run_solve,
)


class Fit:
    """Cost of ``fit``: wall time and peak memory (``LearnedLU``: the whole training)."""

    # Not named "Setup": asv matches the hook name "setup" case-insensitively
    # against module attributes and would take such a class for a module-level hook.

    params = [list(GRID_PROBLEMS), list(SIZES), list(PRECONDITIONERS)]
    param_names = ["problem", "size", "preconditioner"]
    # One fit per sample; a LearnedLU fit takes seconds to minutes.
    number = 1
    repeat = (1, 10, 10.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 900

    def setup(self, problem, size, preconditioner):
        self.problem = build_problem(problem, size)
        get_preconditioner(preconditioner)  # its module imported outside the timing

    def time_setup(self, problem, size, preconditioner):
        fit(preconditioner, self.problem)

    def peakmem_setup(self, problem, size, preconditioner):
        fit(preconditioner, self.problem)


class Apply(LearnedLUCache):
    """One application ``M @ x`` and the bytes ``M`` holds."""

    params = [list(GRID_PROBLEMS), list(SIZES), list(PRECONDITIONERS)]
    param_names = ["problem", "size", "preconditioner"]
    rounds = 1
    repeat = (3, 20, 10.0)
    timeout = 300

    def setup(self, cache, problem, size, preconditioner):
        self.M = fitted(preconditioner, problem, size, cache)
        self.x = np.random.default_rng(0).standard_normal(self.M.shape[0])

    def time_apply(self, cache, problem, size, preconditioner):
        self.M @ self.x

    def track_memory_bytes(self, cache, problem, size, preconditioner):
        return int(self.M.nbytes)

    track_memory_bytes.unit = "bytes"


class Solve(LearnedLUCache):
    """Krylov iterations to ``rtol = 1e-8``, convergence, and solve time."""

    params = [list(GRID_PROBLEMS), list(SIZES), list(PRECONDITIONERS), list(METHODS)]
    param_names = ["problem", "size", "preconditioner", "method"]
    rounds = 1
    repeat = (1, 5, 10.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, cache, problem, size, preconditioner, method):
        self.problem = build_problem(problem, size)
        check_method(method, self.problem)
        self.M = fitted(preconditioner, problem, size, cache)
        check_method(method, self.problem, self.M, preconditioner)
        self.b = rhs(self.problem.A)

    def _solve(self, method):
        return run_solve(self.problem.A, self.b, self.M, method)

    def time_solve(self, cache, problem, size, preconditioner, method):
        self._solve(method)

    def track_iterations(self, cache, problem, size, preconditioner, method):
        return int(self._solve(method).iterations)

    track_iterations.unit = "iterations"

    def track_converged(self, cache, problem, size, preconditioner, method):
        # 1 when the true residual met rtol within maxiter, else 0.
        return int(self._solve(method).converged)

    track_converged.unit = "converged (1 = yes)"
