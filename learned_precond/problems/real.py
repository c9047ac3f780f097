"""Real test matrices: Matrix Market files and pyamg's bundled examples.

Registry kind ``'real'`` of :mod:`learned_precond.problems`; use the registry
(``problems.get("sherman1")``) or :func:`learned_precond.problems.load_matrix`.

The eleven SuiteSparse / Harwell-Boeing matrices ship inside the package
(``learned_precond/data/*.mtx``, provenance in ``learned_precond/data/README.md``)
so they load by name on any installation, with no network and no shared folder.
"""

import bz2
import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp

__all__ = ["load_matrix", "bundled_matrix_path", "load_bundled", "load_pyamg_example"]


@dataclass(frozen=True)
class RealMatrix:
    """Facts about one shipped real matrix, checked by ``tests/test_problems.py``."""

    name: str
    size: int
    symmetric: bool
    definite: str
    description: str
    grid_shape: tuple | None = None


# Sizes and application areas from /work/shared/matrices/README.md; symmetry and
# definiteness measured in float64 (dense Cholesky of A, -A or A + A^T).
# grid_shape is set only where the sparsity pattern proves natural (lexicographic)
# order on a tensor grid: every entry couples grid points at most one step apart
# in each direction, never across the wrap-around from one grid line to the next.
# (For recirc_flow and unit_cube the vertex coordinates confirm it: recirc_flow
# is x fastest; unit_cube is y fastest, which for a cube only relabels the axes.)
BUNDLED = {
    m.name: m
    for m in [
        RealMatrix(
            "nos4",
            100,
            True,
            "spd",
            "HB/nos4: beam finite elements (Lanczos test matrix), n=100, nnz=594",
        ),
        RealMatrix(
            "gr_30_30",
            900,
            True,
            "spd",
            "HB/gr_30_30: 9-point Laplacian on a 30x30 grid, n=900, nnz=7744",
            (30, 30),
        ),
        RealMatrix(
            "1138_bus",
            1138,
            True,
            "spd",
            "HB/1138_bus: power network admittance matrix, n=1138, nnz=4054",
        ),
        RealMatrix(
            "tumorAntiAngiogenesis_2",
            305,
            True,
            "indefinite",
            "VDOL/tumorAntiAngiogenesis_2: optimal control KKT matrix, n=305, "
            "nnz=2699; 122 zero diagonal entries",
        ),
        RealMatrix(
            "sherman1",
            1000,
            True,
            "snd",
            "HB/sherman1: oil reservoir simulation on a 10x10x10 grid, n=1000, "
            "nnz=3750; symmetric negative definite",
            (10, 10, 10),
        ),
        RealMatrix(
            "west0479",
            479,
            False,
            "nonsymmetric",
            "HB/west0479: chemical process simulation, n=479, nnz=1910; 471 zero diagonal entries",
        ),
        RealMatrix(
            "steam2",
            600,
            False,
            "nonsymmetric",
            "HB/steam2: thermal oil recovery (CFD), n=600, nnz=13760",
        ),
        RealMatrix(
            "cdde1",
            961,
            False,
            "nonsymmetric",
            "Bai/cdde1: convection-diffusion, 5-point stencil on a 31x31 grid, n=961, nnz=4681",
            (31, 31),
        ),
        RealMatrix(
            "jpwh_991",
            991,
            False,
            "nonsymmetric",
            "HB/jpwh_991: circuit simulation (semiconductor device), n=991, "
            "nnz=6027; A + A^T is negative definite",
        ),
        RealMatrix(
            "orsirr_1",
            1030,
            False,
            "nonsymmetric",
            "HB/orsirr_1: oil reservoir simulation, irregular grid, n=1030, nnz=6858",
        ),
        RealMatrix(
            "add32",
            4960,
            False,
            "positive-real",
            "Hamm/add32: circuit simulation (32-bit adder), n=4960, nnz=23884",
        ),
    ]
}

# pyamg.gallery.load_example files with a real, square, nonsingular A.
# Left out on purpose: 'unit_square' (pure Neumann Laplacian: singular, the
# constant vector spans its null space) and 'helmholtz_2D' (complex entries).
PYAMG_EXAMPLES = {
    m.name: m
    for m in [
        RealMatrix(
            "airfoil",
            260,
            True,
            "spd",
            "pyamg example: Laplacian-type matrix on an unstructured triangular "
            "airfoil mesh (322 vertices, Dirichlet nodes removed), n=260",
        ),
        RealMatrix(
            "bar",
            600,
            True,
            "spd",
            "pyamg example: linear elasticity on a 3-D bar (hexahedra), n=600, "
            "6 rigid-body modes as near-null space",
        ),
        RealMatrix(
            "knot",
            239,
            True,
            "spd",
            "pyamg example: graph Laplacian of a triangulated knot surface "
            "(240 vertices, one eliminated as Dirichlet node), n=239",
        ),
        RealMatrix(
            "local_disc_galerkin_diffusion",
            966,
            True,
            "spd",
            "pyamg example: local discontinuous Galerkin diffusion, n=966; "
            "symmetrized as (A + A^T)/2 (stored asymmetry ~1.8e-12)",
        ),
        RealMatrix(
            "recirc_flow",
            225,
            False,
            "positive-real",
            "pyamg example: convection-diffusion with recirculating flow "
            "(Q1 elements on a 16x16 mesh of [-1, 1]^2), n=225",
            (15, 15),
        ),
        RealMatrix(
            "unit_cube",
            125,
            True,
            "spd",
            "pyamg example: M-matrix (off-diagonals -1) on a tetrahedral mesh of "
            "the unit cube (5x5x5 vertices, 384 tetrahedra), n=125",
            (5, 5, 5),
        ),
    ]
}


