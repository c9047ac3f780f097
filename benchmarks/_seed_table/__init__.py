"""The pieces of ``benchmarks/seed_table.py``, one module per thing it produces.

cases
    Settings (block size, samples, tolerances), the rows of the main table,
    the sizes and time budgets (``config``).
blog
    The blog's own numbers and the goals ours are checked against.
measure
    One measurement of LearnedLU on one matrix (:func:`measure.measure`).
experiments
    The runs behind sections 1, 2, 4 and 5.
figures
    Heat maps and the diffusion plots.
document
    Each section's tables and the Markdown page.
prose
    Section 6: the findings in words, from the measured values.
text
    How numbers, iteration counts and option sets are written.
"""
