"""What the seed table runs: settings, the rows of the main table, the sizes and budgets."""

import dataclasses

BLOCK_SIZE = 32
N_SAMPLES = 1000
RTOL = 1e-8
RESTART = 50
SEED = 0
BASELINES = ("none", "jacobi", "ilu0", "ilut", "amg")
# Above this size no dense N x N matrix is formed.
DENSE_MAX = 1024
# Relative E_A below this is rounding error: the initialization is exact.
EXACT_LEVEL = 1e-12


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the main table: a gallery matrix and LearnedLU options."""

    key: str
    label: str
    problem: str
    fit_options: dict


MAIN_CASES = (
    Case("laplace_1d_tb", "1-D Laplacian, transpose + block-wise", "seed_laplace_1d",
         dict(transpose_loss=True, blockwise=True)),
    Case("laplace_1d_noT", "1-D Laplacian, no transpose loss", "seed_laplace_1d",
         dict(transpose_loss=False, blockwise=True)),
    Case("laplace_1d_noB", "1-D Laplacian, no block-wise", "seed_laplace_1d",
         dict(transpose_loss=True, blockwise=False)),
    Case("convdiff_1d", "1-D convection-diffusion", "seed_convection_diffusion_1d", {}),
    Case("convdiff_2d", "2-D convection-diffusion", "seed_convection_diffusion_2d", {}),
    Case("biharmonic_1d", "1-D biharmonic", "seed_biharmonic_1d", {}),
    Case("biharmonic_2d", "2-D biharmonic", "seed_biharmonic_2d", {}),
    Case("rbf", "RBF kernel", "seed_rbf_kernel", {}),
    Case("laplace_2d", "2-D Laplacian (not in the blog)", "seed_laplace_2d", {}),
)


ORDERING_PROBLEMS = (
    ("seed_laplace_1d", None),
    ("seed_laplace_2d", (16, 16)),
    ("seed_convection_diffusion_2d", (16, 16)),
)


HIERARCHY_PROBLEMS = ("laplace_2d", "convection_diffusion_2d", "biharmonic_2d")


DIFFUSION_PRECONDITIONERS = ("none", "jacobi", "ilu0", "ilut", "ilut_basic", "amg",
                             "learned_lu")


# Labels that are a registry name with non-default options. ILUT's own docstring
# warns that SuperLU's default 'basic,area' rule spends its fill budget badly;
# 'basic' with a constant drop tolerance is seed 003's SPILU setting.
DIFFUSION_OPTIONS = {"ilut_basic": ("ilut", dict(drop_tol=1e-3, drop_rule="basic"))}


def config(quick):
    if quick:
        return dict(quick=True, n_samples=200, main_fit={}, ablation_fit=dict(max_steps=100),
                    ablation_samples=100, hierarchy_sizes=(64,),
                    hierarchy_fit=dict(max_steps=20), hierarchy_samples=50,
                    hierarchy_budget=180.0, diffusion_sizes=(16, 32, 64),
                    diffusion_fit=dict(max_steps=20), diffusion_budget=120.0, cg_maxiter=2000)
    return dict(quick=False, n_samples=N_SAMPLES, main_fit={},
                ablation_fit=dict(max_steps=200), ablation_samples=200,
                hierarchy_sizes=(64, 128), hierarchy_fit=dict(max_steps=30),
                hierarchy_samples=200, hierarchy_budget=1500.0,
                diffusion_sizes=(16, 32, 64, 128, 256), diffusion_fit=dict(max_steps=30),
                diffusion_budget=900.0, cg_maxiter=2000)