def _open_text(path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="latin-1")
    if name.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="latin-1")
    return open(path, encoding="latin-1")


def load_matrix(path):
    """Read a square real Matrix Market file as a float64 ``csr_array``.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.mtx`` file (``.mtx.gz`` and ``.mtx.bz2`` are read too). Symmetric,
        skew-symmetric and general storage are expanded to the full matrix;
        ``integer`` and ``pattern`` fields become float64 (pattern entries 1.0).

    Returns
    -------
    scipy.sparse.csr_array
        Canonical format (duplicates summed, indices sorted), dtype float64.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is a directory, not a Matrix Market file, cannot be parsed,
        or the matrix is not square.
    NotImplementedError
        The file holds a complex matrix.

    Examples
    --------
    >>> from learned_precond.problems import load_matrix, bundled_matrix_path
    >>> A = load_matrix(bundled_matrix_path("nos4"))
    >>> A.shape, A.dtype.name
    ((100, 100), 'float64')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Matrix Market file {str(path)!r} does not exist; check the path. The "
            f"bundled matrices ({', '.join(BUNDLED)}) load by name with "
            f"learned_precond.problems.get(name)."
        )
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; pass the path of a .mtx file.")
    try:
        with _open_text(path) as fh:
            header = fh.readline(4096)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a readable Matrix Market file ({exc}); a Matrix Market "
            f"file is text whose first line starts with '%%MatrixMarket'."
        ) from exc
    fields = header.split()
    if not fields or fields[0].lower() != "%%matrixmarket":
        raise ValueError(
            f"{str(path)!r} is not a Matrix Market file: its first line is "
            f"{header[:80].rstrip()!r}, but it must start with '%%MatrixMarket' "
            f"(e.g. '%%MatrixMarket matrix coordinate real general'). Download the "
            f"'Matrix Market' format from SuiteSparse, not the MATLAB or Rutherford-Boeing one."
        )
    if len(fields) < 5 or fields[1].lower() != "matrix":
        raise ValueError(
            f"{str(path)!r} has Matrix Market header {header.strip()!r}; expected "
            f"'%%MatrixMarket matrix <coordinate|array> <real|integer|pattern> <symmetry>'."
        )
    if fields[3].lower() == "complex":
        raise NotImplementedError(
            f"{str(path)!r} holds a complex matrix; learned_precond supports real "
            f"matrices only. Split it into a real 2N x 2N system first."
        )
    try:
        M = scipy.io.mmread(path)
    except Exception as exc:  # mmread raises ValueError, OSError or RuntimeError
        raise ValueError(f"could not parse {str(path)!r} as Matrix Market: {exc}") from exc
    A = sp.csr_array(M, dtype=np.float64)
    if A.shape[0] != A.shape[1]:
        raise ValueError(
            f"{str(path)!r} holds a {A.shape[0]} x {A.shape[1]} matrix, but the gallery "
            f"needs a square one (preconditioners approximate A^-1)."
        )
    A.sum_duplicates()
    A.sort_indices()
    return A


def bundled_matrix_path(name):
    """Return the file path of the bundled Matrix Market matrix ``name``.

    Parameters
    ----------
    name : str
        One of the bundled SuiteSparse names (``'nos4'``, ``'sherman1'``, ...).

    Returns
    -------
    pathlib.Path
        Path of ``learned_precond/data/<name>.mtx`` inside the installed package.
    """
    if name not in BUNDLED:
        raise ValueError(
            f"no bundled matrix {name!r}; the bundled matrices are {', '.join(BUNDLED)}."
        )
    # The package is installed as plain files (wheel or editable checkout), so
    # the resource is a real path that scipy.io.mmread can open.
    return Path(str(resources.files("learned_precond").joinpath("data", f"{name}.mtx")))


def load_bundled(name):
    """Load the bundled SuiteSparse matrix ``name`` as a float64 ``csr_array``."""
    path = bundled_matrix_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled matrix file {str(path)!r} is missing from this installation; "
            f"reinstall learned-precond (the wheel ships learned_precond/data/*.mtx)."
        )
    return load_matrix(path)


def load_pyamg_example(name):
    """Load ``pyamg.gallery.load_example(name)['A']`` as a float64 ``csr_array``."""
    from pyamg.gallery import load_example

    if name not in PYAMG_EXAMPLES:
        raise ValueError(
            f"pyamg example {name!r} is not in the gallery; choose from "
            f"{', '.join(PYAMG_EXAMPLES)}."
        )
    A = sp.csr_array(load_example(name)["A"], dtype=np.float64)
    if PYAMG_EXAMPLES[name].symmetric:
        # Stored with rounding-level asymmetry in some files; make it exact so CG
        # and symmetric preconditioners see the symmetric matrix the example means.
        A = sp.csr_array((A + A.T) * 0.5)
    A.sum_duplicates()
    A.sort_indices()
    return A
