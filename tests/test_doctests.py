"""The docstring Examples of regions/ and kernels/ run with the tests
(``--doctest-modules`` in pyproject.toml), which imports every module for
collection: that import must have no side effects and need no optional
package, and the package's modules must not import each other in a circle."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("dask", "distributed", "regioncam", "nbclient", "nbformat", "ipykernel", "hypothesis",
            "pytest")


def test_the_test_command_runs_the_doctests():
    tomllib = pytest.importorskip("tomllib")           # Python >= 3.11
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {"regions", "kernels"} <= set(ini["testpaths"])
    assert "--doctest-modules" in ini["addopts"].split()


def test_importing_every_module_has_no_side_effects(tmp_path):
    script = f"""
import importlib, pkgutil, sys
import regions, kernels
for pkg in (regions, kernels):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not m.name.endswith("__main__"):        # pytest never imports __main__.py
            importlib.import_module(m.name)
loaded = sorted({{k.split(".")[0] for k in sys.modules}} & set({OPTIONAL!r}))
assert not loaded, f"optional packages imported: {{loaded}}"
from numba.core.registry import CPUDispatcher
compiled = [f"{{mod.__name__}}.{{name}}" for mod in list(sys.modules.values())
            if getattr(mod, "__name__", "").startswith("kernels.")
            for name, obj in vars(mod).items()
            if isinstance(obj, CPUDispatcher) and obj.signatures]
assert not compiled, f"kernels compiled at import: {{compiled}}"
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""
    assert list(tmp_path.iterdir()) == []            # nothing written where it ran


def _module_imports(path, module, is_package, modules):
    """The package's own modules that ``module`` imports: ``(at_module_level, anywhere)``."""
    tree = ast.parse(path.read_text())
    top, anywhere = set(), set()

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = module.split(".") if is_package else module.split(".")[:-1]
                if child.level > 1:
                    base = base[:len(base) - child.level + 1]
                target = ".".join(base + [child.module]) if child.level and child.module \
                    else (".".join(base) if child.level else child.module)
                subs = [f"{target}.{a.name}" for a in child.names
                        if f"{target}.{a.name}" in modules]
                names = subs or [target]
            for name in names:
                # importing a.b.c runs the packages a.b first (the top package is a given)
                parts = name.split(".")
                for k in range(2, len(parts) + 1):
                    dep = ".".join(parts[:k])
                    if dep in modules and dep != module and not module.startswith(dep + "."):
                        anywhere.add(dep)
                        if not inner:
                            top.add(dep)
            visit(child, inner)

    visit(tree, False)
    return top, anywhere


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            connect(v)
    return found


def _import_graphs():
    files = {}
    for path in sorted([*(ROOT / "regions").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")]):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    top, anywhere = {}, {}
    for module, (path, is_package) in files.items():
        top[module], anywhere[module] = _module_imports(path, module, is_package, files)
    return top, anywhere


def test_no_import_cycles():
    top, anywhere = _import_graphs()
    assert top["regions.geometry"] >= {"regions.encoded", "regions.network"}   # it sees imports
    assert _cycles(top) == []
    # imports inside functions too, for the modules split out of regions/encoded.py
    split = {"regions.geometry", "regions._shared", "regions.encoded", "regions.encoded.engine",
             "regions.encoded.result", "regions.encoded.crossings", "regions.encoded.tolerances"}
    assert [c for c in _cycles(anywhere) if c & split] == []
