"""Human-readable numbers for reprs, tables and error messages.

Shared by every module that prints a size or a list of rows; the benchmark
scripts use the same functions for their generated pages.
"""

__all__ = ["format_bytes", "format_indices", "one_line"]


def format_bytes(nbytes, *, spec=".1f"):
    """Return ``nbytes`` in B, KiB, MiB or GiB (``spec`` formats all but plain bytes).

    Examples
    --------
    >>> format_bytes(512), format_bytes(3 * 1024**2), format_bytes(1536, spec=".3g")
    ('512 B', '3.0 MiB', '1.5 KiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:{spec}} {unit}"
        nbytes /= 1024
    return f"{nbytes} B"  # pragma: no cover


def format_indices(indices, limit=5):
    """Return the first ``limit`` of ``indices`` comma-separated, then how many more.

    Examples
    --------
    >>> format_indices([3, 7]), format_indices(range(8))
    ('3, 7', '0, 1, 2, 3, 4 (and 3 more)')
    """
    indices = [int(i) for i in indices]
    shown = ", ".join(str(i) for i in indices[:limit])
    more = f" (and {len(indices) - limit} more)" if len(indices) > limit else ""
    return shown + more


def one_line(exc):
    r"""Return an exception's message on one line (its type's name when it has none).

    Examples
    --------
    >>> one_line(ValueError("bad\n   value")), one_line(KeyError("name")), one_line(OSError())
    ('bad value', 'name', 'OSError')
    """
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__
