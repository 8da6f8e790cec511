"""Layers that run one way: internflow (the library) < agent < tasks < flows < deployments.

The four upper layers are folders at the top of the repository, installed as internflow.agent,
internflow.tasks, internflow.flows and internflow.deployments (through the links in internflow/):
the only top-level name the project claims in an environment is `internflow`.

Read from the source with `ast`, nothing imported: every `import` statement counts, at the top of
a module, inside a function or under `if TYPE_CHECKING:` (a hidden import is still a dependency).
Imports by string count where a registry names its modules: a project module's dotted name as a
value of a dict literal (`{"sft": "internflow.training.sft"}`) or as `import_module`'s argument.
A name built at run time (`f"pkg.{name}"`) is not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: a package may import the ones before it, never one after it.
LAYERS = ("internflow", "agent", "tasks", "flows", "deployments")
UPPER = LAYERS[1:]  # subpackages of internflow whose folders sit beside it

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    parts = ["internflow", *parts] if parts[0] in UPPER else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """'internflow.agent.planner' -> 'agent'; 'internflow.schemas' -> 'internflow'."""
    second = module.split(".")[1] if "." in module else ""
    return second if second in UPPER else module.partition(".")[0]


def import_graph(root: Path) -> Graph:
    """Every project module → the project modules it imports (`from a import b` counts as
    importing the module `a.b` when there is one, else `a`)."""
    # rglob does not enter the links internflow/<layer>: each module is read once, from its folder.
    paths = {module_name(root, p): p for layer in LAYERS for p in sorted((root / layer).rglob("*.py"))}
    graph: Graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1 more
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names)
            targets.update(named for named in _registered_names(node) if named in paths)
        graph[name] = set()
        for target in targets:
            while target and target not in paths:  # `import a.b.func`-style names: their module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def _registered_names(node: ast.AST) -> list[str]:
    """The strings a registry imports later: a dict literal's values, `import_module`'s argument."""
    if isinstance(node, ast.Dict):
        named = [value for value in node.values if value is not None]
    elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
        named = node.args[:1]
    else:
        return []
    return [value.value for value in named if isinstance(value, ast.Constant) and isinstance(value.value, str)]


def upward_imports(graph: Graph) -> list[str]:
    """'a -> b' for every import of a later layer by an earlier one."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if rank[layer_of(target)] > rank[layer_of(source)]
    )


def import_cycles(graph: Graph) -> list[list[str]]:
    """The modules of each import cycle (strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is a few hundred modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_library_imports_no_layer_above_it() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 100  # the walk found the project
    library = [line for line in upward_imports(graph) if layer_of(line.split(" -> ")[0]) == "internflow"]
    assert library == [], "the library (internflow/) must not import agent, tasks, flows or deployments"


def test_layers_import_only_downwards() -> None:
    assert upward_imports(import_graph(ROOT)) == [], f"layers, lowest first: {' < '.join(LAYERS)}"


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph(ROOT)) == []


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_no_code_imports_the_layers_by_their_folder_names() -> None:
    """`import agent` would claim a name other projects use (and work only from a checkout)."""
    files = [p for folder in (*LAYERS, "tests", "bench", "scripts") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 200
    offenders = sorted(str(p.relative_to(ROOT)) for p in files if _top_level_imports(p) & set(UPPER))
    assert offenders == [], "import internflow.<layer>, not <layer>"


def test_the_installed_distribution_claims_only_the_internflow_name() -> None:
    from importlib.metadata import distribution

    from internflow.agent import planner

    assert distribution("internflow").read_text("top_level.txt").split() == ["internflow"]
    assert Path(planner.__file__).resolve() == (ROOT / "agent" / "planner.py").resolve()


def _tree(root: Path, files: dict[str, str]) -> Path:
    for layer in LAYERS:
        (root / layer).mkdir(parents=True, exist_ok=True)
        (root / layer / "__init__.py").touch()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    "ledger",
    [
        "def state():\n    from internflow.agent.planner import State\n",  # hidden in a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from internflow.agent.planner import State\n",
    ],
)
def test_a_hidden_import_of_a_layer_above_is_caught(ledger: str, tmp_path: Path) -> None:
    """The shape of the old loop: internflow/ledger.py imported agent/planner.py inside a function
    (and under TYPE_CHECKING), agent/planner.py imported internflow/ledger.py at its top."""
    root = _tree(tmp_path, {"internflow/ledger.py": ledger, "agent/planner.py": "from internflow.ledger import x\n"})
    graph = import_graph(root)
    assert upward_imports(graph) == ["internflow.ledger -> internflow.agent.planner"]
    assert import_cycles(graph) == [["internflow.agent.planner", "internflow.ledger"]]


def test_a_package_and_its_lazily_imported_module_are_a_cycle(tmp_path: Path) -> None:
    """The shape of the old registry loops: a package imports a module inside a function, and that
    module imports the package's base types from the package (relative imports resolved)."""
    root = _tree(tmp_path, {})
    (root / "internflow" / "registry").mkdir()
    (root / "internflow" / "registry" / "__init__.py").write_text("def get():\n    from .impl import X\n")
    (root / "internflow" / "registry" / "impl.py").write_text("from . import Base\n")
    assert import_cycles(import_graph(root)) == [["internflow.registry", "internflow.registry.impl"]]


def test_a_registry_whose_method_modules_import_it_back_is_a_cycle(tmp_path: Path) -> None:
    """The shape of the old loop in internflow/training: the package named its method modules by
    string (imported by `importlib.import_module` when used), they imported their base type from the
    package, and the plumbing the package's callers use imported the package too."""
    root = _tree(tmp_path, {})
    training = root / "internflow" / "training"
    training.mkdir()
    (training / "__init__.py").write_text(
        'import importlib\nMETHODS = {"sft": "internflow.training.sft"}\n'
        "def get_method(name):\n    return importlib.import_module(METHODS[name]).METHOD\n"
    )
    (training / "sft.py").write_text("from internflow.training import TrainingMethod\n")
    (training / "plugin.py").write_text('import importlib\nimportlib.import_module("internflow.training.sft")\n')
    graph = import_graph(root)
    assert graph["internflow.training"] == {"internflow.training.sft"}
    assert graph["internflow.training.plugin"] == {"internflow.training.sft"}
    assert import_cycles(graph) == [["internflow.training", "internflow.training.sft"]]


def test_the_training_package_imports_one_way() -> None:
    """common → registry ⇢ method modules → configs: no method module imports the plumbing or the
    registry that loads it."""
    graph = import_graph(ROOT)
    methods = {f"internflow.training.{method}" for method in ("sft", "dpo", "grpo")}
    assert methods <= graph["internflow.training.registry"]  # seen, though imported by name
    above = {"internflow.training", "internflow.training.common", "internflow.training.registry"}
    assert all(graph[method].isdisjoint(above) for method in methods)
