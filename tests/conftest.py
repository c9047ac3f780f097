"""Shared pytest setup: the test folder on sys.path and common fixtures."""

import pathlib
import sys

import numpy as np
import pytest

# Test modules import the reusable preconditioner contract with
# ``from contract import PreconditionerContract``; make that work under any
# pytest import mode.
_TESTS = str(pathlib.Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from contract import convection_diffusion_2d, laplace_2d  # noqa: E402


@pytest.fixture
def rng():
    """A seeded generator, so every test run sees the same random data."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def poisson32():
    """5-point 2-D Laplacian, 32 x 32 interior grid, natural order (N = 1024)."""
    return laplace_2d(32)


@pytest.fixture(scope="session")
def convdiff32():
    """Upwind 2-D convection-diffusion, 32 x 32 grid (nonsymmetric, N = 1024)."""
    return convection_diffusion_2d(32)
