#!/usr/bin/env bash
# Install PETSc and petsc4py for learned_precond's optional `petsc` extra.
#
# There are no wheels for petsc / petsc4py on PyPI: both are built from their
# sdists against Debian's MPICH and OpenBLAS into the Python environment that
# runs this script (the active virtual environment, or $PYTHON). A cold build
# takes ~25 minutes on 2 cores (PETSc ~17, petsc4py ~9).
#
# Idempotent: each step is skipped when its result is already there, so a
# second run takes a few seconds and only re-checks the installation.
#
# Usage:  tools/install_petsc.sh            # uses `python3` on PATH
#         PYTHON=/path/to/python tools/install_petsc.sh
#         NICE=19 tools/install_petsc.sh    # build at low CPU priority
#
# Why the options (each avoids a trap found on these machines):
#   --with-cuda=0     configure otherwise finds the CUDA toolkit and builds for it
#   --with-fc=0       without it configure tries to download a Fortran tool
#   MPICC / MPICXX    PETSc's pip build refuses --with-mpi-dir / --with-cc; the
#                     MPI compilers are passed through the environment instead
#   no mpi4py         PyPI's mpi4py wheel cannot load Debian's MPICH; petsc4py
#                     does not need it (`mpiexec -n 2 python ...` works without)
#   not Debian's python3-petsc4py: it is built against numpy 1 and fails with numpy 2
set -euo pipefail

PETSC_VERSION=${PETSC_VERSION:-3.26.1}
PYTHON=${PYTHON:-python3}
NICE=${NICE:-0}
BLAS_LIB=${BLAS_LIB:-/usr/lib/x86_64-linux-gnu/libopenblas.so}

log() { echo "[install_petsc] $*"; }

have_petsc4py() {
    # True when petsc4py imports, initializes, and is the wanted version.
    "${PYTHON}" - "${PETSC_VERSION}" <<'PY' >/dev/null 2>&1
import sys
import petsc4py
petsc4py.init([])
from petsc4py import PETSc
want = tuple(int(p) for p in sys.argv[1].split("."))
sys.exit(0 if PETSc.Sys.getVersion() == want else 1)
PY
}

have_petsc() {
    "${PYTHON}" - "${PETSC_VERSION}" <<'PY' >/dev/null 2>&1
import sys, os, importlib.metadata as md
import petsc
sys.exit(0 if md.version("petsc") == sys.argv[1]
         and os.path.isdir(petsc.get_petsc_dir()) else 1)
PY
}

# 1. System packages: MPICH (compilers + mpiexec) and OpenBLAS.
if command -v mpicc >/dev/null && command -v mpiexec >/dev/null && [ -e "${BLAS_LIB}" ]; then
    log "MPICH and OpenBLAS present"
else
    log "installing MPICH and OpenBLAS with apt-get"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    ${SUDO} apt-get update -q
    DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -q --no-install-recommends \
        libopenblas-dev mpich libmpich-dev
fi

if have_petsc4py; then
    log "petsc4py ${PETSC_VERSION} already installed for ${PYTHON}; nothing to build"
else
    # 2. PETSc from its sdist (the long step).
    if have_petsc; then
        log "PETSc ${PETSC_VERSION} already installed"
    else
        log "building PETSc ${PETSC_VERSION} from source (about 17 min on 2 cores)"
        MPICC=$(command -v mpicc) MPICXX=$(command -v mpicxx) \
        PETSC_CONFIGURE_OPTIONS="--with-fc=0 --with-cuda=0 --with-blaslapack-lib=${BLAS_LIB} --with-debugging=0 --with-x=0 COPTFLAGS=-O2 CXXOPTFLAGS=-O2" \
            nice -n "${NICE}" "${PYTHON}" -m pip install --no-cache-dir -v "petsc==${PETSC_VERSION}"
    fi
    # 3. petsc4py against that PETSc. PETSC_DIR points the build at the PETSc
    #    just installed, so pip's isolated build does not build PETSc again.
    PETSC_DIR=$("${PYTHON}" -c "import petsc; print(petsc.get_petsc_dir())")
    log "building petsc4py ${PETSC_VERSION} against ${PETSC_DIR} (about 9 min on 2 cores)"
    PETSC_DIR="${PETSC_DIR}" PETSC_ARCH="" \
        nice -n "${NICE}" "${PYTHON}" -m pip install --no-cache-dir -v "petsc4py==${PETSC_VERSION}"
fi

# 4. Check: PETSc runs a 2-rank solve through petsc4py.
log "checking: a 2-rank KSP solve"
mpiexec -n 2 "${PYTHON}" -c '
import petsc4py; petsc4py.init([])
from petsc4py import PETSc
A = PETSc.Mat().createAIJ([8, 8], nnz=3, comm=PETSc.COMM_WORLD)
lo, hi = A.getOwnershipRange()
for i in range(lo, hi):
    A[i, i] = 2.0
    if i > 0: A[i, i - 1] = -1.0
    if i < 7: A[i, i + 1] = -1.0
A.assemble()
x, b = A.createVecs(); b.set(1.0)
ksp = PETSc.KSP().create(); ksp.setOperators(A); ksp.setTolerances(rtol=1e-10); ksp.solve(b, x)
r = b.duplicate(); A.mult(x, r); r.axpy(-1.0, b)
assert ksp.getConvergedReason() > 0 and r.norm() < 1e-8, (ksp.getConvergedReason(), r.norm())
if A.getComm().getRank() == 0:
    print("[install_petsc] ok: PETSc %d.%d.%d, %d ranks, %d iterations"
          % (PETSc.Sys.getVersion() + (A.getComm().getSize(), ksp.getIterationNumber())))
'
