"""asv benchmark suite of learned_precond (run from ``benchmarks/``; see docs/benchmarks.md).

Modules
-------
common
    The parameter grid (problems, sizes, preconditioners, Krylov methods),
    the quick/full switch (``LP_BENCH_FULL=1``), problem and preconditioner
    construction, and the ``setup_cache`` that fits ``LearnedLU`` once.
preconditioners
    ``Fit`` (``time_setup``, ``peakmem_setup``), ``Apply`` (``time_apply``,
    ``track_memory_bytes``) and ``Solve`` (``track_iterations``,
    ``track_converged``, ``time_solve``).
"""
