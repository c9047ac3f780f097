"""The package's layout holds: every module imports on its own, and no import cycle.

The import graph is read from the source with ``ast``: every ``import`` and
``from ... import`` of a ``learned_precond`` module, at module level or
inside a function (a lazy import still ties the two modules together).
Importing a submodule runs its parent package's ``__init__`` first, but that
is not an edge: a package that re-exports its submodules would otherwise be
a cycle by construction.
"""

import ast
import pathlib
import subprocess
import sys
import textwrap

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "learned_precond"

#: Edges kept on purpose, each with the reason; everything else must be acyclic.
ALLOWED_EDGES = {
    # ``learned_precond.compare.main`` is public API (kept by a module __getattr__);
    # the command line that defines it, learned_precond.cli, imports compare.
    ("learned_precond.compare", "learned_precond.cli"),
}


def module_files():
    """``{module name: path}`` for every module of the package (``__init__`` included)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _package_of(name, path):
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(name, path):
    """The ``learned_precond`` modules that module ``name`` imports anywhere in its source."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name, path)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from X import y``: y is either submodule X.y or a name defined in X.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def import_graph():
    return {name: imported_modules(name, path) - {b for a, b in ALLOWED_EDGES if a == name}
            for name, path in MODULES.items()}


def find_cycle(graph):
    """Return one cycle ``[a, b, ..., a]`` of ``graph``, or None (iterative DFS)."""
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    for root in graph:
        if state[root]:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_graph_reader_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    # a lazy (function-level) relative import
    assert "learned_precond.cli" in graph["learned_precond.family"]
    # ``from . import x`` of a submodule, and ``from .x import y`` inside a package
    assert "learned_precond.baselines._ilu_kernels" in graph["learned_precond.baselines.ilu0"]
    assert "learned_precond.spai.operator" in graph["learned_precond.spai.generator"]
    # ``from ..x import y`` two levels up
    assert "learned_precond._structure" in graph["learned_precond.spai.operator"]


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_allowed_edges_are_still_needed():
    # An allowance that no longer matches an import must be removed from the list.
    for a, b in ALLOWED_EDGES:
        assert b in imported_modules(a, MODULES[a]), (a, b)


def test_every_module_imports_in_isolation():
    """Each module imports with no other ``learned_precond`` module loaded before it."""
    script = textwrap.dedent(
        """
        import importlib, sys, traceback
        failures = []
        for name in sys.argv[1:]:
            for loaded in [m for m in sys.modules if m.split(".")[0] == "learned_precond"]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failures.append(name + ":\\n" + traceback.format_exc(limit=3))
        print("\\n".join(failures))
        """
    )
    names = sorted(name for name in MODULES if not name.endswith("__main__"))
    proc = subprocess.run([sys.executable, "-c", script, *names], capture_output=True,
                          text=True, cwd=PACKAGE_DIR.parent, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


@pytest.mark.parametrize("module", ["learned_precond", "learned_precond.cli"])
def test_lazy_top_level_stays_light(module):
    # ``import learned_precond`` (and the command line's module) must not pull in torch:
    # LearnedLU and the learned SPAI load it only when used.
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE_DIR.parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", [
    "learned_precond._format",
    "learned_precond._structure",
    "learned_precond.baselines",
    "learned_precond.cli",
    "learned_precond.compare",
    "learned_precond.spai.operator",
    "learned_precond.spai.generator",
    "learned_precond.petsc.pc",
])
def test_docstring_examples(name):
    # (the gallery's modules are run by tests/test_problems.py)
    import doctest
    import importlib

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0
