"""Package architecture: the import graph of src/dsnet is acyclic, respects the layers, and files stay small.

Read with ``ast`` rather than by importing, so every import counts: module level, inside functions and
methods, under ``if TYPE_CHECKING:`` and in ``try`` blocks. A lazy import inside a function is still a
dependency (it only moves the failure to run time), so it is held to the same rules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dsnet"
MAX_LINES = 400
MAX_FUNCTION_LINES = 80

Graph = dict[str, set[str]]


def discover_modules(src: Path, package: str) -> dict[str, Path]:
    """Module name -> file for every .py under ``src/package``; a package is named by its ``__init__``."""
    modules: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _nearest_module(name: str, modules: Iterable[str]) -> str | None:
    """``name`` if it is a known module, else its longest known prefix (``a.b.func`` -> ``a.b``)."""
    known = set(modules)
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def module_imports(module: str, path: Path, modules: dict[str, Path], package: str) -> set[str]:
    """The in-package modules that ``module`` (file ``path``) imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    target = _nearest_module(alias.name, modules)
                    if target:
                        targets.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # the package the import is relative to: the module itself for an __init__, else its parent
                base = module.split(".") if is_package else module.split(".")[:-1]
                if node.level - 1 > len(base) - 1:
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == package or source.startswith(package + ".")):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in modules else _nearest_module(source, modules)
                if target:
                    targets.add(target)
    targets.discard(module)
    return targets


def build_graph(src: Path, package: str) -> tuple[Graph, dict[str, Path]]:
    """The in-package import graph: module -> the modules it imports."""
    modules = discover_modules(src, package)
    graph = {name: module_imports(name, path, modules, package) for name, path in modules.items()}
    return graph, modules


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None. Iterative DFS, deterministic (sorted) order."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# (who, may not import, why): ``who`` and the forbidden names are module prefixes.
LAYER_RULES: list[tuple[str, tuple[str, ...], str]] = [
    (
        "dsnet.models",
        (
            "dsnet.data",
            "dsnet.engine",
            "dsnet.cli",
            "dsnet.inference",
            "dsnet.analysis",
            "dsnet.predict",
            "dsnet.deploy",
        ),
        "models are the bottom layer: usable without data, training or tools",
    ),
    (
        "dsnet.data",
        ("dsnet.models", "dsnet.engine", "dsnet.cli", "dsnet.inference", "dsnet.predict"),
        "data pipelines do not depend on a model or on the trainer",
    ),
    ("dsnet.inference", ("dsnet.predict",), "inference works on tensors; file and array handling sits above it"),
    ("dsnet.engine", ("dsnet.cli", "dsnet.predict"), "the engine is a library; the CLI sits on top of it"),
    (
        "dsnet.predict",
        ("dsnet.engine", "dsnet.cli", "dsnet.analysis"),
        "prediction needs models, data and inference only, so it ships without the trainer",
    ),
    (
        "dsnet.bench",
        ("dsnet.data", "dsnet.engine", "dsnet.cli", "dsnet.predict"),
        "benchmarks time models; the engine may use them (dsnet ablate), never the other way",
    ),
    (
        "dsnet.deploy",
        ("dsnet.data", "dsnet.engine", "dsnet.cli", "dsnet.inference", "dsnet.analysis", "dsnet.predict"),
        "deployment transforms and exports a model: it needs no data, trainer or tools",
    ),
    (
        "dsnet.analysis",
        ("dsnet.engine", "dsnet.cli", "dsnet.inference", "dsnet.predict", "dsnet.deploy"),
        "analysis measures models (reading images at most): it needs no trainer, predictor or exporter",
    ),
    (
        "dsnet.cli.flags",
        ("dsnet.cli",),
        "the shared flags are the bottom of the command line: every command module declares its flags with them",
    ),
]
# Besides its own modules, only the package facade may import dsnet.predict ...
PREDICT_IMPORTERS = ("dsnet",)
# ... and the packages on top of it: the command line, and the server of its predictions.
PREDICT_USERS = ("dsnet.cli", "dsnet.serve")
# The command line is one package: its modules import each other; outside it only ``python -m dsnet`` runs it.
CLI = "dsnet.cli"
CLI_RUNNERS = ("dsnet.__main__",)
LEAVES = ("dsnet.errors", "dsnet.constants", "dsnet.fileio", "dsnet.typed", "dsnet.torchrun", "dsnet.optional_imports")


