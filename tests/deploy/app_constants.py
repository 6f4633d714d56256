"""Shared by the deploy checks: QUEUES (workers/app.py) and TIME_LIMITS (connector/limits.py) read
without importing the app (importing it reads settings), and reading options off a command line."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@cache
def app_constants() -> tuple[tuple[str, ...], dict[str, int]]:
    """QUEUES and TIME_LIMITS, without importing the app (the import reads settings)."""
    found: dict[str, Any] = {}
    for module in (REPO / "workers" / "app.py", REPO / "connector" / "limits.py"):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                found[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                found[node.target.id] = node.value
    return tuple(ast.literal_eval(found["QUEUES"])), dict(ast.literal_eval(found["TIME_LIMITS"]))


def option(args: list[str], *names: str) -> str | None:
    """The value of `-Q poll` / `--queues=poll` style options."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None
