"""The layout holds: each package imports only from its own layer or those below (harness/__init__.py), module-level
imports form no cycle, imports sit at module top (outside the commands) except slow or optional packages and lines
whose ``# lazy:`` comment says why; files stay under 300 lines, functions under 50 lines of code, lines under 120
characters (runnable ``python -c`` examples excepted)."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
# lowest first; a module may import from its own layer and the ones before it
LAYERS = [
    ["common", "harness"],   # "harness": the package docstring itself
    ["algorithms", "benchmarks"],
    ["harness.config", "harness.results", "harness.progress", "harness.stop", "harness.metrics", "harness.stats"],
    ["harness.engines"],
    ["harness.models", "harness.report"],
    ["harness.eval"],
    ["harness.train"],
    ["harness.sweep"],
    ["harness.commands", "harness.cli", "harness.__main__"],
]
# slow or optional packages that may be imported inside a function; the commands import their layers in run()
LAZY_OK = ("vllm", "wandb", "submitit", "matplotlib", "trl", "scipy", "datasets", "math_verify", "sympy", "lightning",
           "transformers", "torch", "yaml", "omegaconf", "tqdm")


def _modules():
    for pkg in ("common", "algorithms", "benchmarks", "harness"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            yield name, path, ast.parse(path.read_text())


def _layer(module: str) -> int | None:
    found = [(len(p), i) for i, layer in enumerate(LAYERS) for p in layer if module == p or module.startswith(p + ".")]
    return max(found)[1] if found else None


def _imports(tree, top_only: bool):
    nodes = tree.body if top_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]


def test_every_module_has_a_layer():
    assert [m for m, _, _ in _modules() if _layer(m) is None] == []


def test_imports_point_down():
    wrong = []
    for mod, path, tree in _modules():
        for node, targets in _imports(tree, top_only=False):
            for target in targets[-1:]:
                layer = _layer(target)
                if layer is not None and layer > _layer(mod):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {mod} imports {target}")
    assert wrong == []


def test_no_import_cycle_at_module_level():
    known = {m for m, _, _ in _modules()}
    graph = {}
    for mod, _, tree in _modules():
        deps = set()
        for _, targets in _imports(tree, top_only=True):
            deps.update(t for t in targets if t in known and t != mod)
        graph[mod] = deps
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
    # a package importing its own submodules (harness.engines -> harness.engines.base) is not a cycle of interest
    assert [c for c in cycles if not all(x.startswith(c.split(" -> ")[0]) for x in c.split(" -> "))] == []


def test_imports_at_module_top_outside_commands():
    late = []
    for mod, path, tree in _modules():
        if mod.startswith(("harness.commands", "harness.cli")):
            continue
        top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try))
                                            for n in ast.walk(s)}
        lines = path.read_text().splitlines()
        for node, targets in _imports(tree, top_only=False):
            if id(node) in top or targets[-1].split(".")[0] in LAZY_OK or "# lazy:" in lines[node.lineno - 1]:
                continue
            late.append(f"{path.relative_to(ROOT)}:{node.lineno} {targets[-1]}")
    assert late == []


# a function may run longer only with a comment in its docstring saying why ("Kept as one function ...")
LONG_OK = {"harness/engines/kv_decode.py:sample"}


def test_files_functions_and_lines_stay_short():
    long_files, long_funcs, long_lines = [], [], []
    for _, path, tree in _modules():
        rel = str(path.relative_to(ROOT))
        lines = path.read_text().splitlines()
        if len(lines) > 300:
            long_files.append(f"{rel}: {len(lines)} lines")
        long_lines += [f"{rel}:{i}" for i, line in enumerate(lines, 1) if len(line) > 120 and "python -c" not in line]
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                code = node.end_lineno - node.lineno + 1 - (len(doc.splitlines()) if doc else 0)
                if code > 50 and f"{rel}:{node.name}" not in LONG_OK:
                    long_funcs.append(f"{rel}:{node.name}: {code} lines")
    assert (long_files, long_funcs, long_lines) == ([], [], [])
    assert all("Kept as one function" in (ast.get_docstring(node) or "") for _, path, tree in _modules()
               for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and f"{path.relative_to(ROOT)}:{node.name}" in LONG_OK)
