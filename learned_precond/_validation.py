"""Input checks shared by every preconditioner, the Krylov harness and the CLI.

Each check raises with a message that names the problem and the fix, so a
user never meets a confusing traceback from deep inside scipy or torch.
"""

import numbers
from typing import NamedTuple

import numba
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .exceptions import StructurallySingularError

__all__ = [
    "as_matrix",
    "check_square",
    "check_rhs",
    "check_positive_int",
    "check_structure",
    "structure_problem",
    "diagonal_report",
    "DiagonalReport",
    "row_chunks",
    "dense_abs_maxima",
    "dense_scan",
    "DenseScan",
]

#: Bytes of one row chunk when a dense matrix is checked piece by piece.
CHUNK_BYTES = 32 * 2**20


def row_chunks(arr, chunk_bytes=CHUNK_BYTES):
    """``(start, arr[start:stop])`` over row blocks of a 2-D ndarray of about ``chunk_bytes``.

    Checks of a large dense matrix go through it in blocks: a whole-array
    temporary (``np.abs(A)``, ``A - A.T``) of a 16384 x 16384 matrix is 2 GiB
    of fresh memory, whose first touch costs seconds.
    """
    rows = max(1, int(chunk_bytes // max(arr.shape[1] * arr.itemsize, 1)))
    for start in range(0, arr.shape[0], rows):
        yield start, arr[start:start + rows]


class DenseScan(NamedTuple):
    """What the checks of a dense matrix read from its entries (:func:`dense_scan`)."""

    #: max |a_ij| per row and per column, float64 (NaN where the row/column has one)
    row_max: np.ndarray
    col_max: np.ndarray
    #: entries that are nonzero (-0.0 is zero; a subnormal is nonzero), per row and column
    row_nonzeros: np.ndarray
    col_nonzeros: np.ndarray
    #: entries that are NaN or +-Inf
    nonfinite: int
    #: the largest |a_ij| as the bits of its dtype (0: every entry is zero), and as
    #: that float: read as bits, so a process that flushes subnormals to zero
    #: (torch.set_flush_denormal) still sees them
    largest_bits: int
    largest: np.floating


#: Integer views and their sign masks, for the dtypes :func:`dense_scan` compiles.
_BITS = {np.dtype(np.float64): (np.int64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
         np.dtype(np.float32): (np.int32, 0x7FFFFFFF, 0x7F800000)}


def dense_scan(arr):
    """One pass over a dense 2-D ``arr``: the facts the input checks need.

    C-contiguous float64 and float32 go through a compiled, row-parallel pass
    over the entries' bit patterns (:func:`_scan_bits`: each entry read once,
    no temporaries; on a 16384 x 16384 A it replaced four numpy passes, the
    finiteness, magnitude, nonzero and maxima checks, 2.1 s in all); any
    other layout or dtype through :func:`_dense_scan_reference`, the numpy
    version it is tested against.

    Returns
    -------
    DenseScan
    """
    arr = np.asarray(arr)
    bits = _BITS.get(arr.dtype)
    if bits is None or not arr.flags.c_contiguous or arr.ndim != 2:
        return _dense_scan_reference(arr)
    itype, mask, inf = bits
    view = arr.view(itype)
    blocks = max(1, min(numba.get_num_threads(), arr.shape[0]))
    row_bits, col_bits, row_nz, col_nz, nonfinite = _scan_bits(view, itype(mask), itype(inf),
                                                               blocks)
    top = int(row_bits.max()) if row_bits.size else 0
    return DenseScan(
        row_max=row_bits.view(arr.dtype).astype(np.float64),
        col_max=col_bits.view(arr.dtype).astype(np.float64),
        row_nonzeros=row_nz, col_nonzeros=col_nz, nonfinite=int(nonfinite),
        largest_bits=top, largest=_bits_value(top, arr.dtype))


@numba.njit(cache=True, nogil=True, parallel=True)
def _scan_bits(B, mask, inf, blocks):
    """Per row and column of the integer view ``B``: the largest magnitude bits and
    the count of nonzero magnitudes; and the count of non-finite entries (their
    exponent bits all ones). Rows are split into one block per thread, each with
    its own column accumulators (summed at the end)."""
    n, m = B.shape
    per = (n + blocks - 1) // blocks
    row_bits = np.zeros(n, B.dtype)
    row_nz = np.zeros(n, np.int64)
    col_bits = np.zeros((blocks, m), B.dtype)
    col_nz = np.zeros((blocks, m), np.int64)
    bad = np.zeros(blocks, np.int64)
    for k in numba.prange(blocks):
        for i in range(k * per, min(n, (k + 1) * per)):
            top = row_bits[i]
            count = 0
            for j in range(m):
                v = B[i, j] & mask
                if v != 0:
                    count += 1
                    col_nz[k, j] += 1
                    if v > top:
                        top = v
                    if v > col_bits[k, j]:
                        col_bits[k, j] = v
                    if v >= inf:
                        bad[k] += 1
            row_bits[i] = top
            row_nz[i] = count
    cb = col_bits[0].copy()
    cn = col_nz[0].copy()
    for k in range(1, blocks):
        for j in range(m):
            if col_bits[k, j] > cb[j]:
                cb[j] = col_bits[k, j]
            cn[j] += col_nz[k, j]
    return row_bits, cb, row_nz, cn, bad.sum()


def _dense_scan_reference(arr):
    """:func:`dense_scan` in numpy, by row chunks (no whole-array temporaries)."""
    n, m = arr.shape
    row_max, col_max = np.zeros(n), np.zeros(m)
    row_nz, col_nz = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    nonfinite = 0
    largest_bits = 0
    for start, chunk in row_chunks(arr):
        a = np.abs(chunk)
        stop = start + a.shape[0]
        row_max[start:stop] = a.max(axis=1) if m else 0.0
        if a.size:
            np.maximum(col_max, a.max(axis=0), out=col_max)  # NaN where a NaN is
        nonzero = chunk != 0
        row_nz[start:stop] = nonzero.sum(axis=1)
        col_nz += nonzero.sum(axis=0)
        nonfinite += int(np.count_nonzero(~np.isfinite(chunk)))
        if a.size:
            largest_bits = max(largest_bits, int(np.max(_magnitude_bits(a))))
    return DenseScan(row_max, col_max, row_nz, col_nz, nonfinite, largest_bits,
                     _bits_value(largest_bits, np.abs(arr[:0]).dtype))


def _magnitude_bits(mags):
    """The bit patterns of non-negative floats ``mags`` as integers (ordered as the values)."""
    return mags.view(np.dtype(f"i{mags.dtype.itemsize}"))


def _bits_value(bits, dtype):
    """The float of ``dtype`` whose bit pattern is ``bits`` (bitwise: never flushed)."""
    return np.array(bits, dtype=f"i{np.dtype(dtype).itemsize}").view(dtype)[()]


def dense_abs_maxima(arr):
    """The row and column maxima of ``|arr|`` (float64), in one pass (:func:`dense_scan`)."""
    scan = dense_scan(arr)
    return scan.row_max, scan.col_max


def as_matrix(A, *, name="A", allow_operator=False, allow_complex=False):
    """Validate ``A`` and return it as ``csr_array``, ``ndarray`` or ``LinearOperator``.

    Parameters
    ----------
    A : sparse array/matrix, ndarray or LinearOperator
        The system matrix.
    name : str
        Name used in error messages.
    allow_operator : bool
        Accept a ``LinearOperator`` (returned unchanged after the shape check).
    allow_complex : bool
        Accept complex entries (for the preconditioners whose class says
        ``supports_complex``, and the Krylov harness); else complex ``A`` is
        refused, never truncated to its real part.

    Returns
    -------
    csr_array, ndarray or LinearOperator
        Sparse input becomes a canonical ``csr_array`` (duplicates summed,
        indices sorted) in floating point; dense input a 2-D float ndarray.

    Raises
    ------
    TypeError
        Not a matrix, or an integer/boolean dtype.
    NotImplementedError
        Complex entries (unless ``allow_complex``).
    ValueError
        Not square, empty, or NaN/Inf entries.
    """
    if isinstance(A, LinearOperator) and not sp.issparse(A):
        if not allow_operator:
            raise TypeError(
                f"{name} is a LinearOperator, but this preconditioner needs the matrix "
                f"entries; pass a scipy sparse array or a dense ndarray instead."
            )
        check_square(A.shape, name)
        _check_dtype(np.dtype(A.dtype), name, allow_complex)
        return A
    if sp.issparse(A):
        _check_dtype(A.dtype, name, allow_complex)
        check_square(A.shape, name)
        A = sp.csr_array(A, copy=True)
        A.sum_duplicates()
        A.sort_indices()
        if not np.all(np.isfinite(A.data)):
            bad = int(np.count_nonzero(~np.isfinite(A.data)))
            raise ValueError(
                f"{name} has {bad} NaN or Inf entries; remove or replace them "
                f"(e.g. A.data[~np.isfinite(A.data)] = 0) before building a preconditioner."
            )
        _check_magnitude(A.data, name)
        return A
    if isinstance(A, np.ndarray) or (hasattr(A, "__array__") and not np.isscalar(A)):
        arr = np.asarray(A)
        if arr.dtype == object:
            raise TypeError(
                f"{name} has dtype object; pass a numeric ndarray or a scipy sparse array."
            )
        _check_dtype(arr.dtype, name, allow_complex)
        if arr.dtype == np.float16:
            # numpy's and scipy's linear algebra has no half precision kernels
            arr = arr.astype(np.float32)
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D, got an array of shape {arr.shape}; "
                f"reshape it to (N, N)."
            )
        check_square(arr.shape, name)
        scan = dense_scan(arr)
        if scan.nonfinite:
            raise ValueError(
                f"{name} has {scan.nonfinite} NaN or Inf entries; remove or replace them "
                f"before building a preconditioner."
            )
        _refuse_subnormal(scan.largest_bits, scan.largest, name)
        return arr
    raise TypeError(
        f"{name} must be a scipy sparse array/matrix, a dense numpy array or a "
        f"scipy LinearOperator, got {type(A).__name__}."
    )


def _check_dtype(dtype, name, allow_complex=False):
    if np.issubdtype(dtype, np.complexfloating):
        if allow_complex:
            return
        raise NotImplementedError(
            f"{name} is complex ({dtype}); this entry point supports real matrices only. "
            f"Use a preconditioner that fits complex matrices ('ilut', 'ilu0', 'jacobi', "
            f"'amg', 'exact', 'none'), or split the system into real and imaginary parts "
            f"(a real 2N x 2N system)."
        )
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"{name} has dtype {dtype}; preconditioners need floating point entries. "
            f"Convert with A.astype(np.float64)."
        )


def _check_magnitude(values, name):
    """Refuse a matrix whose every nonzero entry is subnormal (below the dtype's tiny)."""
    if values.size == 0:
        return
    if values.ndim == 2:
        scan = dense_scan(values)
        _refuse_subnormal(scan.largest_bits, scan.largest, name)
        return
    # Read through the bit pattern: a process that flushes subnormals to zero
    # (torch.set_flush_denormal) compares them equal to 0.
    mags = np.abs(values)
    bits = int(np.max(_magnitude_bits(mags)))
    _refuse_subnormal(bits, _bits_value(bits, mags.dtype), name)


def _refuse_subnormal(largest_bits, largest, name):
    """Raise when the largest magnitude ``largest`` (bits ``largest_bits``) is subnormal."""
    if largest_bits == 0:
        return  # all zero: the structure checks say so
    tiny = np.finfo(largest.dtype).tiny
    if largest < tiny:
        raise ValueError(
            f"{name}'s largest entry is {float(largest):.3g}, subnormal (below {tiny:.3g}, "
            f"the smallest normal {largest.dtype}): its entries have lost digits and "
            f"products with {name} underflow. Scale the system, e.g. solve (c A) x = c b "
            f"with c = 2.0**600."
        )


def check_square(shape, name="A"):
    """Raise ``ValueError`` unless ``shape`` is a non-empty square 2-D shape."""
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {shape}.")
    n, m = shape
    if n != m:
        raise ValueError(
            f"{name} must be square, got shape {shape}; preconditioners approximate "
            f"A^-1, which exists only for square A (for least squares use lsqr/lsmr)."
        )
    if n == 0:
        raise ValueError(f"{name} is empty (shape {shape}); there is nothing to solve.")


def check_rhs(b, n, name="b", *, allow_complex=False):
    """Return ``b`` as a float (or, if allowed, complex) vector of length ``n``, or raise."""
    b = np.asarray(b)
    if b.dtype == object or not np.issubdtype(b.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {b.dtype}.")
    if np.issubdtype(b.dtype, np.complexfloating) and not allow_complex:
        raise NotImplementedError(
            f"{name} is complex; solve the real and imaginary parts separately."
        )
    if b.ndim not in (1, 2) or b.shape[0] != n or (b.ndim == 2 and b.shape[1] != 1):
        raise ValueError(
            f"{name} has shape {b.shape} but A has {n} rows; pass a vector of length {n}."
        )
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} has NaN or Inf entries; fix the right-hand side.")
    return b.astype(np.result_type(b.dtype, np.float64), copy=False).reshape(n)


def check_positive_int(value, name, *, minimum=1):
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _row_col_nonzeros(A):
    """Per-row and per-column counts of entries that are stored *and* nonzero."""
    if sp.issparse(A):
        A = sp.csr_array(A)
        nonzero = A.data != 0
        n_rows, n_cols = A.shape
        rows = np.repeat(np.arange(n_rows), np.diff(A.indptr))
        per_row = np.bincount(rows[nonzero], minlength=n_rows)
        per_col = np.bincount(A.indices[nonzero], minlength=n_cols)
        return per_row, per_col
    scan = dense_scan(A)  # one compiled pass, no mask temporary
    return scan.row_nonzeros, scan.col_nonzeros


def structure_problem(A, name="A"):
    """Return why ``A`` is structurally singular (one sentence), or ``None``.

    ``A`` is structurally singular when a row or a column has no nonzero
    entry (explicitly stored zeros count as empty). See :func:`check_structure`.
    """
    if isinstance(A, LinearOperator) and not sp.issparse(A):
        return None  # no entries to look at
    per_row, per_col = _row_col_nonzeros(A)
    for kind, counts in (("row", per_row), ("column", per_col)):
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            more = f" ({empty.size} empty {kind}s in all)" if empty.size > 1 else ""
            return (
                f"{name} is structurally singular: {kind} {int(empty[0])} has no nonzero "
                f"entry{more}, so {name} has no inverse for a preconditioner to "
                f"approximate. Remove that unknown/equation from the system or fix the "
                f"assembly that left it empty."
            )
    return None


def check_structure(A, name="A"):
    """Raise if ``A`` has a row or a column with no nonzero entry.

    Such an ``A`` is *structurally* singular: no choice of values for its
    nonzeros makes it invertible, so no preconditioner (and no solver) can
    approximate ``A^-1``. Explicitly stored zeros count as empty. A
    ``LinearOperator`` passes (it has no entries to look at).

    Parameters
    ----------
    A : sparse array/matrix, ndarray or LinearOperator
        Square matrix (already validated by :func:`as_matrix`).
    name : str
        Name used in the error message.

    Raises
    ------
    StructurallySingularError
        A ``ValueError`` (and a ``PreconditionerSetupError``) naming the
        first empty row (or column) and how many there are.
    """
    problem = structure_problem(A, name)
    if problem is not None:
        raise StructurallySingularError(problem)


class DiagonalReport(NamedTuple):
    """Counts of weak diagonal entries, as returned by :func:`diagonal_report`.

    Attributes
    ----------
    n : int
        Matrix size.
    missing : int
        Diagonal entries not stored in the sparse pattern (always 0 for dense input).
    explicit_zero : int
        Diagonal entries stored with value 0 (dense input: every zero diagonal entry).
    weak : int
        Nonzero diagonal entries with ``|a_ii| < rtol * max_j |a_ij|``.
    first_zero : int
        Index of the first zero (missing or stored) diagonal entry, ``-1`` if none.
    rtol : float
        The threshold used for ``weak``.
    """

    n: int
    missing: int
    explicit_zero: int
    weak: int
    first_zero: int
    rtol: float

    @property
    def zero(self):
        """Diagonal entries that are zero, stored or not."""
        return self.missing + self.explicit_zero


def diagonal_report(A, *, rtol=1e-3, _row_max=None):
    """Count the zero and weak diagonal entries of ``A``.

    Parameters
    ----------
    A : sparse array/matrix or ndarray
        Square matrix (already validated by :func:`as_matrix`).
    rtol : float
        A nonzero ``a_ii`` is *weak* when ``|a_ii| < rtol * max_j |a_ij|``
        (the largest entry of its row).

    Returns
    -------
    DiagonalReport
    """
    n = A.shape[0]
    if sp.issparse(A):
        A = sp.csr_array(A)
        rows = np.repeat(np.arange(n), np.diff(A.indptr))
        on_diag = A.indices == rows
        stored = np.zeros(n, dtype=bool)
        stored[rows[on_diag]] = True
        row_max = np.zeros(n)
        np.maximum.at(row_max, rows, np.abs(A.data))
        diag = np.zeros(n)
        np.add.at(diag, rows[on_diag], A.data[on_diag])
    else:
        A = np.asarray(A)
        stored = np.ones(n, dtype=bool)
        row_max = dense_abs_maxima(A)[0] if _row_max is None else _row_max
        diag = np.diagonal(A).astype(np.float64)
    zero = diag == 0
    first = np.flatnonzero(zero)
    weak = ~zero & (np.abs(diag) < rtol * row_max)
    return DiagonalReport(
        n=int(n),
        missing=int(np.count_nonzero(~stored)),
        explicit_zero=int(np.count_nonzero(stored & zero)),
        weak=int(np.count_nonzero(weak)),
        first_zero=int(first[0]) if first.size else -1,
        rtol=float(rtol),
    )