def layer_violations(graph: Graph) -> list[str]:
    """Every import that breaks a layer rule, as readable lines."""
    bad: list[str] = []
    for who, forbidden, why in LAYER_RULES:
        for module in sorted(m for m in graph if _within(m, (who,))):
            for target in sorted(graph[module]):
                if _within(target, forbidden):
                    bad.append(f"{module} imports {target} ({why})")
    for module in sorted(graph):
        for target in sorted(graph[module]):
            if _within(target, (CLI,)) and module not in CLI_RUNNERS and not _within(module, (CLI,)):
                bad.append(f"{module} imports {target} (only dsnet.__main__ may import the CLI)")
            if (
                _within(target, ("dsnet.predict",))
                and module not in PREDICT_IMPORTERS
                and not _within(module, ("dsnet.predict", *PREDICT_USERS))
            ):
                bad.append(f"{module} imports {target} (only dsnet and the command line may import dsnet.predict)")
    for leaf in LEAVES:
        for target in sorted(graph.get(leaf, ())):
            if target != "dsnet.errors":
                bad.append(f"{leaf} imports {target} (leaf modules import nothing from dsnet but dsnet.errors)")
    return bad


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(SRC, PACKAGE)[0]


def test_the_graph_sees_the_package(graph: Graph) -> None:
    """Guard against a checker that passes because it found nothing."""
    assert {"dsnet", "dsnet.__main__", "dsnet.cli", "dsnet.models", "dsnet.errors"} <= graph.keys()
    assert "dsnet.cli" in graph["dsnet.__main__"]
    cli_modules = [m for m in graph if _within(m, (CLI,))]
    assert {"dsnet.cli.command", "dsnet.cli.flags"} <= set(cli_modules)
    assert any(_within(t, ("dsnet.engine",)) for m in cli_modules for t in graph[m])
    assert "dsnet.torchrun" in graph["dsnet.engine.distributed"] and "dsnet.torchrun" in graph["dsnet.predict.shard"]


def test_import_graph_is_acyclic(graph: Graph) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers(graph: Graph) -> None:
    bad = layer_violations(graph)
    assert not bad, f"{len(bad)} layer violation(s):\n" + "\n".join(bad)


def test_no_module_exceeds_the_line_limit() -> None:
    _, modules = build_graph(SRC, PACKAGE)
    lines = {
        path.relative_to(SRC.parent): len(path.read_text(encoding="utf-8").splitlines()) for path in modules.values()
    }
    over = sorted(((n, p) for p, n in lines.items() if n > MAX_LINES), reverse=True)
    assert not over, f"files over {MAX_LINES} lines:\n" + "\n".join(f"{p}: {n}" for n, p in over)


