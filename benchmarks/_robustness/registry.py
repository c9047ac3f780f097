"""The registry of cases: name -> function, description, what an error must name."""

__all__ = ["CASES", "case"]

#: name -> ``dict(func, description, names, timeout, quick, rss_limit)``.
CASES = {}


def case(name, description, *, names=None, timeout=120, quick=True, rss_limit=None):
    """Register ``func() -> (ok, detail)`` as a case.

    Parameters
    ----------
    names : list of str
        Regular expressions; an error message must match one of them to be a
        ``clear error`` (it names the argument).
    timeout : float
        Seconds before the case counts as a ``hang``.
    quick : bool
        Part of ``--quick``.
    rss_limit : int, optional
        Peak RSS in bytes above which the case is a ``crash`` (default
        :data:`runner.RSS_LIMIT`).
    """
    if name in CASES:
        raise ValueError(f"case {name!r} registered twice")

    def register(func):
        CASES[name] = dict(func=func, description=description, names=names or [],
                           timeout=timeout, quick=quick, rss_limit=rss_limit)
        return func
    return register
