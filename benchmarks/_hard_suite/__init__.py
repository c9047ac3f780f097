"""The pieces of ``benchmarks/hard_suite.py``, one module per thing it produces.

measure
    One (row, method) case, in this process (:func:`measure.run_case`) or in
    a subprocess of its own with a timeout (:func:`measure.run_subprocess`).
goals
    Issue 15's "What it must show", computed from the measured records.
page
    The tables and the Markdown page.
"""