def long_functions(path: Path, limit: int, root: Path = SRC.parent) -> list[str]:
    """``file:line name (n lines)`` for every function or method in ``path`` longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_exceeds_the_line_limit() -> None:
    _, modules = build_graph(SRC, PACKAGE)
    over = [line for path in modules.values() for line in long_functions(path, MAX_FUNCTION_LINES)]
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n" + "\n".join(over)


# ------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_long_functions_are_found(tmp_path: Path) -> None:
    lines = "".join(f"        x{i} = {i}\n" for i in range(6))
    path = tmp_path / "m.py"
    path.write_text(f"def short():\n    return 1\n\n\nclass K:\n    def long(self):\n{lines}")
    assert long_functions(path, 6, tmp_path) == ["m.py:6 long (7 lines)"]  # methods count too
    assert long_functions(path, 7, tmp_path) == []


def test_checker_detects_a_planted_cycle(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import helper\n",
            "pkg/b.py": "def helper():\n    from . import a  # lazy, inside a function\n    return a\n",
            "pkg/c.py": "import pkg.a\n",
        },
    )
    graph, _ = build_graph(src, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    graph["pkg.b"] = set()  # break it: no cycle left
    assert find_cycle(graph) is None


def test_checker_resolves_every_import_form(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "import pkg.sub.deep\nfrom .leaf import VALUE\n__version__ = '1'\n",
            "pkg/leaf.py": "import os\nVALUE = 1\n",
            "pkg/sub/__init__.py": "from .. import __version__\nfrom ..leaf import VALUE as V\n",
            "pkg/sub/deep.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.other import Thing\n"
                "try:\n    from . import sibling, NAME\nexcept ImportError:\n    pass\n"
                "class K:\n    def m(self):\n        from .. import leaf\n"
            ),
            "pkg/sub/sibling.py": "from pkg import sub\n",
            "pkg/other.py": "import pkg.leaf as x\nfrom pkg.sub.deep import K\n",
        },
    )
    graph, _ = build_graph(src, "pkg")
    assert graph == {
        "pkg": {"pkg.sub.deep", "pkg.leaf"},  # `import a.b.c` inside a's __init__ is an edge a -> a.b.c
        "pkg.leaf": set(),
        "pkg.sub": {"pkg", "pkg.leaf"},  # `from .. import name` (not a submodule) is an edge to the parent
        "pkg.sub.deep": {"pkg.other", "pkg.sub.sibling", "pkg.sub", "pkg.leaf"},
        "pkg.sub.sibling": {"pkg.sub"},  # importing a package is an edge to its __init__
        "pkg.other": {"pkg.leaf", "pkg.sub.deep"},
    }
    assert find_cycle(graph) is not None  # pkg -> pkg.sub.deep -> pkg.sub -> pkg


def test_layer_rules_flag_what_they_should() -> None:
    graph: Graph = {
        "dsnet.models.x": {"dsnet.engine.trainer", "dsnet.errors"},
        "dsnet.data": {"dsnet.models"},
        "dsnet.engine.y": {"dsnet.cli"},
        "dsnet.__main__": {"dsnet.cli"},
        "dsnet.typed": {"dsnet.errors", "dsnet.constants"},
        "dsnet.predict.run": {"dsnet.engine.trainer", "dsnet.predict.writers"},
        "dsnet.analysis.x": {"dsnet.predict"},
        "dsnet.bench.z": {"dsnet.cli.analysis"},
        "dsnet.cli.serve": {"dsnet.cli.predictor", "dsnet.predict", "dsnet.engine"},  # inside the CLI: fine
        "dsnet.cli.flags": {"dsnet.cli.command"},
        "dsnet.torchrun": {"dsnet.errors"},
    }
    assert layer_violations(graph) == [
        "dsnet.models.x imports dsnet.engine.trainer (models are the bottom layer: usable without data, "
        "training or tools)",
        "dsnet.data imports dsnet.models (data pipelines do not depend on a model or on the trainer)",
        "dsnet.engine.y imports dsnet.cli (the engine is a library; the CLI sits on top of it)",
        "dsnet.predict.run imports dsnet.engine.trainer (prediction needs models, data and inference only, so it "
        "ships without the trainer)",
        "dsnet.bench.z imports dsnet.cli.analysis (benchmarks time models; the engine may use them (dsnet ablate), "
        "never the other way)",
        "dsnet.analysis.x imports dsnet.predict (analysis measures models (reading images at most): it needs no "
        "trainer, predictor or exporter)",
        "dsnet.cli.flags imports dsnet.cli.command (the shared flags are the bottom of the command line: every "
        "command module declares its flags with them)",
        "dsnet.analysis.x imports dsnet.predict (only dsnet and the command line may import dsnet.predict)",
        "dsnet.bench.z imports dsnet.cli.analysis (only dsnet.__main__ may import the CLI)",
        "dsnet.engine.y imports dsnet.cli (only dsnet.__main__ may import the CLI)",
        "dsnet.typed imports dsnet.constants (leaf modules import nothing from dsnet but dsnet.errors)",
    ]


def test_the_layout_in_the_docs_names_every_module() -> None:
    """docs/architecture.md's tree is drawn from the code: every module of the package is in it."""
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text[text.index("```\nsrc/dsnet/", text.index("## Layout")) :]
    block = block[: block.index("\n```", 4)]
    _, modules = build_graph(SRC, PACKAGE)
    missing = []
    for path in modules.values():
        rel = path.relative_to(SRC / PACKAGE)
        if path.name == "__init__.py":
            if len(rel.parts) == 2 and f"{rel.parts[0]}/" not in block:
                missing.append(str(rel.parent) + "/")
        else:
            named = path.name in block if len(rel.parts) <= 2 else re.search(rf"\b{path.stem}\b", block)
            if not named:
                missing.append(str(rel))
    assert not missing, "docs/architecture.md's layout leaves out: " + ", ".join(sorted(missing))
