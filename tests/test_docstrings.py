"""Every flow and stage task has a docstring: Prefect shows it as the description in the UI."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _decorated(module: Path) -> list[tuple[str, bool]]:
    """(name, has a docstring) of each function decorated with @flow or @task (called or bare)."""
    found = []
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list}
            if any(getattr(n, "id", getattr(n, "attr", None)) in ("flow", "task") for n in names):
                found.append((node.name, bool(ast.get_docstring(node))))
    return found


def test_every_flow_and_task_has_a_docstring() -> None:
    modules = sorted((ROOT / "flows").glob("*.py")) + sorted((ROOT / "tasks").glob("*.py"))
    found = {f"{m.relative_to(ROOT)}:{name}": documented for m in modules for name, documented in _decorated(m)}
    assert len(found) >= 15 and "flows/campaign.py:campaign" in found and "tasks/train.py:train_model" in found
    assert [name for name, documented in found.items() if not documented] == []
